// The self-test: answer the artifact's eval sample (export --with-eval) in this page, then
// write one JSON into <pre id="selftest">: Recall@20 / NDCG@20 per mode, top-20 agreement
// with the Python runtime's answers (python-answers.json, written by `edgerec web`), p50/p95
// latency in real time, the backend and build. With ?report=1 the JSON is also POSTed to
// ./report (the benchmark's local server).

import { load, loadEvalSample, sha256Implementation } from "./edgerec/edgerec.js";

const K = 20;
const WARMUP = 20;

function recallNdcg(ranked, test) {
  const relevant = new Set(test);
  const hits = ranked.slice(0, K).map((x) => (relevant.has(x) ? 1 : 0));
  const recall = hits.reduce((a, b) => a + b, 0) / relevant.size;
  const dcg = hits.reduce((a, h, i) => a + h / Math.log2(i + 2), 0);
  let idcg = 0;
  for (let i = 0; i < Math.min(K, relevant.size); i++) idcg += 1 / Math.log2(i + 2);
  return [recall, dcg / idcg];
}

function quantile(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Compare one answer with Python's: identical, a near-tie (same scores at every differing
 * position within the interpreters' tolerance), or a mismatch. */
function compare(js, py, tol) {
  if (js.length === py.items.length && js.every((r, j) => r.item === py.items[j])) return { kind: "identical" };
  let worst = 0;
  const n = Math.max(js.length, py.items.length);
  for (let j = 0; j < n; j++) {
    if (js[j]?.item === py.items[j]) continue;
    if (js[j] === undefined || py.items[j] === undefined) return { kind: "mismatch", position: j, gap: null };
    const gap = Math.abs(js[j].score - py.scores[j]) / Math.max(Math.abs(py.scores[j]), 1e-12);
    worst = Math.max(worst, gap);
    if (gap > tol) return { kind: "mismatch", position: j, gap, js: js[j], python: { item: py.items[j], score: py.scores[j] } };
  }
  return { kind: "near-tie", gap: worst };
}

/** The smallest step performance.now() takes here: 0.1 ms in a page that is not
 * cross-origin isolated, 0.005 ms in one that is (COOP/COEP headers). */
function timerResolution() {
  let best = Infinity;
  for (let i = 0; i < 50; i++) {
    const a = performance.now();
    let b = performance.now();
    while (b === a) b = performance.now();
    best = Math.min(best, b - a);
  }
  return best;
}

const report = new URLSearchParams(location.search).get("report") === "1";

async function run() {
  const params = new URLSearchParams(location.search);
  const info = await (await fetch("site.json")).json();
  const answers = await (await fetch("python-answers.json")).json();
  const t0 = performance.now();
  const rec = await load(info.artifact, { backend: params.get("backend") ?? info.backend });
  const loadMs = performance.now() - t0;
  const sample = await loadEvalSample(rec);
  const users = sample.users;
  const modes = rec.modes.filter((m) => users.some((u, i) => answers.users[i]?.[m]));
  const call = (mode, r) => (mode === "lookup" ? rec.recommend(r.user, K) : rec.recommendFromHistory(r.history, K));
  for (const mode of modes) {
    for (let i = 0; i < Math.min(WARMUP, users.length); i++) if (answers.users[i]?.[mode]) await call(mode, users[i]);
  }
  const result = {
    target: info.target, backend: rec.backendName, build: rec.backend.build, python_backend: answers.backend,
    users: users.length, load_ms: loadMs, tolerance: answers.tolerance, sha256: sha256Implementation(),
    cross_origin_isolated: globalThis.crossOriginIsolated ?? false, timer_resolution_ms: timerResolution(), user_agent: navigator.userAgent, modes: {},
  };
  for (const mode of modes) {
    const lat = [], ours = [], theirs = [], nearTies = [], mismatches = [], vsFloat = [];
    let identical = 0, n = 0;
    for (let i = 0; i < users.length; i++) {
      const py = answers.users[i]?.[mode];
      if (!py) continue;
      const t = performance.now();
      const out = await call(mode, users[i]);
      lat.push(performance.now() - t);
      n++;
      ours.push(recallNdcg(out.map((r) => r.item), users[i].test));
      theirs.push(recallNdcg(py.items, users[i].test));
      const ref = (users[i].reference?.[mode] ?? []).slice(0, K);
      if (ref.length) {
        const top = new Set(out.slice(0, K).map((r) => r.item));
        vsFloat.push(ref.filter((x) => top.has(x)).length / ref.length);
      }
      const c = compare(out, py, answers.tolerance);
      if (c.kind === "identical") identical++;
      else if (c.kind === "near-tie") nearTies.push({ user: i, gap: c.gap });
      else mismatches.push({ user: i, ...c });
    }
    lat.sort((a, b) => a - b);
    const mean = (xs, j) => xs.reduce((a, x) => a + x[j], 0) / Math.max(xs.length, 1);
    result.modes[mode] = {
      queries: n,
      "recall@20": mean(ours, 0), "ndcg@20": mean(ours, 1),
      "python_recall@20": mean(theirs, 0), "python_ndcg@20": mean(theirs, 1),
      "agreement@20": (identical + nearTies.length) / Math.max(n, 1),
      "agreement@20_vs_float": vsFloat.length ? vsFloat.reduce((a, b) => a + b, 0) / vsFloat.length : null,
      identical, near_ties: nearTies, mismatches,
      ...(report ? { samples_ms: lat } : {}),
      p50_ms: quantile(lat, 0.5), p95_ms: quantile(lat, 0.95), mean_ms: lat.reduce((a, b) => a + b, 0) / Math.max(lat.length, 1),
    };
  }
  rec.dispose();
  return result;
}

const pre = document.getElementById("selftest");
let result;
try {
  result = await run();
} catch (e) {
  result = { error: `${e?.name ?? "Error"}: ${e?.message ?? e}` };
  const box = document.getElementById("error");
  box.textContent = result.error;
  box.classList.add("show");
}
pre.textContent = JSON.stringify(result, null, 2);
pre.dataset.done = result.error ? "error" : "ok";
if (report) {
  await fetch("report", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(result) });
}
