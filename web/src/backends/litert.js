// LiteRT.js (@litertjs/core): runs model.tflite on its wasm (XNNPACK) CPU path.
// loadLiteRt may be called once per page, so the first load starts it and every later
// artifact shares it; tensors live in wasm memory and are deleted after each call.

import { ArtifactError, BackendUnavailable } from "../errors.js";
import { checkModelIo } from "../artifact.js";

let started = null; // the page's one loadLiteRt promise

async function liteRt(wasmPath) {
  const lib = await import("@litertjs/core");
  if (started === null) {
    const existing = lib.getGlobalLiteRtPromise?.();
    started = existing ?? lib.loadLiteRt(wasmPath);
    started.catch(() => { started = null; });
  }
  try {
    await started;
  } catch (e) {
    throw new BackendUnavailable(`litert: LiteRT.js could not start from ${wasmPath} (${e?.message ?? e})`);
  }
  return lib;
}

export async function create(artifact, { wasmPath }) {
  const m = artifact.manifest;
  const lib = await liteRt(String(wasmPath));
  const file = m.signatures[m.modes[0]].file;
  let model;
  try {
    model = await lib.loadAndCompile(artifact.models.get(file), { accelerator: "wasm" });
  } catch (e) {
    throw new ArtifactError(`${file}: LiteRT.js refused the model (${e?.message ?? e})`);
  }
  const runners = {};
  try {
    for (const mode of m.modes) {
      const key = m.signatures[mode].key;
      const runner = model.signatures[key];
      if (!runner) throw new ArtifactError(`${file}: no signature "${key}" (has ${Object.keys(model.signatures)})`);
      const io = (details) => Object.fromEntries(details.map((d) => [d.name, { dtype: d.dtype, shape: Array.from(d.shape) }]));
      checkModelIo(m, mode, { inputs: io(runner.getInputDetails()), outputs: io(runner.getOutputDetails()) }, file);
      runners[mode] = runner;
    }
  } catch (e) {
    model.delete();
    throw e;
  }

  async function run(mode, feeds) {
    const inputs = Object.fromEntries(Object.entries(feeds).map(([n, a]) => [n, new lib.Tensor(Int32Array.from(a), [a.length])]));
    let outputs = null;
    try {
      outputs = await runners[mode].run(inputs);
      return { scores: Float32Array.from(await outputs.scores.data()), items: Int32Array.from(await outputs.items.data()) };
    } finally {
      for (const t of Object.values(inputs)) t.delete();
      if (outputs) for (const t of Object.values(outputs)) t.delete();
    }
  }

  return {
    name: "litert",
    // the build LiteRT.js picked from wasmPath (it checks for relaxed SIMD itself)
    build: (await lib.supportsFeature("relaxedSimd")) ? "litert_wasm_internal (relaxed SIMD)" : "litert_wasm_compat_internal",
    lookup: (user, exclude) => run("lookup", { user, exclude }),
    history: (items, length) => run("history", { history: items, length }),
    dispose: () => model.delete(),
  };
}
