"""The public face of the runtime: external ids in, ``[(item_id, score), ...]`` out.

A :class:`Recommender` turns ids into dense indices, pads the model inputs, runs the backend,
and cleans its output: it never returns a seen/history item or a masked one, and falls back to
popular items where the model has nothing to say. Every argument is checked before it reaches
an interpreter. The rules it follows (documented in ``docs/embedding.md``):

- ids: an id matches exactly as stored in ``items.json``/``users.json``; failing that, an int
  matches the string id with the same decimal spelling (``12`` -> ``"12"``) and a canonical
  decimal string matches an int id. An exact match always wins, so this is never ambiguous.
  ``bool`` and ``float`` are never ids.
- ``k`` is clamped to the model's ``k`` and to the items that are left after exclusions.
- a history keeps the last occurrence of each item, then the last ``history_capacity`` items;
  older items are still never recommended.
- lookup excludes the user's seen items plus ``exclude``: the first ``exclude_capacity`` go in
  the graph; items beyond that are filtered afterwards and, if they crowded the model's top-k,
  moved into the graph's exclusion list and the model asked again (the answer stays exact).
- when the model cannot fill k (more exclusions than it can hold) the rest is popular items,
  scored with the model's lowest returned score (an upper bound of their true score).
- an empty history returns popular items with score 0.0 (the model needs one item).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Container, Iterable, Sequence
from typing import Any

import numpy as np

from runtime.artifact import MASKED_SCORE, Artifact
from runtime.backends import Backend
from runtime.errors import ArtifactError, InvalidArgumentError, UnknownIdError
from runtime.idmap import DecimalRange

Id = str | int
Recommendation = tuple[Id, float]
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]{0,17})")
_MAX_ROUNDS = 8  # model calls for one lookup when exclusions overflow the graph's list
_SET_LIMIT = 512  # exclusion lists up to this long are checked with a Python set


class Recommender:
    """A loaded artifact. Safe to share between threads (see :meth:`_backend`)."""

    def __init__(self, artifact: Artifact, make_backend: Callable[[], Backend]) -> None:
        self.artifact = artifact
        m = artifact.manifest
        self.manifest: dict[str, Any] = m
        self.modes: tuple[str, ...] = tuple(m["modes"])
        self.k = int(m["k"])
        self.history_capacity = int(m["history_capacity"])
        self.exclude_capacity = int(m["exclude_capacity"])
        self.num_items = artifact.num_items
        self.num_users = artifact.num_users
        self._item_ids = artifact.item_ids
        self._user_ids = artifact.user_ids
        self._item_index = _index(artifact.item_ids)
        self._user_index = _index(artifact.user_ids)
        self._popular = artifact.popular  # int32 array: as a list, 1.5 MB for Gowalla
        self._make_backend = make_backend
        self._local = threading.local()
        first = make_backend()  # fail now, in load(), if the model is unusable
        self.backend_name: str = first.name
        self._shared: Backend | None = first if first.thread_safe else None
        self._local.backend = first

    # -- public API --------------------------------------------------------------------------

    def recommend(self, user_id: Id, k: int = 10, exclude: Iterable[Id] | None = None
                  ) -> list[Recommendation]:
        """Top-k items for a known user (lookup mode), never one the user saw in training
        nor one in ``exclude``."""
        self._need_mode("lookup")
        k = self._check_k(k)
        u = self._resolve(self._user_index, user_id, "user")
        seen = self.artifact.seen(u)
        if exclude is not None:
            extra = np.asarray(self._items(exclude, "exclude"), dtype=np.int32)
            seen = _union(seen, extra) if extra.size else seen
        return self._lookup(u, seen, k)

    def recommend_many(self, user_ids: Iterable[Id], k: int = 10) -> list[list[Recommendation]]:
        """:meth:`recommend` for each user, in order (ids are all checked first)."""
        users = _as_list(user_ids, "user_ids")
        for u in users:
            self._resolve(self._user_index, u, "user")
        return [self.recommend(u, k) for u in users]

    def recommend_from_history(self, item_ids: Iterable[Id], k: int = 10) -> list[Recommendation]:
        """Top-k items for an anonymous user who interacted with ``item_ids`` (history mode),
        never one of those items."""
        self._need_mode("history")
        k = self._check_k(k)
        return self._history(_dedupe_keep_last(self._items(item_ids, "history")), k)

    def session(self, history: Iterable[Id] = ()) -> Session:
        """A growing history for one user: ``.add(item)``, ``.recommend(k)``."""
        self._need_mode("history")
        return Session(self, self._items(history, "history"))

    def item_id(self, index: int) -> Id:
        """The id of the item at dense ``index`` (0 <= index < num_items)."""
        if isinstance(index, bool) or not isinstance(index, int | np.integer) \
                or not 0 <= index < self.num_items:
            raise InvalidArgumentError(f"item index must be an integer in 0..{self.num_items - 1}, "
                                       f"got {index!r}")
        return self._item_ids[int(index)]

    # -- argument checking -------------------------------------------------------------------

    def _need_mode(self, mode: str) -> None:
        if mode not in self.modes:
            raise InvalidArgumentError(f"this artifact was exported without {mode!r} mode "
                                       f"(it has {list(self.modes)})")

    @staticmethod
    def _check_k(k: Any) -> int:
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise InvalidArgumentError(f"k must be a positive integer, got {type(k).__name__} {_show(k)}")
        if k <= 0:
            raise InvalidArgumentError(f"k must be a positive integer, got {int(k)}")
        return int(k)

    @staticmethod
    def _resolve(index: dict[Id, int], ident: Any, what: str) -> int:
        if isinstance(ident, np.integer):
            ident = int(ident)
        elif isinstance(ident, np.str_):
            ident = str(ident)
        if isinstance(ident, bool) or not isinstance(ident, str | int):
            raise InvalidArgumentError(f"a {what} id must be a string or an integer, "
                                       f"got {type(ident).__name__} {_show(ident)}")
        i = index.get(ident)
        if i is None:
            if isinstance(ident, int):
                i = index.get(str(ident))
            elif _DECIMAL.fullmatch(ident):
                i = index.get(int(ident))
        if i is None:
            raise UnknownIdError(f"unknown {what} id {_show(ident)}")
        return i

    def _items(self, ids: Iterable[Id] | None, what: str) -> list[int]:
        index = self._item_index
        get = index.get
        # Fast paths: a compact id map checks a whole list of exact string ids at once; a dict
        # takes exact str/int ids (type() excludes bool and numpy types). The rest, and
        # misses, go through the full rules of _resolve.
        given = _as_list(ids, what)
        if isinstance(index, DecimalRange):
            found = index.get_all(given)
            if found is not None:
                return found
        out = [get(x) if type(x) is str or type(x) is int else None for x in given]
        if None in out:
            out = [self._resolve(index, x, "item") for x in given]
        return out  # type: ignore[return-value]

    # -- model calls -------------------------------------------------------------------------

    def _backend(self) -> Backend:
        """The shared backend if it is thread-safe (ONNX Runtime, numpy), else this thread's
        own interpreter (TFLite): no lock, so threads run in parallel."""
        if self._shared is not None:
            return self._shared
        b = getattr(self._local, "backend", None)
        if b is None:
            b = self._local.backend = self._make_backend()
        return b

    def _inputs(self) -> dict[str, np.ndarray]:
        """This thread's model input arrays, filled in place on each call: the interpreters
        copy or finish reading them before returning, and fresh arrays cost more than the fill
        (measured: about 10 us per call with ONNX Runtime)."""
        bufs = getattr(self._local, "inputs", None)
        if bufs is None:
            bufs = self._local.inputs = {
                "user": np.zeros(1, np.int32), "exclude": np.zeros(self.exclude_capacity, np.int32),
                "history": np.zeros(self.history_capacity, np.int32), "length": np.zeros(1, np.int32)}
        return bufs

    def _exclusion(self, indices: list[int] | np.ndarray) -> tuple[Container[int], np.ndarray | None]:
        """A membership test for excluded dense indices: a set when small; for long lists
        (heavy users) this thread's boolean mask, set here and cleared by the caller."""
        if len(indices) <= _SET_LIMIT:
            return set(indices.tolist() if isinstance(indices, np.ndarray) else indices), None
        mask = getattr(self._local, "mask", None)
        if mask is None:
            mask = self._local.mask = np.zeros(self.num_items, dtype=bool)
        mask[indices] = True
        return _Mask(mask), mask

    def _direct(self, scores: np.ndarray, items: np.ndarray, k: int,
                excluded: Iterable[int]) -> list[Recommendation] | None:
        """The answer in one pass when the graph held every exclusion and its first k outputs
        are k real items, none excluded (the common case); None leaves it to ``_collect``."""
        if scores.ndim != 1 or scores.shape != items.shape:
            return None
        s = scores[:k].tolist()
        idx = items[:k].tolist()
        if (len(s) < k or not all(map(MASKED_SCORE.__lt__, s)) or min(idx) < 0
                or max(idx) >= self.num_items or not set(idx).isdisjoint(excluded)):
            return None
        return self._named(idx, s)

    def _collect(self, scores: np.ndarray, items: np.ndarray, banned: Container[int], k: int,
                 picked: list[tuple[int, float]], outside: int) -> tuple[list[int], float | None]:
        """Append the model's valid, allowed items to ``picked`` (up to k); return the banned
        items that took a slot, and the lowest real score (None if the model ran out of items).

        ``outside`` is how many banned items the graph did not mask: only the first
        ``k + outside`` outputs can matter, so only those are converted and checked."""
        if scores.shape != items.shape or scores.ndim != 1:
            raise ArtifactError("the model returned scores and items of different shapes")
        m = k + outside
        n = self.num_items
        hits: list[int] = []
        low: float | None = None
        for s, i in zip(scores[:m].tolist(), items[:m].tolist(), strict=True):
            if not s > MASKED_SCORE:  # masked, or NaN: the rest is masked too
                return hits, None
            if not 0 <= i < n:
                raise ArtifactError(f"the model returned item index {i} outside [0, {n})")
            low = s
            if i in banned:
                hits.append(i)
            else:
                picked.append((i, s))
                if len(picked) >= k:
                    break
        return hits, low

    def _lookup(self, u: int, excluded: np.ndarray, k: int) -> list[Recommendation]:
        k = min(k, self.k)
        E, pad = self.exclude_capacity, self.num_items
        bufs = self._inputs()
        user, buf = bufs["user"], bufs["exclude"]
        user[0] = u
        first = None
        if excluded.size <= E:  # every exclusion fits in the graph: usually one call answers
            buf.fill(pad)
            buf[: excluded.size] = excluded
            first = self._backend().lookup(user, buf)
            out = self._direct(*first, k, excluded.tolist())
            if out is not None:
                return out
        banned, mask = self._exclusion(excluded)
        try:
            backend = self._backend()
            in_graph = excluded[:E]
            forced: list[int] = []  # banned items seen crowding the top-k, most urgent first
            low: float | None = None
            picked: list[tuple[int, float]] = []
            for _ in range(_MAX_ROUNDS):
                if first is not None:  # the one-call path's outputs, for in_graph == excluded
                    (scores, items), first = first, None
                else:
                    buf.fill(pad)
                    buf[: in_graph.size] = in_graph
                    scores, items = backend.lookup(user, buf)
                picked = []
                hits, low = self._collect(scores, items, banned, k, picked, excluded.size - in_graph.size)
                if len(picked) >= k or not hits or low is None:
                    return self._finish(picked)
                # Banned items beyond the graph's list took slots: move them into it and ask
                # again; the allowed items found so far are an exact prefix of the answer.
                known = set(forced)
                new = [h for h in hits if h not in known]
                if not new:  # the model ignored its exclusion list: give up on the graph
                    break
                forced += new
                if len(forced) > E:
                    break
                known.update(new)
                rest = [x for x in excluded[: E + len(forced)].tolist() if x not in known]
                in_graph = np.asarray((forced + rest)[:E], dtype=np.int32)
            return self._finish(self._fill_popular(picked, banned, k, low))
        finally:
            if mask is not None:
                mask[excluded] = False

    def _history(self, hist: list[int], k: int) -> list[Recommendation]:
        k = min(k, self.k)
        if not hist:
            return self._finish(self._fill_popular([], None, k, 0.0))
        C, pad = self.history_capacity, self.num_items
        window = hist[-C:]
        bufs = self._inputs()
        buf, length = bufs["history"], bufs["length"]
        buf.fill(pad)
        buf[: len(window)] = window
        length[0] = len(window)
        first = None
        if len(hist) <= C:  # the whole history is in the graph: usually one call answers
            first = self._backend().history(buf, length)
            out = self._direct(*first, k, hist)
            if out is not None:
                return out
        banned, mask = self._exclusion(hist)
        try:
            scores, items = first if first is not None else self._backend().history(buf, length)
            picked: list[tuple[int, float]] = []
            hits, low = self._collect(scores, items, banned, k, picked, len(hist) - len(window))
            if len(picked) < k and hits and low is not None:
                picked = self._fill_popular(picked, banned, k, low)
            return self._finish(picked)
        finally:
            if mask is not None:
                mask[hist] = False

    def _fill_popular(self, picked: list[tuple[int, float]], banned: Container[int] | None, k: int,
                      score: float | None) -> list[tuple[int, float]]:
        """Top up ``picked`` to k with popular items that are neither banned nor picked."""
        score = 0.0 if score is None else score
        taken = {i for i, _ in picked}
        out = list(picked)
        popular = self._popular
        for start in range(0, popular.size, 256):
            for i in popular[start:start + 256].tolist():
                if len(out) >= k:
                    return out
                if i not in taken and (banned is None or i not in banned):
                    out.append((i, score))
                    taken.add(i)
        return out

    def _finish(self, picked: list[tuple[int, float]]) -> list[Recommendation]:
        if not picked:
            return []
        idx, scores = zip(*picked, strict=True)
        return self._named(idx, scores)

    def _named(self, idx: Sequence[int], scores: Sequence[float]) -> list[Recommendation]:
        """``(item id, score)`` pairs for dense indices already range-checked (by _direct,
        _collect or _fill_popular)."""
        ids = self._item_ids
        if isinstance(ids, DecimalRange):
            return list(zip(ids.ids_of(idx), scores, strict=True))
        return [(ids[i], s) for i, s in zip(idx, scores, strict=True)]


def _index(ids: list[Id] | DecimalRange) -> Any:
    """id -> dense index: a dict, or the compact map itself (it has the same ``get``)."""
    return ids if isinstance(ids, DecimalRange) else {x: i for i, x in enumerate(ids)}


class _Mask:
    """``i in mask`` for a boolean mask (only called with indices already range-checked)."""

    __slots__ = ("m",)

    def __init__(self, m: np.ndarray) -> None:
        self.m = m

    def __contains__(self, i: object) -> bool:
        return bool(self.m[i])  # type: ignore[index]


class Session:
    """One user's growing history (history mode). Not shared between threads: one per user."""

    def __init__(self, rec: Recommender, history: list[int]) -> None:
        self._rec = rec
        self._hist = _dedupe_keep_last(history)

    def add(self, item_id: Id) -> None:
        """Record an interaction; re-adding an item moves it to the most recent position."""
        i = self._rec._resolve(self._rec._item_index, item_id, "item")
        if i in self._hist:
            self._hist.remove(i)
        self._hist.append(i)

    def recommend(self, k: int = 10) -> list[Recommendation]:
        """Top-k for the history so far (popular items while it is empty)."""
        return self._rec._history(self._hist, self._rec._check_k(k))

    @property
    def history(self) -> tuple[Id, ...]:
        """The items so far, oldest first, as stored in the artifact's ``items.json``."""
        return tuple(self._rec._item_ids[i] for i in self._hist)  # indices checked when added


def _as_list(ids: Any, what: str) -> list[Any]:
    if ids is None:
        return []
    if isinstance(ids, str | bytes | dict) or not isinstance(ids, Iterable):
        raise InvalidArgumentError(f"{what} must be a list of ids, got {type(ids).__name__}")
    return list(ids)


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sorted distinct values of ``a`` and ``b`` (``np.unique`` would import numpy.ma: 1.3 MiB)."""
    s = np.sort(np.concatenate([a.astype(np.int32), b.astype(np.int32)]))
    return s[np.concatenate([[True], s[1:] != s[:-1]])] if s.size else s


def _dedupe_keep_last(idx: list[int]) -> list[int]:
    """Each item once, at the position of its last occurrence (dicts keep insertion order)."""
    return list(dict.fromkeys(reversed(idx)))[::-1]


def _show(x: Any) -> str:
    r = repr(x)
    return r if len(r) <= 60 else r[:57] + "..."
