import assert from "node:assert/strict";
import { test } from "node:test";

import { ArtifactError, ChecksumError, EdgerecError, InvalidArgumentError, UnknownIdError, load } from "../src/edgerec.js";
import { fakeBackend, makeArtifact, score, serve } from "./helpers.js";

const URL_ = "http://test/a/";

async function open(opts = {}, backendOpts = {}) {
  const art = makeArtifact(opts);
  const fetch = serve(art);
  let backend;
  const rec = await load(URL_, { fetch, makeBackend: (a) => (backend = fakeBackend(a.manifest, backendOpts)) });
  return { rec, art, backend: () => backend };
}

/** The exact answer: the k best items by score() not in `banned`. */
function brute(v, banned, k, numItems) {
  return Array.from({ length: numItems }, (_, i) => i).filter((i) => !banned.has(i))
    .sort((a, b) => Math.fround(score(v, b)) - Math.fround(score(v, a))).slice(0, k).map((i) => `item-${i}`);
}

test("lookup excludes the user's seen items and clamps k to the model's k", async () => {
  const { rec, art } = await open();
  const out = await rec.recommend("2", 50);
  assert.equal(out.length, 8);
  assert.deepEqual(out.map((r) => r.item), brute(2, new Set(art.seenLists[2]), 8, 30));
  assert.ok(out.every((r, j) => j === 0 || out[j - 1].score >= r.score));
  assert.deepEqual((await rec.recommend("2", 3)).map((r) => r.item), out.slice(0, 3).map((r) => r.item));
});

test("ids: exact match first, then the same decimal spelling; bools and floats are never ids", async () => {
  const { rec } = await open({ itemIds: [...Array.from({ length: 28 }, (_, i) => `item-${i}`), 12, "12"] });
  assert.deepEqual(await rec.recommend(2, 4), await rec.recommend("2", 4)); // int finds "2"
  await assert.rejects(rec.recommend(true, 4), InvalidArgumentError);
  await assert.rejects(rec.recommend(2.5, 4), InvalidArgumentError);
  await assert.rejects(rec.recommend("02", 4), /unknown user id "02"/);
  // a canonical decimal string finds an integer id (Python's int("-0") is 0 too)
  const n = await open({ itemIds: Array.from({ length: 30 }, (_, i) => i) });
  assert.deepEqual(await n.rec.recommendFromHistory(["3", "-0"], 4), await n.rec.recommendFromHistory([3, 0], 4));
  await assert.rejects(n.rec.recommendFromHistory(["03"], 4), UnknownIdError);
  await assert.rejects(rec.recommend("zz", 4), UnknownIdError);
  // both 12 and "12" are items: each matches itself exactly
  const s = rec.session([12]);
  assert.deepEqual(s.history, [12]);
  s.add("12");
  assert.deepEqual(s.history, [12, "12"]);
});

test("k must be a positive integer; unknown ids in exclude and histories are errors", async () => {
  const { rec } = await open();
  for (const k of [0, -1, 1.5, "3", true, null]) await assert.rejects(rec.recommend("1", k), InvalidArgumentError);
  await assert.rejects(rec.recommend("1", 5, ["nope"]), /unknown item id "nope"/);
  await assert.rejects(rec.recommendFromHistory(["item-1", "nope"], 5), UnknownIdError);
  await assert.rejects(rec.recommendFromHistory("item-1", 5), /history must be a list of ids, got string/);
});

test("exclusions beyond the graph's capacity are moved into the graph: the answer stays exact", async () => {
  const { rec, art, backend } = await open({ k: 8, excludeCapacity: 3 });
  // exclude the user's 4 best items: with the seen ones more than exclude_capacity, all
  // crowding the top-k, but within exclude_capacity + the model's spare slots (k 8 - 4)
  const seen = new Set(art.seenLists[1]);
  const best = brute(1, seen, 4, 30);
  const out = await rec.recommend("1", 4, best);
  const banned = new Set([...seen, ...best.map((x) => Number(x.slice(5)))]);
  assert.deepEqual(out.map((r) => r.item), brute(1, banned, 4, 30));
  // with no spare slot the excluded items that took one are moved into the graph's list
  const tight = await rec.recommend("1", 8, best.slice(0, 2));
  const banned2 = new Set([...seen, ...best.slice(0, 2).map((x) => Number(x.slice(5)))]);
  assert.deepEqual(tight.map((r) => r.item), brute(1, banned2, 8, 30));
  assert.ok(backend().calls.length >= 3, "the model was asked again");
});

test("a model that ignores its exclusions: filtered, then topped up with popular items", async () => {
  const { rec, art } = await open({ k: 8, excludeCapacity: 3 }, { ignoreExclusions: true });
  const seen = new Set(art.seenLists[0]);
  const all = Array.from({ length: 30 }, (_, i) => `item-${i}`).filter((_, i) => !seen.has(i));
  const out = await rec.recommend("0", 8, all.slice(0, 26));
  const banned = new Set([...seen, ...all.slice(0, 26).map((x) => Number(x.slice(5)))]);
  assert.ok(out.every((r) => !banned.has(Number(r.item.slice(5)))));
  assert.equal(out.length, 30 - banned.size);
});

test("history: duplicates keep their last occurrence, the last history_capacity feed the model, all stay excluded", async () => {
  const { rec, backend } = await open({ historyCapacity: 4 });
  const hist = ["item-5", "item-6", "item-5", "item-1", "item-2", "item-3", "item-9"];
  const out = await rec.recommendFromHistory(hist, 8);
  const call = backend().calls.at(-1);
  assert.deepEqual(call, ["history", [1, 2, 3, 9]]);
  const used = new Set([6, 5, 1, 2, 3, 9]);
  assert.ok(out.every((r) => !used.has(Number(r.item.slice(5)))));
  assert.equal(out.length, 8);
});

test("an empty history returns popular items with score 0", async () => {
  const { rec, art } = await open();
  const out = await rec.recommendFromHistory([], 5);
  assert.deepEqual(out.map((r) => r.item), art.popular.slice(0, 5).map((i) => `item-${i}`));
  assert.ok(out.every((r) => r.score === 0));
  const s = rec.session();
  assert.deepEqual(await s.recommend(5), out);
  s.add("item-3"); s.add("item-4"); s.add("item-3");
  assert.deepEqual(s.history, ["item-4", "item-3"]);
  assert.deepEqual(await s.recommend(5), await rec.recommendFromHistory(["item-4", "item-3"], 5));
});

test("a tampered file is refused with a ChecksumError naming it; a missing one with an ArtifactError", async () => {
  const art = makeArtifact();
  const fetch = serve(art);
  art.files.get("popular.npy")[20] ^= 1;
  await assert.rejects(load(URL_, { fetch, makeBackend: () => fakeBackend(art.manifest) }),
    (e) => e instanceof ChecksumError && /popular\.npy does not match its SHA-256/.test(e.message));
  art.files.delete("popular.npy");
  await assert.rejects(load(URL_, { fetch, makeBackend: () => fakeBackend(art.manifest) }), /popular\.npy is listed in the manifest but missing/);
});

/** makeArtifact() as an ONNX artifact: two mode files over one shared tables.bin. */
function onnxArtifact() {
  const art = makeArtifact();
  const te = new TextEncoder();
  art.manifest.target = "onnx";
  art.files.delete("model.tflite");
  for (const mode of ["lookup", "history"]) {
    art.files.set(`${mode}.onnx`, te.encode(`not really the ${mode} model`));
    Object.assign(art.manifest.signatures[mode], { file: `${mode}.onnx`, external_data: "tables.bin" });
  }
  art.files.set("tables.bin", Uint8Array.from({ length: 256 }, (_, i) => i));
  return art;
}

test("an ONNX artifact's shared tables.bin is fetched once, hashed, and handed to the backend with the models", async () => {
  const art = onnxArtifact();
  const fetched = [];
  const serveIt = serve(art);
  const fetch = (url) => { fetched.push(new URL(url).pathname); return serveIt(url); };
  let seen;
  const rec = await load(URL_, { fetch, makeBackend: (a) => { seen = a; return fakeBackend(a.manifest); } });
  assert.deepEqual([...seen.models.keys()].sort(), ["history.onnx", "lookup.onnx", "tables.bin"]);
  assert.deepEqual(seen.models.get("tables.bin"), art.files.get("tables.bin"));
  assert.equal(fetched.filter((p) => p === "/a/tables.bin").length, 1);
  assert.equal((await rec.recommend("2", 3)).length, 3);

  art.files.get("tables.bin")[7] ^= 1;
  await assert.rejects(load(URL_, { fetch, makeBackend: () => fakeBackend(art.manifest) }),
    (e) => e instanceof ChecksumError && /tables\.bin does not match its SHA-256/.test(e.message));
  art.files.delete("tables.bin");
  await assert.rejects(load(URL_, { fetch, makeBackend: () => fakeBackend(art.manifest) }), /tables\.bin is listed in the manifest but missing/);
  const unlisted = onnxArtifact();
  const fetch2 = serve(unlisted);
  delete unlisted.manifest.files["tables.bin"];
  await assert.rejects(load(URL_, { fetch: fetch2, makeBackend: () => fakeBackend(unlisted.manifest) }),
    /external_data "tables\.bin" is not listed in 'files'/);
});

test("the manifest is checked against the shared schema, with the Python runtime's messages", async () => {
  const cases = [
    [{ k: 0 }, /'k' must be an integer >= 1/],
    [{ k: 31 }, /k=31 exceeds num_items=30/],
    [{ format_version: 2 }, /format_version 2 is not supported/],
    [{ pad_index: 3 }, /'pad_index' must equal num_items \(30\)/],
    [{ exclude_capacity: 7 }, /signatures\.lookup\.inputs/],
    [{ popular: "../x.npy" }, /popular "\.\.\/x\.npy" must be a relative path inside the artifact/],
  ];
  for (const [change, re] of cases) {
    const art = makeArtifact();
    const fetch = serve(art);
    Object.assign(art.manifest, change);
    await assert.rejects(load(URL_, { fetch, makeBackend: () => fakeBackend(art.manifest) }), (e) => {
      assert.ok(e instanceof ArtifactError, e.message);
      assert.match(e.message, re);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  }
  const art = makeArtifact();
  const fetch = serve(art);
  delete art.manifest.files["popular.npy"];
  await assert.rejects(load(URL_, { fetch }), /popular "popular\.npy" is not listed in 'files'/);
});

test("errors form one hierarchy and read as one line", async () => {
  const e = new UnknownIdError("unknown\nitem id");
  assert.ok(e instanceof EdgerecError && e instanceof Error);
  assert.equal(e.message, "unknown item id");
  assert.equal(e.name, "UnknownIdError");
  await assert.rejects(load(URL_, { backend: "tflite", fetch: serve(makeArtifact()) }), /unknown backend "tflite"/);
});

test("id maps and arrays are checked: duplicate ids, out-of-range popular items", async () => {
  const art = makeArtifact({ itemIds: [...Array.from({ length: 29 }, (_, i) => `item-${i}`), "item-0"] });
  await assert.rejects(load(URL_, { fetch: serve(art) }), /items\.json has duplicate item ids/);
});
