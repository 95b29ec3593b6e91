// A tiny artifact built in memory (manifest, id maps, .npy files, hashes) and a model stand-in
// whose scores are known, so the recommender's rules can be checked against brute force.

import { createHash } from "node:crypto";

export const sha = (b) => createHash("sha256").update(b).digest("hex");

/** A 1-D little-endian .npy file (format 1.0). */
export function npy(values, descr = "<i4") {
  const Type = { "<i4": Int32Array, "<u2": Uint16Array, "<i8": BigInt64Array, "<f4": Float32Array }[descr];
  const data = new Type(descr === "<i8" ? values.map(BigInt) : values);
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${values.length},), }`;
  header += " ".repeat(63 - ((10 + header.length) % 64)) + "\n";
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(data.buffer), 10 + header.length);
  return out;
}

/** Score of item i for "user vector" v: distinct, deterministic, no ties. */
export const score = (v, i) => Math.sin(v * 12.9898 + i * 78.233) * 1000 + i * 1e-3;

/** Files of a small tflite-target artifact: `numItems` items "item-0".., users "0".. */
export function makeArtifact({ numUsers = 6, numItems = 30, k = 8, historyCapacity = 4, excludeCapacity = 3, seen = null, itemIds = null } = {}) {
  const te = new TextEncoder();
  const seenLists = seen ?? Array.from({ length: numUsers }, (_, u) => [u % numItems, (u * 5 + 1) % numItems].filter((x, j, a) => a.indexOf(x) === j).sort((a, b) => a - b));
  const indptr = [0];
  for (const s of seenLists) indptr.push(indptr[indptr.length - 1] + s.length);
  const popular = Array.from({ length: numItems }, (_, i) => (i * 7) % numItems);
  const files = new Map([
    ["model.tflite", te.encode("not really a model")],
    ["users.json", te.encode(JSON.stringify(Array.from({ length: numUsers }, (_, u) => String(u))))],
    ["items.json", te.encode(JSON.stringify(itemIds ?? Array.from({ length: numItems }, (_, i) => `item-${i}`)))],
    ["popular.npy", npy(popular)],
    ["seen_indptr.npy", npy(indptr, "<i8")],
    ["seen_indices.npy", npy(seenLists.flat(), "<u2")],
  ]);
  const spec = (dtype, n) => ({ dtype, shape: [n] });
  const sig = (key, inputs) => ({ file: "model.tflite", key, inputs, outputs: { scores: spec("float32", k), items: spec("int32", k) } });
  const manifest = {
    format: "edgerec-artifact", format_version: 1, target: "tflite",
    num_users: numUsers, num_items: numItems, dim: 4, k, history_capacity: historyCapacity,
    exclude_capacity: excludeCapacity, pad_index: numItems, modes: ["lookup", "history"],
    signatures: {
      lookup: sig("lookup", { user: spec("int32", 1), exclude: spec("int32", excludeCapacity) }),
      history: sig("history", { history: spec("int32", historyCapacity), length: spec("int32", 1) }),
    },
    quantization: { weights: "float32", activations: "float" },
    id_maps: { users: "users.json", items: "items.json" }, popular: "popular.npy",
    seen: { indptr: "seen_indptr.npy", indices: "seen_indices.npy" }, eval: null,
    metrics: {}, toolkit: {}, source: {},
    files: {},
  };
  return { manifest, files, popular, seenLists };
}

/** Serve `art` as a fetch() under http://test/a/ (the manifest hashed now unless `hashed`). */
export function serve(art, { rehash = true } = {}) {
  if (rehash) art.manifest.files = Object.fromEntries([...art.files].map(([n, b]) => [n, sha(b)]));
  return async (url) => {
    const name = decodeURIComponent(new URL(url).pathname.replace(/^\/a\//, ""));
    const body = name === "manifest.json" ? new TextEncoder().encode(JSON.stringify(art.manifest)) : art.files.get(name);
    if (body === undefined) return { ok: false, status: 404, arrayBuffer: async () => new ArrayBuffer(0) };
    return { ok: true, status: 200, arrayBuffer: async () => body.slice().buffer };
  };
}

/** A model stand-in obeying the signatures: top-k of score(), exclusions masked in the graph. */
export function fakeBackend(m, { ignoreExclusions = false } = {}) {
  const calls = [];
  const top = (v, banned) => {
    const order = Array.from({ length: m.num_items }, (_, i) => i)
      .map((i) => [banned.has(i) && !ignoreExclusions ? -1e9 : score(v, i), i])
      .sort((a, b) => b[0] - a[0]).slice(0, m.k);
    return { scores: Float32Array.from(order, (x) => x[0]), items: Int32Array.from(order, (x) => x[1]) };
  };
  return {
    name: "fake", build: "test", calls,
    lookup: async (user, exclude) => {
      calls.push(["lookup", user[0], Array.from(exclude)]);
      return top(user[0], new Set(exclude));
    },
    history: async (items, length) => {
      const h = Array.from(items.subarray(0, length[0]));
      calls.push(["history", h]);
      return top(1000 + h.reduce((a, b) => a + b, 0), new Set(h));
    },
    dispose: () => {},
  };
}
