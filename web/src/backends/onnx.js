// onnxruntime-web, wasm execution provider: runs lookup.onnx / history.onnx over their shared
// tables.bin (ONNX external data, passed from memory: the bytes the loader fetched and hashed).
// One wasm thread: threads need a cross-origin isolated page (COOP/COEP) and gave nothing at
// this model size. Tensors are disposed after each call.

import { ArtifactError, BackendUnavailable } from "../errors.js";
import { checkModelIo } from "../artifact.js";

let configured = false;

export async function create(artifact, { ortWasmPath }) {
  let ort;
  try {
    ort = await import("onnxruntime-web/wasm");
  } catch (e) {
    throw new BackendUnavailable(`onnx: onnxruntime-web could not be imported (${e?.message ?? e})`);
  }
  if (!configured) {
    // the object form names the .wasm only: the bundle's own glue code is used, not a
    // separately fetched ort-wasm-simd-threaded.mjs
    ort.env.wasm.wasmPaths = { wasm: new URL("ort-wasm-simd-threaded.wasm", ortWasmPath).href };
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.proxy = false;
    configured = true;
  }
  const m = artifact.manifest;
  const sessions = {};
  const disposeAll = () => Object.values(sessions).forEach((s) => s.release?.());
  try {
    for (const mode of m.modes) {
      const { file, external_data: data } = m.signatures[mode];
      // the tables: external data in one file shared by the modes, given as the hashed bytes
      const externalData = data == null ? undefined : [{ path: data, data: artifact.models.get(data) }];
      try {
        sessions[mode] = await ort.InferenceSession.create(artifact.models.get(file), { executionProviders: ["wasm"], externalData });
      } catch (e) {
        throw new ArtifactError(`${file}: onnxruntime-web refused the model (${e?.message ?? e})`);
      }
      const io = (meta) => Object.fromEntries(meta.map((d) => [d.name, { dtype: d.type, shape: Array.from(d.shape ?? []) }]));
      checkModelIo(m, mode, { inputs: io(sessions[mode].inputMetadata), outputs: io(sessions[mode].outputMetadata) }, file);
    }
  } catch (e) {
    disposeAll();
    throw e;
  }

  async function run(mode, feeds) {
    const inputs = Object.fromEntries(Object.entries(feeds).map(([n, a]) => [n, new ort.Tensor("int32", Int32Array.from(a), [a.length])]));
    let out = null;
    try {
      out = await sessions[mode].run(inputs);
      return { scores: Float32Array.from(out.scores.data), items: Int32Array.from(out.items.data) };
    } finally {
      for (const t of Object.values(inputs)) t.dispose();
      if (out) for (const t of Object.values(out)) t.dispose();
    }
  }

  return {
    name: "onnx",
    build: "ort-wasm-simd-threaded (1 thread)",
    lookup: (user, exclude) => run("lookup", { user, exclude }),
    history: (items, length) => run("history", { history: items, length }),
    dispose: disposeAll,
  };
}
