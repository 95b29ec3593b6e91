// The demo page: pick items, watch history-mode recommendations update, with the latency of
// each answer. Every byte of the artifact is checked against its SHA-256 before use; a
// tampered artifact stops here with the runtime's message on the page.

import { load } from "./edgerec/edgerec.js";

const $ = (id) => document.getElementById(id);
const K = 10;
const times = [];
let rec, session, popularRank;

function fail(e) {
  const box = $("error");
  box.textContent = `${e?.name ?? "Error"}: ${e?.message ?? e}`;
  box.classList.add("show");
  $("status").textContent = "refused";
  document.body.dataset.state = "error";
}

const mb = (n) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MB` : `${(n / 1024).toFixed(0)} KB`);

function chip(id, { mine = false, onClick } = {}) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "chip" + (mine ? " mine" : "");
  b.textContent = `#${id}`;
  b.dataset.item = id;
  const rank = popularRank.get(id);
  if (rank !== undefined) {
    const s = document.createElement("small");
    s.textContent = mine ? "×" : `top ${rank + 1}`;
    b.append(s);
  }
  b.addEventListener("click", onClick);
  return b;
}

async function refresh() {
  const t0 = performance.now();
  const out = await session.recommend(K);
  const ms = performance.now() - t0;
  times.push(ms);
  const sorted = [...times].sort((a, b) => a - b);
  $("latency").textContent = `${ms.toFixed(2)} ms`;
  $("median").textContent = `${sorted[Math.floor(sorted.length / 2)].toFixed(2)} ms`;
  $("mode").textContent = session.label ?? (session.history.length ? `from your ${session.history.length} item(s)` : "(popular: no history yet)");
  const best = Math.max(...out.map((r) => Math.abs(r.score)), 1e-9);
  const list = $("recs");
  list.replaceChildren(...out.map((r, j) => {
    const li = document.createElement("li");
    li.className = "fade";
    const w = Math.max(4, Math.round((100 * Math.max(r.score, 0)) / best));
    li.innerHTML = `<span class="rank">${j + 1}</span><span>item <b></b> <span class="hint"></span></span><span class="bar"><i style="width:${w}%"></i></span>`;
    li.querySelector("b").textContent = `#${r.item}`;
    li.querySelector(".hint").textContent = `score ${r.score.toFixed(3)}`;
    li.title = "add to my history";
    li.addEventListener("click", () => add(r.item));
    return li;
  }));
  const mine = new Set(session.history.map(String));
  for (const b of $("popular").children) b.classList.toggle("mine", mine.has(b.dataset.item));
  const hist = $("history");
  hist.replaceChildren(...session.history.map((id) => chip(id, { mine: true, onClick: () => { session.remove(id); refresh(); } })));
  if (!session.history.length) hist.innerHTML = '<span class="hint">Empty: you get the popular items.</span>';
}

/** A lookup-only artifact (exported --mode lookup) has no history mode: the page shows a known
 * user's recommendations instead, and picking items is off. */
function userSession(u) {
  const user = rec.userIds[u];
  return { history: [], label: `for known user ${user} (lookup mode)`, add() {}, remove() {}, recommend: (k) => rec.recommend(user, k) };
}

function add(id) {
  if (!rec.modes.includes("history")) return;
  session.add(id);
  refresh().catch(fail);
}

function search() {
  const q = $("search").value.trim().toLowerCase();
  const box = $("results");
  if (!q) return box.replaceChildren();
  const hits = [];
  for (const id of rec.itemIds) {
    if (String(id).toLowerCase().includes(q)) hits.push(id);
    if (hits.length >= 400) break;
  }
  hits.sort((a, b) => (popularRank.get(a) ?? 1e9) - (popularRank.get(b) ?? 1e9));
  box.replaceChildren(...hits.slice(0, 24).map((id) => chip(id, { onClick: () => add(id) })));
}

async function main() {
  const info = await (await fetch("site.json")).json();
  const t0 = performance.now();
  rec = await load(info.artifact, { backend: info.backend });
  const loadMs = performance.now() - t0;
  popularRank = new Map(Array.from(rec.artifact.popular, (i, r) => [rec.itemIds[i], r]));
  const modelBytes = [...rec.artifact.models.values()].reduce((a, b) => a + b.length, 0);
  $("backend").textContent = `${rec.backendName} (wasm)`;
  $("model-size").textContent = `${mb(modelBytes)} · ${rec.numItems.toLocaleString()} items`;
  $("download").textContent = `${mb(info.download_bytes)} (wasm ${mb(info.parts.wasm)})`;
  $("download").title = Object.entries(info.parts).map(([k, v]) => `${k}: ${mb(v)}`).join("\n");
  $("status").textContent = `ready in ${(loadMs / 1000).toFixed(2)} s`;
  const historyMode = rec.modes.includes("history");
  const fresh = () => (historyMode ? rec.session() : userSession(0));
  session = fresh();
  $("borrow").hidden = rec.numUsers === 0;
  $("popular").replaceChildren(...Array.from(rec.artifact.popular.subarray(0, 14), (i) => chip(rec.itemIds[i], { onClick: () => add(rec.itemIds[i]) })));
  $("search").disabled = false;
  $("search").addEventListener("input", search);
  $("clear").addEventListener("click", () => { session = fresh(); refresh().catch(fail); });
  $("borrow").addEventListener("click", () => {
    const u = Math.floor(Math.random() * rec.numUsers);
    if (!historyMode) {
      session = userSession(u);
      return refresh().catch(fail);
    }
    session = rec.session(Array.from(rec.seen(u).slice(-8), (i) => rec.itemIds[i]));
    refresh().catch(fail);
  });
  await refresh();
  document.body.dataset.state = "ready";
}

main().catch(fail);
