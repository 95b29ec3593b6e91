"""The Recommender's behaviour on a numpy-target artifact, checked against brute force."""

from __future__ import annotations

import json

import numpy as np
import pytest

import runtime
from runtime.errors import InvalidArgumentError, UnknownIdError
from runtime.quant import dequantize_rows
from tests.factories import EXCLUDE_CAPACITY, HISTORY_CAPACITY, K, numpy_artifact, small_ir


@pytest.fixture(scope="module")
def ir():
    return small_ir()


@pytest.fixture(scope="module")
def rec(ir, tmp_path_factory):
    return runtime.load(numpy_artifact(ir, tmp_path_factory.mktemp("np") / "a"))


def _table(ir, name):
    t = ir.tables[name]
    return dequantize_rows(t.values, t.scale)


def brute_lookup(ir, u, banned, k):
    s = _table(ir, "item") @ _table(ir, "user")[u]
    s[list(banned)] = -np.inf
    order = np.lexsort((np.arange(s.size), -s))
    return [int(i) for i in order[:k] if np.isfinite(s[i])]


def brute_history(ir, window, banned, k):
    u = _table(ir, "history_item")[window].sum(0) / np.sqrt(len(window))
    s = _table(ir, "item") @ u
    s[list(banned)] = -np.inf
    order = np.lexsort((np.arange(s.size), -s))
    return [int(i) for i in order[:k] if np.isfinite(s[i])]


def ids(recs):
    return [int(i) for i, _ in recs]


def test_import_is_numpy_only():
    import subprocess
    import sys
    code = ("import sys, runtime; bad = [m for m in ('torch', 'tensorflow', 'onnxruntime', "
            "'ai_edge_litert', 'tflite_runtime', 'edgerec') if m in sys.modules]; print(bad)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"


def test_loading_and_serving_import_nothing_heavy(ir, tmp_path):
    """numpy.ma (pulled in by np.unique, 1.3 MiB of RSS) is never imported by load or requests:
    device_bench would count it as the model's memory. A repeated popular item is still refused."""
    import subprocess
    import sys

    art = numpy_artifact(ir, tmp_path / "a")
    code = ("import sys, runtime; r = runtime.load(sys.argv[1]); u = r.artifact.user_ids[0]; "
            "r.recommend(u, 5); r.recommend(u, 5, exclude=['1', '2', '1']); "
            "r.recommend_from_history(['3', '4'], 5); print('numpy.ma' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(art)], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
    pop = np.load(art / "popular.npy")
    np.save(art / "popular.npy", np.concatenate([pop[:3], pop[:1]]))
    man = json.loads((art / "manifest.json").read_text())
    from runtime.artifact import ArtifactError, write_manifest

    write_manifest(art, man)
    with pytest.raises(ArtifactError, match="repeats items"):
        runtime.load(art)


def test_lookup_matches_brute_force_and_excludes_seen(ir, rec):
    assert rec.backend_name == "reference"
    for u in range(ir.num_users):
        seen = set(ir.seen(u).tolist())
        got = rec.recommend(str(u), k=10)
        assert ids(got) == brute_lookup(ir, u, seen, 10)
        assert not seen & set(ids(got))
        scores = [s for _, s in got]
        assert scores == sorted(scores, reverse=True) and min(scores) > -1e8
        assert all(isinstance(i, str) for i, _ in got)


def test_lookup_exclusions_beyond_capacity_stay_exact(ir, rec):
    # Exact whenever the banned items that outrank the k-th answer fit in the graph's exclusion
    # list plus the model's spare top-k slots (exclude_capacity + K - k); asserted case by case.
    k, budget, exact_cases = 8, EXCLUDE_CAPACITY + K - 8, 0
    for u in range(ir.num_users):
        seen = set(ir.seen(u).tolist())
        for n_extra in (3, 7, 12):
            extra = brute_lookup(ir, u, seen, n_extra)  # the user's best: they crowd the top-k
            banned = seen | set(extra)
            want = brute_lookup(ir, u, banned, k)
            s = _table(ir, "item") @ _table(ir, "user")[u]
            above = [i for i in banned if s[i] > s[want[-1]]]
            if len(banned) > EXCLUDE_CAPACITY and len(above) <= budget:
                exact_cases += 1
                assert ids(rec.recommend(u, k=k, exclude=[str(i) for i in extra])) == want
    assert exact_cases > 50


def test_lookup_falls_back_to_popular_when_exclusions_swamp_the_model(ir, rec):
    u = 3
    seen = set(ir.seen(u).tolist())
    extra = brute_lookup(ir, u, seen, 60)  # far more than exclude_capacity + k
    got = rec.recommend(u, k=K, exclude=extra)
    assert len(got) == K
    assert not (seen | set(extra)) & set(ids(got))
    scores = [s for _, s in got]
    assert scores == sorted(scores, reverse=True) and min(scores) > -1e8
    assert len(set(ids(got))) == K


def test_k_is_clamped(ir, rec):
    assert len(rec.recommend(0, k=1000)) == K
    assert len(rec.recommend_from_history([1, 2], k=1000)) == K
    assert len(rec.recommend(0, k=1)) == 1


def test_k_clamped_to_catalogue(tmp_path):
    tiny = small_ir(num_users=4, num_items=25)
    r = runtime.load(numpy_artifact(tiny, tmp_path / "t"))
    for u in range(4):
        seen = set(tiny.seen(u).tolist())
        extra = [i for i in range(25) if i not in seen][:10]
        got = r.recommend(u, k=K, exclude=extra)
        assert len(got) == 25 - len(seen) - 10
        assert not (seen | set(extra)) & set(ids(got))
    hist = list(range(20))
    got = r.recommend_from_history(hist, k=K)
    assert sorted(ids(got)) == list(range(20, 25))


def test_history_matches_brute_force(ir, rec):
    rng = np.random.default_rng(1)
    for _ in range(30):
        hist = rng.choice(ir.num_items, size=int(rng.integers(1, HISTORY_CAPACITY + 1)), replace=False).tolist()
        got = rec.recommend_from_history([str(i) for i in hist], k=10)
        assert ids(got) == brute_history(ir, hist, set(hist), 10)


def test_history_keeps_last_occurrences_and_last_capacity_items(ir, rec):
    hist = list(range(30, 50))  # 20 items, capacity 8
    got = rec.recommend_from_history(hist, k=10)
    assert ids(got) == brute_history(ir, hist[-HISTORY_CAPACITY:], set(hist), 10)
    dup = [5, 6, 5, 7, 6]  # keep last: [5, 7, 6]
    assert rec.recommend_from_history(dup, k=10) == rec.recommend_from_history([5, 7, 6], k=10)
    overflow = [5] + list(range(60, 60 + HISTORY_CAPACITY)) + [5]  # 5 comes back as most recent
    assert ids(rec.recommend_from_history(overflow)) == brute_history(
        ir, overflow[-HISTORY_CAPACITY:], set(overflow), 10)


def test_old_history_items_are_never_returned(ir, rec):
    # Put the top items of a window's ranking first in a long history: they drop out of the
    # window, the model ranks them high, and the runtime must still filter them.
    window = list(range(100, 100 + HISTORY_CAPACITY))
    best = brute_history(ir, window, set(window), 30)
    got = rec.recommend_from_history(best + window, k=K)
    assert len(got) == K and not set(best + window) & set(ids(got))


def test_empty_history_is_popular(ir, rec):
    got = rec.recommend_from_history([], k=5)
    assert ids(got) == ir.popular[:5].tolist() and all(s == 0.0 for _, s in got)


def test_session(ir, rec):
    s = rec.session()
    assert ids(s.recommend(3)) == ir.popular[:3].tolist()
    for i in ("4", 9, "4", "17"):
        s.add(i)
    assert s.history == ("9", "4", "17")
    assert s.recommend(10) == rec.recommend_from_history(["9", "4", "17"], k=10)
    s2 = rec.session(history=[1, 2])
    assert s2.history == ("1", "2")
    with pytest.raises(UnknownIdError):
        s2.add("nope")
    assert s2.history == ("1", "2")


def test_recommend_many(rec):
    assert rec.recommend_many(["1", 2], k=4) == [rec.recommend("1", k=4), rec.recommend(2, k=4)]
    with pytest.raises(UnknownIdError, match="'zz'"):
        rec.recommend_many(["1", "zz"])


def test_id_rules(tmp_path, rec):
    assert rec.recommend(12) == rec.recommend("12") == rec.recommend(np.int64(12))
    for bad in ("012", "12.0", " 12", "user-12"):
        with pytest.raises(UnknownIdError, match="unknown user id"):
            rec.recommend(bad)
    for bad in (True, 12.0, None, b"12", [12]):
        with pytest.raises(InvalidArgumentError):
            rec.recommend(bad)
    # an artifact whose ids are ints accepts canonical decimal strings
    ir = small_ir(num_users=5, num_items=30)
    art = numpy_artifact(ir, tmp_path / "ints")
    m = json.loads((art / "manifest.json").read_text())
    (art / "items.json").write_text(json.dumps(list(range(1000, 1030))))
    (art / "users.json").write_text(json.dumps([7, 8, 9, 10, 11]))
    m.pop("files")
    runtime.artifact.write_manifest(art, m)
    r = runtime.load(art)
    assert r.recommend("7") == r.recommend(7)
    assert all(isinstance(i, int) and 1000 <= i < 1030 for i, _ in r.recommend(7))
    assert r.recommend_from_history(["1003"]) == r.recommend_from_history([1003])


def test_lookup_only_and_history_only_artifacts(tmp_path):
    r = runtime.load(numpy_artifact(small_ir(modes=("lookup",)), tmp_path / "l"))
    assert len(r.recommend(0)) == 10
    with pytest.raises(InvalidArgumentError, match="without 'history' mode"):
        r.recommend_from_history([1])
    r = runtime.load(numpy_artifact(small_ir(modes=("history",)), tmp_path / "h"))
    assert len(r.session([3]).recommend()) == 10
    with pytest.raises(InvalidArgumentError, match="without 'lookup' mode"):
        r.recommend(0)


@pytest.mark.parametrize("scheme", ["none", "float16"])
def test_float_tables(tmp_path, scheme):
    ir = small_ir(scheme)
    r = runtime.load(numpy_artifact(ir, tmp_path / scheme))
    assert ids(r.recommend(5)) == brute_lookup(ir, 5, set(ir.seen(5).tolist()), 10)


def test_long_exclusion_lists_use_the_mask_path(tmp_path):
    big = small_ir(num_users=5, num_items=1500)
    r = runtime.load(numpy_artifact(big, tmp_path / "big"))
    rng = np.random.default_rng(3)
    for u in range(5):
        seen = set(big.seen(u).tolist())
        extra = rng.choice(1500, size=700, replace=False).tolist()  # > the set limit
        got = r.recommend(u, k=K, exclude=extra)
        assert len(got) == K and not (seen | set(extra)) & set(ids(got))
        hist = rng.choice(1500, size=800, replace=False).tolist()
        got = r.recommend_from_history(hist, k=K)
        assert len(got) == K and not set(hist) & set(ids(got))
    assert r.recommend(0, k=5) == r.recommend(0, k=5)  # the mask was cleared after use
    assert ids(r.recommend(0, k=K)) == brute_lookup(big, 0, set(big.seen(0).tolist()), K)


def test_dense_decimal_ids_are_compact_and_behave_like_a_list(tmp_path):
    """ids "0".."n-1" load as a DecimalRange (no per-id objects) with the same id rules."""
    from runtime.artifact import load_artifact
    from runtime.idmap import DecimalRange

    tiny = small_ir(num_users=6, num_items=30)
    path = numpy_artifact(tiny, tmp_path / "d")
    art = load_artifact(path)
    assert isinstance(art.item_ids, DecimalRange) and isinstance(art.user_ids, DecimalRange)
    assert list(art.item_ids) == [str(i) for i in range(30)] and art.item_ids[-1] == "29"
    assert art.item_ids == [str(i) for i in range(30)]
    r = runtime.load(path)
    assert r.recommend("3", k=5) == r.recommend(3, k=5) == r.recommend(np.int64(3), k=5)
    assert r.recommend_from_history(["1", 2], k=5) == r.recommend_from_history([1, "2"], k=5)
    for bad in ("03", "-1", "6", "3.0", " 3", "३"):
        with pytest.raises(UnknownIdError):
            r.recommend(bad, k=5)
    # histories are resolved a whole list at a time: same answers, same refusals
    assert r.recommend_from_history(["4", "1", "29"], k=5) == r.recommend_from_history([4, 1, 29], k=5)
    for bad in ("07", "+7", "0_7", " 7", "7 ", "-0", "30", "३", "7.0", ""):
        with pytest.raises(UnknownIdError, match="unknown item id"):
            r.recommend_from_history(["1", bad, "2"], k=5)
    ids = art.item_ids
    assert ids.get_all(["0", "29", "5"]) == [0, 29, 5] and ids.get_all([]) == []
    assert ids.get_all(["1", 2]) is None and ids.get_all(["1", "30"]) is None
    assert ids.get_all(["1", "-1"]) is None and ids.get_all(["1", "01"]) is None
    assert ids.get_all([float("inf")]) is None and ids.get_all([1.0, True, b"1"]) is None

    class S(str):
        pass

    # exactly what the per-id path takes: a str subclass or a huge number is never an id
    assert ids.get_all([S("1"), S("2")]) is None and ids.get(S("1")) is None
    for bad in ([S("1"), S("2")], [S("1"), 2], ["1" * 5000]):
        with pytest.raises(UnknownIdError, match="unknown item id"):
            r.recommend_from_history(bad, k=5)
    with pytest.raises(UnknownIdError, match="unknown user id"):
        r.recommend("9" * 5000, k=5)
    assert ids.ids_of([0, 29]) == ["0", "29"]
    # any other spelling of the file (here: indented) is read as an ordinary list, same ids
    (path / "items.json").write_text(json.dumps([str(i) for i in range(30)], indent=1))
    man = json.loads((path / "manifest.json").read_text())
    from runtime.artifact import write_manifest

    write_manifest(path, man)
    again = load_artifact(path)
    assert isinstance(again.item_ids, list) and again.item_ids == art.item_ids


def test_a_model_that_ignores_its_exclusions_never_leaks_them(ir, tmp_path):
    """The runtime checks the model's top-k against the exclusions itself: when it holds a seen
    or history item (a graph that does not mask), the answer still excludes them, ranked as
    the model ranks the rest, topped up with popular items."""
    r = runtime.load(numpy_artifact(ir, tmp_path / "a"))
    backend = r._backend()
    honest = backend.lookup
    blank = np.full(r.exclude_capacity, r.num_items, np.int32)

    def lookup(user, exclude):  # scores everything: seen items come back
        return honest(user, blank)

    def history(items, length):  # user 0's unmasked top-k, with the first history item on top
        scores, top = honest(np.array([0], np.int32), blank)
        top = top.copy()
        top[0] = items[0]
        return scores, top

    backend.lookup, backend.history = lookup, history
    u = int(np.argmax(np.diff(ir.seen_indptr)))
    seen = set(ir.seen(u).tolist())
    unmasked = ids([(int(i), 0.0) for i in honest(np.array([u], np.int32), blank)[1]])
    got = ids(r.recommend(str(u), K))
    assert len(got) == K and not set(got) & seen
    allowed = [i for i in unmasked if i not in seen]
    assert got[: len(allowed)] == allowed[:K]
    hist = [3, 7, 11]
    out = ids(r.recommend_from_history([str(i) for i in hist], K))
    assert len(out) == K and not set(out) & set(hist)
