"""edgerec.from_embeddings: final tables (arrays or memory-mapped .npy files) compiled and
exported; the blocked (streaming) steps equal the whole-table ones."""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgerec
from edgerec import blocks
from edgerec.errors import FrontendError

U, I, D = 60, 300, 12


def _tables(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal((n, D)).astype(np.float32) for n in (U, I, I))


def _pairs(seed: int = 1, per_user: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([np.repeat(np.arange(U), per_user), rng.integers(0, I, U * per_user)])


def _ranking(scores: np.ndarray, exclude: list[int], k: int) -> list[int]:
    s = scores.astype(np.float64).copy()
    s[exclude] = -np.inf
    return [int(i) for i in np.argsort(-s, kind="stable")[:k]]


def test_memmapped_files_export_float32_tflite_with_numpys_lookup_ranking(tmp_path):
    import runtime

    user, item, _ = _tables()
    np.save(tmp_path / "user.npy", user)
    np.save(tmp_path / "item.npy", item)
    train = _pairs()
    emb = edgerec.from_embeddings(tmp_path / "user.npy", tmp_path / "item.npy", interactions=train)
    assert isinstance(emb.tables["item"], np.memmap)  # mapped, not loaded
    art = edgerec.export(emb, tmp_path / "art", target="tflite", dims=None, quantize="float32", k=20)
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["modes"] == ["lookup"]
    assert manifest["metrics"]["fallback_order"].startswith("training popularity")
    rec = runtime.load(art)
    for u in range(0, U, 7):
        seen = [int(i) for i in train[1][train[0] == u]]
        got = [int(i) for i, _ in rec.recommend(str(u), k=20)]
        assert got == _ranking(item @ user[u], seen, 20)


def test_arrays_without_interactions_exclude_nothing_and_say_the_fallback(tmp_path):
    import runtime

    user, item, _ = _tables(2)
    ids = [f"item-{n}" for n in range(I)]
    emb = edgerec.from_embeddings(user.astype(np.float64), item, item_ids=ids)
    compiled = edgerec.compile(emb)  # dims auto, int8: no labels, so guarded on agreement
    guard = compiled.reports[-1]
    assert guard.name == "guard" and guard.params["min_agreement"] == 0.9
    assert guard.metrics_after["lookup/agreement@20"] >= 0.9
    art = edgerec.export(emb, tmp_path / "art", target="numpy", dims=None, quantize="float32", k=10)
    manifest = json.loads((art / "manifest.json").read_text())
    assert "no training interactions" in manifest["metrics"]["fallback_order"]
    rec = runtime.load(art)
    for u in (0, 13, 59):
        want = [ids[i] for i in _ranking(item @ user[u], [], 10)]
        assert [i for i, _ in rec.recommend(str(u), k=10)] == want


def test_history_mode_when_history_item_is_given(tmp_path):
    import runtime

    user, item, hist = _tables(3)
    emb = edgerec.from_embeddings(user, item, history_item=hist, interactions=_pairs(),
                                  valid=_pairs(seed=4, per_user=1))
    assert emb.modes == ("lookup", "history")
    art = edgerec.export(emb, tmp_path / "art", target="numpy", dims=None, quantize="float32", k=10)
    rec = runtime.load(art)
    rng = np.random.default_rng(0)
    for _ in range(8):
        history = [int(h) for h in rng.choice(I, size=int(rng.integers(1, 6)), replace=False)]
        fold = hist[history].astype(np.float64).sum(0) / np.sqrt(len(history))
        got = [int(i) for i, _ in rec.recommend_from_history([str(h) for h in history], k=10)]
        assert got == _ranking(item @ fold, history, 10)
    lookup_only = edgerec.from_embeddings(user, item)
    with pytest.raises(edgerec.EdgerecError, match="history mode needs"):
        edgerec.compile(lookup_only, modes=("history",))


def test_blocked_steps_equal_the_whole_table(tmp_path, monkeypatch):
    """Validation, pruning, quantization, scoring and saving in row blocks give what the
    whole-table code gives (quantization and saving bit for bit)."""
    from edgerec import scoring
    from edgerec.errors import IRError
    from edgerec.ir import Table, save_ir
    from edgerec.passes.prune import prune
    from edgerec.passes.quantize import quantize

    user, item, _ = _tables(5)
    np.save(tmp_path / "item.npy", item)
    emb = edgerec.from_embeddings(user, tmp_path / "item.npy")
    from edgerec.lowering.embeddings import lower_embeddings

    ir, _ = lower_embeddings(emb, ("lookup",))
    whole_q = quantize(ir, "int8")[0]
    whole_p = prune(ir, 6)[0]
    whole_top = scoring.ir_topk(ir, np.arange(U), 20)
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 7 * D * 4)  # 7 rows a block
    monkeypatch.setattr(scoring, "BLOCK_ITEMS", 50)
    monkeypatch.setattr(scoring, "SCORE_ELEMENTS", U * 40)
    q = quantize(ir, "int8")[0]
    for name in ("user", "item"):
        np.testing.assert_array_equal(q.tables[name].values, whole_q.tables[name].values)
        np.testing.assert_array_equal(q.tables[name].scale, whole_q.tables[name].scale)
    p = prune(ir, 6)[0]
    s_whole = whole_p.tables["user"].values @ whole_p.tables["item"].values.T
    s_blocked = p.tables["user"].values @ p.tables["item"].values.T
    np.testing.assert_allclose(s_blocked, s_whole, atol=1e-4)
    assert np.array_equal(scoring.ir_topk(ir, np.arange(U), 20), whole_top)
    save_ir(ir, tmp_path / "ir")
    assert (tmp_path / "ir/item.npy").read_bytes() == (tmp_path / "item.npy").read_bytes()
    bad = item.copy()
    bad[123, 4] = np.nan
    assert blocks.first_non_finite(bad) == 123
    with pytest.raises(IRError, match="NaN or Inf"):
        ir.replace(tables={**ir.tables, "item": Table(bad)}).validate()


@pytest.mark.parametrize("change, message", [
    (dict(item=np.zeros((I, D + 1), np.float32)), "item has 13 columns, user has 12"),
    (dict(user=np.zeros((U, D), np.int64)), "user must hold floats"),
    (dict(user=np.zeros(D, np.float32)), r"user must be a non-empty \[rows, dim\] table"),
    (dict(item="not-there.npy"), "cannot read item table"),
    (dict(history_item=np.zeros((I, D), np.float32)), "history_item needs interactions"),
    (dict(history_item=np.zeros((I - 1, D), np.float32)), "history_item has 299 rows"),
    (dict(user_ids=["a", "b"]), "user_ids must be 60 non-empty strings"),
    (dict(interactions=np.array([[0], [I]])), "interactions has item 300, outside 0..299"),
    (dict(valid=np.zeros((3, 2), np.int64)), r"valid must be a \[2, E\] integer array"),
])
def test_refusals_are_one_line(change, message):
    user, item, _ = _tables()
    kw = dict(user=user, item=item)
    kw.update(change)
    with pytest.raises(FrontendError, match=message) as info:
        edgerec.from_embeddings(kw.pop("user"), kw.pop("item"), **kw)
    assert "\n" not in str(info.value)


def test_non_finite_and_non_float32_maps_are_refused(tmp_path):
    user, item, _ = _tables()
    user[41, 3] = np.inf
    with pytest.raises(FrontendError, match=r"user has NaN or Inf \(row 41\)"):
        edgerec.from_embeddings(user, item)
    np.save(tmp_path / "item64.npy", item.astype(np.float64))
    with pytest.raises(FrontendError, match="mapped tables must be float32"):
        edgerec.from_embeddings(item, tmp_path / "item64.npy")
