// edgerec in the browser: `const rec = await load(url)` then `await rec.recommend(user, k)`,
// `await rec.recommendFromHistory(items, k)`, `rec.session()`. See docs/embedding.md.
//
// The module imports its npm dependencies by their package names ("@litertjs/core",
// "onnxruntime-web/wasm", "@noble/hashes/sha2.js"), each only when needed: a page maps them
// with an import map (`edgerec web` writes one), a bundler resolves them as usual.

import { fetchVerified, loadArtifact } from "./artifact.js";
import { ArtifactError, BackendUnavailable, InvalidArgumentError } from "./errors.js";
import { Recommender, Session } from "./recommender.js";

export { ArtifactError, BackendUnavailable, ChecksumError, EdgerecError, InvalidArgumentError, UnknownIdError } from "./errors.js";
export { validateManifest } from "./artifact.js";
export { sha256Implementation } from "./sha256.js";
export { Recommender, Session };

export const BACKENDS = ["litert", "onnx"];
const FOR_TARGET = { tflite: "litert", onnx: "onnx" };

/**
 * Fetch, verify and load the artifact at `url` (a directory URL, relative to the page).
 *
 * @param {string|URL} url the artifact directory
 * @param {object} [options]
 * @param {"auto"|"litert"|"onnx"} [options.backend] "auto": the interpreter for the artifact's target
 * @param {string|URL} [options.wasmPath] LiteRT.js's wasm directory (default: ./vendor/litert/ beside this module)
 * @param {string|URL} [options.ortWasmPath] onnxruntime-web's wasm directory (default: ./vendor/ort/)
 * @param {Function} [options.fetch] a fetch() to read files with (default: the page's)
 * @param {Function} [options.makeBackend] (artifact) => backend, instead of an interpreter (tests)
 * @returns {Promise<Recommender>}
 */
export async function load(url, options = {}) {
  const backend = options.backend ?? "auto";
  if (typeof backend !== "string" || !(backend === "auto" || BACKENDS.includes(backend))) {
    throw new InvalidArgumentError(`unknown backend ${JSON.stringify(backend)}; choose "auto" or one of ${JSON.stringify(BACKENDS)}`);
  }
  const artifact = await loadArtifact(url, { fetch: options.fetch });
  const target = artifact.manifest.target;
  const name = backend === "auto" ? FOR_TARGET[target] : backend;
  if (options.makeBackend) return new Recommender(artifact, await options.makeBackend(artifact));
  if (name === undefined) {
    throw new BackendUnavailable(`no browser interpreter for a "${target}" artifact (export --target tflite or onnx)`);
  }
  if (FOR_TARGET[target] !== name) {
    throw new InvalidArgumentError(`backend "${name}" cannot run a "${target}" artifact (use "${FOR_TARGET[target]}" or "auto")`);
  }
  const here = import.meta.url;
  const impl = name === "litert" ? await import("./backends/litert.js") : await import("./backends/onnx.js");
  const made = await impl.create(artifact, {
    wasmPath: options.wasmPath ?? new URL("./vendor/litert/", here),
    ortWasmPath: options.ortWasmPath ?? new URL("./vendor/ort/", here),
  });
  return new Recommender(artifact, made);
}

/** The artifact's eval sample (eval.json), fetched and checked against its SHA-256. */
export async function loadEvalSample(rec) {
  const a = rec.artifact;
  const name = a.manifest.eval;
  if (name == null) throw new ArtifactError("this artifact has no eval sample (export it with --with-eval)");
  const bytes = await fetchVerified(a.base, a.manifest, name, a.fetch);
  const doc = JSON.parse(new TextDecoder().decode(bytes));
  if (doc?.format !== "edgerec-eval" || !Array.isArray(doc.users)) throw new ArtifactError(`${name}: not an edgerec eval file`);
  return doc;
}
