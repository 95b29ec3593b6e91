// Open a page in headless Debian Chromium (playwright-core drives the system binary; nothing
// is downloaded), wait for an element, and print one JSON line: the element's text and
// data-done attribute, the page's console errors, optionally a screenshot.
//
//   node tools/chromium.mjs URL [--wait SELECTOR] [--screenshot FILE] [--cpu-throttle N]
//                               [--timeout MS] [--chromium PATH] [--width W --height H]
//                               [--click SELECTOR]...
//
// Real time throughout (no --virtual-time-budget: it freezes performance.now()); a fresh
// profile each run (playwright-core launches with a new temporary user-data-dir).

import { chromium } from "playwright-core";

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const url = args[0];
const wait = opt("--wait", "body[data-state]");
const timeout = Number(opt("--timeout", "120000"));
const throttle = Number(opt("--cpu-throttle", "1"));
const clicks = args.flatMap((a, i) => (a === "--click" ? [args[i + 1]] : []));

const browser = await chromium.launch({
  executablePath: opt("--chromium", "/usr/bin/chromium"),
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
});
let code = 0;
try {
  const page = await browser.newPage({ viewport: { width: Number(opt("--width", "1280")), height: Number(opt("--height", "860")) } });
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  if (throttle > 1) {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Emulation.setCPUThrottlingRate", { rate: throttle });
  }
  await page.goto(url, { waitUntil: "load", timeout });
  const el = await page.waitForSelector(wait, { timeout, state: "attached" });
  for (const sel of clicks) {
    await page.click(sel);
    await page.waitForTimeout(300);
  }
  const out = {
    text: await el.textContent(),
    done: await el.getAttribute("data-done"),
    state: await page.evaluate(() => document.body.dataset.state ?? null),
    error: await page.evaluate(() => document.getElementById("error")?.textContent || null),
    console_errors: errors,
    chromium: browser.version(),
  };
  const shot = opt("--screenshot");
  if (shot) await page.screenshot({ path: shot, fullPage: true });
  process.stdout.write(JSON.stringify(out) + "\n");
} catch (e) {
  process.stdout.write(JSON.stringify({ failure: String(e?.message ?? e).split("\n")[0] }) + "\n");
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
