// Fetching and checking an artifact over HTTP, before any of it reaches an interpreter: the
// manifest against runtime/manifest.schema.json (the same file the Python runtime reads), the
// SHA-256 of every file used against the manifest, then the id maps, the popular list and the
// seen-items CSR, with the Python runtime's rules (runtime/artifact.py).

import { ArtifactError, ChecksumError } from "./errors.js";
import { readIntVector } from "./npy.js";
import { firstError } from "./schema.js";
import { sha256Hex } from "./sha256.js";
import SCHEMA from "./manifest.schema.json" with { type: "json" };

export const MANIFEST = "manifest.json";
export const MASKED_SCORE = -1e8;
const MAX_MANIFEST_BYTES = 16 << 20;

/** Raise ArtifactError unless `m` is a manifest the runtimes can serve (the shared schema). */
export function validateManifest(m) {
  const error = firstError(m, SCHEMA);
  if (error !== null) throw new ArtifactError(`manifest: ${error}`);
}

/** The directory URL of an artifact, with its trailing slash. */
export function artifactBase(url, page = globalThis.location?.href) {
  const s = String(url);
  return new URL(s.endsWith("/") ? s : s + "/", page);
}

/**
 * Fetch one file of the artifact as bytes.
 * @returns {Promise<Uint8Array>}
 */
export async function fetchBytes(base, name, fetchFn) {
  const url = new URL(name, base);
  let res;
  try {
    res = await fetchFn(url.href);
  } catch (e) {
    throw new ArtifactError(`${base.href}: cannot fetch ${name} (${e?.message ?? e})`);
  }
  if (res.status === 404) throw new ArtifactError(`${base.href}: ${name} is listed in the manifest but missing`);
  if (!res.ok) throw new ArtifactError(`${base.href}: cannot fetch ${name} (HTTP ${res.status})`);
  return new Uint8Array(await res.arrayBuffer());
}

/** Fetch `name` and check it against its SHA-256 in the manifest. */
export async function fetchVerified(base, manifest, name, fetchFn) {
  const want = manifest.files[name];
  if (want === undefined) throw new ArtifactError(`${base.href}: ${name} is not listed in 'files'`);
  const bytes = await fetchBytes(base, name, fetchFn);
  if ((await sha256Hex(bytes)) !== want) {
    throw new ChecksumError(`${base.href}: ${name} does not match its SHA-256 in the manifest (corrupt, truncated or edited)`);
  }
  return bytes;
}

function parseJson(bytes, what) {
  let text;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new ArtifactError(`${what}: invalid JSON (not UTF-8)`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ArtifactError(`${what}: invalid JSON (${e.message})`);
  }
}

/** Read and validate manifest.json at `base`. */
export async function readManifest(base, fetchFn) {
  const bytes = await fetchBytes(base, MANIFEST, fetchFn).catch((e) => {
    if (e instanceof ArtifactError && / is listed in the manifest but missing$/.test(e.message)) {
      throw new ArtifactError(`${base.href}: no ${MANIFEST} (not an edgerec artifact)`);
    }
    throw e;
  });
  if (bytes.length > MAX_MANIFEST_BYTES) throw new ArtifactError(`${base.href}${MANIFEST}: larger than ${MAX_MANIFEST_BYTES} bytes`);
  const m = parseJson(bytes, `${base.href}${MANIFEST}`);
  try {
    validateManifest(m);
  } catch (e) {
    throw new ArtifactError(`${base.href}${MANIFEST}: ${e.message}`);
  }
  return m;
}

function loadIds(bytes, name, count, what, base) {
  const ids = parseJson(bytes, `${base.href}${name}`);
  if (!Array.isArray(ids) || !ids.every((x) => typeof x === "string" || Number.isInteger(x))) {
    throw new ArtifactError(`${base.href}: ${name} must be a JSON list of string or integer ${what} ids`);
  }
  if (ids.length !== count) throw new ArtifactError(`${base.href}: ${name} has ${ids.length} ${what} ids, the manifest says ${count}`);
  if (new Set(ids).size !== ids.length) throw new ArtifactError(`${base.href}: ${name} has duplicate ${what} ids`);
  return ids;
}

function inRange(a, n) {
  for (let i = 0; i < a.length; i++) if (!(a[i] >= 0 && a[i] < n)) return false;
  return true;
}

/**
 * Fetch, hash and check everything a recommender needs: the validated manifest, id maps,
 * popular items, seen CSR, and the bytes of each model file and of the external data the
 * signatures name (`models`, by file name; not yet given to an interpreter).
 * Files the runtime does not use (eval.json, numpy tables) are left on the server; whatever is
 * read later (the selftest's eval.json) goes through fetchVerified too.
 */
export async function loadArtifact(url, { fetch: fetchFn = globalThis.fetch?.bind(globalThis) } = {}) {
  const base = artifactBase(url);
  const m = await readManifest(base, fetchFn);
  // the model files and the files they read their tables from (ONNX external data, shared by the modes)
  const modelFiles = [...new Set(m.modes.flatMap((mode) => [m.signatures?.[mode]?.file, m.signatures?.[mode]?.external_data]).filter((f) => f != null))];
  const names = [m.id_maps.users, m.id_maps.items, m.popular, ...(m.seen ? [m.seen.indptr, m.seen.indices] : []), ...modelFiles];
  const fetched = await Promise.all(names.map((n) => fetchVerified(base, m, n, fetchFn)));
  const bytes = new Map(names.map((n, i) => [n, fetched[i]]));

  const nItems = m.num_items, nUsers = m.num_users;
  const userIds = loadIds(bytes.get(m.id_maps.users), m.id_maps.users, nUsers, "user", base);
  const itemIds = loadIds(bytes.get(m.id_maps.items), m.id_maps.items, nItems, "item", base);

  const popular = wrap(base, () => readIntVector(bytes.get(m.popular), m.popular));
  if (!inRange(popular, nItems)) throw new ArtifactError(`${base.href}: ${m.popular} has item indices outside [0, ${nItems})`);
  if (new Set(popular).size !== popular.length) throw new ArtifactError(`${base.href}: ${m.popular} repeats items`);

  let seenIndptr = null, seenIndices = null;
  if (m.seen != null) {
    seenIndptr = wrap(base, () => readIntVector(bytes.get(m.seen.indptr), m.seen.indptr));
    seenIndices = wrap(base, () => readIntVector(bytes.get(m.seen.indices), m.seen.indices));
    let monotone = seenIndptr.length === nUsers + 1 && seenIndptr[0] === 0 && seenIndptr[nUsers] === seenIndices.length;
    for (let i = 1; monotone && i < seenIndptr.length; i++) monotone = seenIndptr[i] >= seenIndptr[i - 1];
    if (!monotone) throw new ArtifactError(`${base.href}: seen-items CSR indptr is not a monotone [num_users+1] array covering the indices`);
    if (!inRange(seenIndices, nItems)) throw new ArtifactError(`${base.href}: seen-items indices outside [0, ${nItems})`);
  }
  const models = new Map(modelFiles.map((f) => [f, bytes.get(f)]));
  const sizes = Object.fromEntries(names.map((n) => [n, bytes.get(n).length]));
  return { base, manifest: m, userIds, itemIds, popular, seenIndptr, seenIndices, models, sizes, fetch: fetchFn };
}

function wrap(base, fn) {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ArtifactError) throw new ArtifactError(`${base.href}: ${e.message}`);
    throw e;
  }
}

/** The input/output names, dtypes and shapes the contract fixes for `mode`. */
export function expectedIo(m, mode) {
  const spec = (dtype, n) => ({ dtype, shape: [n] });
  const inputs = mode === "lookup"
    ? { user: spec("int32", 1), exclude: spec("int32", m.exclude_capacity) }
    : { history: spec("int32", m.history_capacity), length: spec("int32", 1) };
  return { inputs, outputs: { scores: spec("float32", m.k), items: spec("int32", m.k) } };
}

/** Compare the I/O an interpreter reports for `mode` with the contract (as check_model_io). */
export function checkModelIo(m, mode, actual, where) {
  const want = expectedIo(m, mode);
  for (const side of ["inputs", "outputs"]) {
    const got = actual[side] ?? {};
    const a = Object.keys(got).sort(), b = Object.keys(want[side]).sort();
    if (a.join(",") !== b.join(",")) {
      throw new ArtifactError(`${where}: signature "${mode}" has ${side} [${a}], the manifest says [${b}]`);
    }
    for (const [name, { dtype, shape }] of Object.entries(want[side])) {
      const g = got[name];
      // a dynamic dimension (ONNX symbolic, TFLite -1) is not a mismatch
      const same = g.dtype === dtype && g.shape.length === shape.length
        && g.shape.every((d, i) => d === shape[i] || typeof d !== "number" || d < 0);
      if (!same) {
        throw new ArtifactError(`${where}: signature "${mode}" ${side.slice(0, -1)} "${name}" is ${g.dtype}[${g.shape}], the manifest says ${dtype}[${shape}]`);
      }
    }
  }
}
