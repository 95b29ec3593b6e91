// The public face of the browser runtime: ids in, [{item, score}, ...] out, following the
// Python runtime's rules exactly (runtime/recommender.py, docs/embedding.md):
// - ids match exactly as stored in items.json/users.json; failing that, an integer matches the
//   string id with the same decimal spelling (12 -> "12") and a canonical decimal string
//   matches an integer id ("12" -> 12). Booleans and non-integer numbers are never ids.
// - k is clamped to the model's k and to the items left after exclusions.
// - a history keeps the last occurrence of each item, then the last history_capacity items;
//   older items are still never recommended.
// - lookup excludes the user's seen items plus `exclude`: the first exclude_capacity go in the
//   graph; the rest are filtered afterwards and, if they crowded the model's top-k, moved into
//   the graph's list and the model asked again (the answer stays exact).
// - when the model cannot fill k, the rest is popular items scored with the model's lowest
//   returned score; an empty history returns popular items with score 0.

import { MASKED_SCORE } from "./artifact.js";
import { ArtifactError, InvalidArgumentError, UnknownIdError, show } from "./errors.js";

const DECIMAL = /^-?(0|[1-9][0-9]{0,17})$/;
const MAX_ROUNDS = 8; // model calls for one lookup when exclusions overflow the graph's list

export class Recommender {
  /**
   * @param {object} artifact from loadArtifact()
   * @param {object} backend {name, build, lookup(user, exclude), history(items, length), dispose()}
   */
  constructor(artifact, backend) {
    const m = artifact.manifest;
    this.artifact = artifact;
    this.manifest = m;
    this.modes = [...m.modes];
    this.k = m.k;
    this.historyCapacity = m.history_capacity;
    this.excludeCapacity = m.exclude_capacity;
    this.numItems = m.num_items;
    this.numUsers = m.num_users;
    this.backend = backend;
    this.backendName = backend.name;
    this._itemIds = artifact.itemIds;
    this._userIds = artifact.userIds;
    this._itemIndex = new Map(artifact.itemIds.map((x, i) => [x, i]));
    this._userIndex = new Map(artifact.userIds.map((x, i) => [x, i]));
    this._popular = artifact.popular;
    this._queue = Promise.resolve(); // one model call at a time: the wasm interpreters are not re-entrant
    this._user = new Int32Array(1);
    this._exclude = new Int32Array(this.excludeCapacity);
    this._history = new Int32Array(this.historyCapacity);
    this._length = new Int32Array(1);
  }

  // -- public API ------------------------------------------------------------------------------

  /** Top-k items for a known user (lookup mode), never one the user saw nor one in `exclude`. */
  async recommend(userId, k = 10, exclude = undefined) {
    this._needMode("lookup");
    k = checkK(k);
    const u = this._resolve(this._userIndex, userId, "user");
    let excluded = this.seen(u);
    if (exclude !== undefined && exclude !== null) {
      const extra = this._items(exclude, "exclude");
      if (extra.length) excluded = union(excluded, extra);
    }
    return this._lookup(u, excluded, k);
  }

  /** recommend() for each user, in order (ids are all checked first). */
  async recommendMany(userIds, k = 10) {
    const users = asList(userIds, "userIds");
    for (const u of users) this._resolve(this._userIndex, u, "user");
    const out = [];
    for (const u of users) out.push(await this.recommend(u, k));
    return out;
  }

  /** Top-k items for an anonymous user who interacted with `itemIds` (history mode). */
  async recommendFromHistory(itemIds, k = 10) {
    this._needMode("history");
    k = checkK(k);
    return this._historyCall(dedupeKeepLast(this._items(itemIds, "history")), k);
  }

  /** A growing history for one user: .add(item), .recommend(k). */
  session(history = []) {
    this._needMode("history");
    return new Session(this, this._items(history, "history"));
  }

  /** The id of the item at dense `index`. */
  itemId(index) {
    if (!Number.isInteger(index) || index < 0 || index >= this.numItems) {
      throw new InvalidArgumentError(`item index must be an integer in 0..${this.numItems - 1}, got ${show(index)}`);
    }
    return this._itemIds[index];
  }

  /** Every item id, in dense-index order (for pickers and search boxes). */
  get itemIds() {
    return this._itemIds;
  }

  /** Every user id, in dense-index order. */
  get userIds() {
    return this._userIds;
  }

  /** Dense item indices the user at dense index `u` saw in training. */
  seen(u) {
    const a = this.artifact;
    if (!a.seenIndptr) return new Int32Array(0);
    return a.seenIndices.subarray(a.seenIndptr[u], a.seenIndptr[u + 1]);
  }

  /** Free the interpreter's memory; the recommender cannot be used afterwards. */
  dispose() {
    this.backend.dispose();
  }

  // -- argument checking ---------------------------------------------------------------------

  _needMode(mode) {
    if (!this.modes.includes(mode)) {
      throw new InvalidArgumentError(`this artifact was exported without "${mode}" mode (it has ${JSON.stringify(this.modes)})`);
    }
  }

  _resolve(index, ident, what) {
    if (typeof ident !== "string" && !Number.isInteger(ident)) {
      throw new InvalidArgumentError(`a ${what} id must be a string or an integer, got ${typeName(ident)} ${show(ident)}`);
    }
    let i = index.get(ident);
    if (i === undefined) {
      if (typeof ident === "number") i = index.get(String(ident));
      else if (DECIMAL.test(ident) && Number.isSafeInteger(Number(ident))) i = index.get(Number(ident)); // "-0" finds 0, as in Python
    }
    if (i === undefined) throw new UnknownIdError(`unknown ${what} id ${show(ident)}`);
    return i;
  }

  _items(ids, what) {
    return asList(ids, what).map((x) => this._resolve(this._itemIndex, x, "item"));
  }

  // -- model calls ---------------------------------------------------------------------------

  _run(fn) {
    const next = this._queue.then(fn, fn);
    this._queue = next.catch(() => {});
    return next;
  }

  _callLookup(u, inGraph) {
    return this._run(() => {
      this._user[0] = u;
      this._exclude.fill(this.numItems);
      this._exclude.set(inGraph.subarray(0, this.excludeCapacity));
      return this.backend.lookup(this._user, this._exclude);
    });
  }

  _callHistory(window) {
    return this._run(() => {
      this._history.fill(this.numItems);
      this._history.set(window);
      this._length[0] = window.length;
      return this.backend.history(this._history, this._length);
    });
  }

  /** The answer in one pass when the graph held every exclusion and its first k outputs are
   * k real items, none excluded (the common case); null leaves it to _collect. */
  _direct({ scores, items }, k, excluded) {
    if (scores.length < k || items.length !== scores.length) return null;
    for (let j = 0; j < k; j++) {
      if (!(scores[j] > MASKED_SCORE) || items[j] < 0 || items[j] >= this.numItems || excluded.has(items[j])) return null;
    }
    const out = [];
    for (let j = 0; j < k; j++) out.push([items[j], scores[j]]);
    return this._named(out);
  }

  /** Append the model's valid, allowed items to `picked` (up to k); return the banned items
   * that took a slot and the lowest real score (null if the model ran out of items). */
  _collect({ scores, items }, banned, k, picked, outside) {
    if (scores.length !== items.length) throw new ArtifactError("the model returned scores and items of different shapes");
    const m = Math.min(k + outside, scores.length);
    const hits = [];
    let low = null;
    for (let j = 0; j < m; j++) {
      const s = scores[j], i = items[j];
      if (!(s > MASKED_SCORE)) return { hits, low: null }; // masked, or NaN: the rest is masked too
      if (!(i >= 0 && i < this.numItems)) throw new ArtifactError(`the model returned item index ${i} outside [0, ${this.numItems})`);
      low = s;
      if (banned.has(i)) hits.push(i);
      else {
        picked.push([i, s]);
        if (picked.length >= k) break;
      }
    }
    return { hits, low };
  }

  async _lookup(u, excluded, k) {
    k = Math.min(k, this.k);
    const E = this.excludeCapacity;
    const banned = new Set(excluded);
    let first = null;
    if (excluded.length <= E) {
      first = await this._callLookup(u, excluded);
      const out = this._direct(first, k, banned);
      if (out !== null) return out;
    }
    let inGraph = excluded.subarray(0, E);
    const forced = [];
    let low = null;
    let picked = [];
    for (let round = 0; round < MAX_ROUNDS; round++) {
      let res;
      if (first !== null) [res, first] = [first, null];
      else res = await this._callLookup(u, inGraph);
      picked = [];
      const c = this._collect(res, banned, k, picked, excluded.length - inGraph.length);
      low = c.low;
      if (picked.length >= k || !c.hits.length || low === null) return this._finish(picked);
      // Banned items beyond the graph's list took slots: move them into it and ask again.
      const known = new Set(forced);
      const fresh = c.hits.filter((h) => !known.has(h));
      if (!fresh.length) break; // the model ignored its exclusion list
      forced.push(...fresh);
      if (forced.length > E) break;
      for (const h of fresh) known.add(h);
      const rest = Array.from(excluded.subarray(0, E + forced.length)).filter((x) => !known.has(x));
      inGraph = Int32Array.from([...forced, ...rest].slice(0, E));
    }
    return this._finish(this._fillPopular(picked, banned, k, low));
  }

  async _historyCall(hist, k) {
    k = Math.min(k, this.k);
    if (!hist.length) return this._finish(this._fillPopular([], null, k, 0.0));
    const C = this.historyCapacity;
    const window = hist.slice(-C);
    const banned = new Set(hist);
    const res = await this._callHistory(window);
    if (hist.length <= C) {
      const out = this._direct(res, k, banned);
      if (out !== null) return out;
    }
    let picked = [];
    const c = this._collect(res, banned, k, picked, hist.length - window.length);
    if (picked.length < k && c.hits.length && c.low !== null) picked = this._fillPopular(picked, banned, k, c.low);
    return this._finish(picked);
  }

  _fillPopular(picked, banned, k, score) {
    score = score ?? 0.0;
    const taken = new Set(picked.map(([i]) => i));
    const out = [...picked];
    for (const i of this._popular) {
      if (out.length >= k) break;
      if (!taken.has(i) && (banned === null || !banned.has(i))) {
        out.push([i, score]);
        taken.add(i);
      }
    }
    return out;
  }

  _finish(picked) {
    return this._named(picked);
  }

  _named(pairs) {
    return pairs.map(([i, s]) => ({ item: this._itemIds[i], score: s }));
  }
}

export class Session {
  constructor(rec, history) {
    this._rec = rec;
    this._hist = dedupeKeepLast(history);
  }

  /** Record an interaction; re-adding an item moves it to the most recent position. */
  add(itemId) {
    const i = this._rec._resolve(this._rec._itemIndex, itemId, "item");
    const at = this._hist.indexOf(i);
    if (at >= 0) this._hist.splice(at, 1);
    this._hist.push(i);
  }

  /** Forget an item of the history (not in the Python runtime: a page's "undo"). */
  remove(itemId) {
    const i = this._rec._resolve(this._rec._itemIndex, itemId, "item");
    const at = this._hist.indexOf(i);
    if (at >= 0) this._hist.splice(at, 1);
  }

  /** Top-k for the history so far (popular items while it is empty). */
  recommend(k = 10) {
    return this._rec._historyCall(this._hist, checkK(k));
  }

  /** The items so far, oldest first, as stored in items.json. */
  get history() {
    return this._hist.map((i) => this._rec._itemIds[i]);
  }
}

function checkK(k) {
  if (!Number.isInteger(k)) throw new InvalidArgumentError(`k must be a positive integer, got ${typeName(k)} ${show(k)}`);
  if (k <= 0) throw new InvalidArgumentError(`k must be a positive integer, got ${k}`);
  return k;
}

function typeName(x) {
  if (x === null) return "null";
  if (Array.isArray(x)) return "array";
  return typeof x;
}

function asList(ids, what) {
  if (ids === undefined || ids === null) return [];
  if (typeof ids === "string" || typeof ids[Symbol.iterator] !== "function") {
    throw new InvalidArgumentError(`${what} must be a list of ids, got ${typeName(ids)}`);
  }
  return Array.from(ids);
}

/** Each item once, at the position of its last occurrence. */
function dedupeKeepLast(idx) {
  const seen = new Set();
  const out = [];
  for (let j = idx.length - 1; j >= 0; j--) {
    if (!seen.has(idx[j])) {
      seen.add(idx[j]);
      out.push(idx[j]);
    }
  }
  return out.reverse();
}

/** Sorted distinct values of two index lists. */
function union(a, b) {
  const s = Int32Array.from(new Set([...a, ...b])).sort();
  return s;
}
