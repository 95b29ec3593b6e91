"""History mode on long histories: the dense synthetic setting and the history-to-lookup pass."""

from __future__ import annotations

import numpy as np

from edgerec.ir import IR, Table
from edgerec.passes.distill_history import distill_history
from edgerec.pipeline import history_falls_short
from edgerec.scoring import history_vectors, ir_topk
from edgerec.synthetic import DENSE, make_synthetic


def test_dense_setting_has_long_training_histories() -> None:
    data = make_synthetic(150, 600, seed=0, **DENSE)
    assert np.median(np.bincount(data.train.users, minlength=150)) >= 50
    sparse = make_synthetic(150, 600, communities=6, seed=0)
    assert np.median(np.bincount(sparse.train.users, minlength=150)) < 50


def _dense_ir(num_users: int = 120, num_items: int = 160, dim: int = 8, seed: int = 0) -> IR:
    """A LightGCN-shaped IR whose users' base vectors carry most of the signal (long histories)."""
    rng = np.random.default_rng(seed)
    seen = [np.sort(rng.choice(num_items, int(rng.integers(40, 70)), replace=False)) for _ in range(num_users)]
    indptr = np.zeros(num_users + 1, np.int64)
    indptr[1:] = np.cumsum([s.size for s in seen])
    indices = np.concatenate(seen).astype(np.int32)
    item = rng.standard_normal((num_items, dim)).astype(np.float32)
    hist = (0.3 * rng.standard_normal((num_items, dim))).astype(np.float32)
    base = rng.standard_normal((num_users, dim)).astype(np.float32)
    user = np.stack([base[u] + hist[s].sum(0) / np.sqrt(s.size) for u, s in enumerate(seen)])
    return IR(num_users=num_users, num_items=num_items,
              tables={"item": Table(item), "user": Table(user.astype(np.float32)),
                      "history_item": Table(hist), "user_base": Table(base)},
              modes=("lookup", "history"), user_ids=[str(u) for u in range(num_users)],
              item_ids=[str(i) for i in range(num_items)],
              popular=np.argsort(-np.bincount(indices, minlength=num_items)).astype(np.int32),
              seen_indptr=indptr, seen_indices=indices, model={"kind": "random", "layers": 2, "dim": dim},
              provenance={"checkpoint_fingerprint": f"dense-{seed}"})


def _history_vs_lookup(ir: IR) -> float:
    users = np.arange(ir.num_users)
    a, b = ir_topk(ir, users, 20, "history"), ir_topk(ir, users, 20, "lookup")
    return float(np.mean([np.intersect1d(x, y).size / 20 for x, y in zip(a, b, strict=True)]))


def test_history_pass_pulls_history_toward_lookup_and_leaves_lookup_alone() -> None:
    ir = _dense_ir()
    before = _history_vs_lookup(ir)
    fixed, report = distill_history(ir, epochs=30, lr=1e-2, batch_size=32)
    after = _history_vs_lookup(fixed)
    assert after > before + 0.1, (before, after)
    assert report.metrics_after["kl"] < report.metrics_before["kl"]
    for name in ("user", "item"):  # lookup mode: bit for bit
        np.testing.assert_array_equal(fixed.tables[name].values, ir.tables[name].values)
    users = np.arange(ir.num_users)  # the fold relation every later pass relies on still holds
    np.testing.assert_allclose(history_vectors(fixed, users, with_base=True),
                               fixed.tables["user"].values, atol=1e-5)
    assert fixed.passes[-1]["name"] == "distill_history"


def test_only_a_history_mode_well_below_lookup_triggers_the_fix() -> None:
    ir = _dense_ir()
    assert history_falls_short(ir, {"lookup/recall@20": 0.30, "history/recall@20": 0.27})
    assert not history_falls_short(ir, {"lookup/recall@20": 0.30, "history/recall@20": 0.295})
    assert not history_falls_short(ir, {"lookup/recall@20": 0.30})
    no_base = ir.replace(tables={n: t for n, t in ir.tables.items() if n != "user_base"})
    assert not history_falls_short(no_base, {"lookup/recall@20": 0.30, "history/recall@20": 0.2})


def test_a_shortfall_measured_on_users_triggers_the_fix() -> None:
    from edgerec.passes.guard import GuardData, measure

    ir = _dense_ir()
    users = np.arange(ir.num_users)
    top = ir_topk(ir, users, 20, "lookup")
    # truth: each user's lookup top-3, so lookup is perfect and history falls short for sure
    truth = (np.arange(ir.num_users + 1) * 3, top[:, :3].ravel().astype(np.int32))
    sure = GuardData.from_truth(truth, ir.num_users)
    metrics = measure(ir, ir, sure)
    assert history_falls_short(ir, metrics, sure)


def _sure_shortfall(ir: IR) -> tuple[np.ndarray, np.ndarray]:
    """Held-out items on which lookup is perfect: each user's lookup top-3."""
    top = ir_topk(ir, np.arange(ir.num_users), 20, "lookup")
    return np.arange(ir.num_users + 1) * 3, top[:, :3].ravel().astype(np.int32)


def test_compile_fixes_history_and_keeps_the_fixed_model_as_the_reference() -> None:
    import dataclasses

    from edgerec.ir import PassReport
    from edgerec.pipeline import CompileOptions, compile_lowered

    ir = _dense_ir()
    truth, counts = _sure_shortfall(ir), np.ones(ir.num_items)
    options = CompileOptions(dims=None, quantize="int8", recall_margin=None, force=True)
    fixed = compile_lowered(ir, PassReport("lower"), options, truth, counts)
    assert [r.name for r in fixed.reports][:2] == ["lower", "distill_history"]
    # the guard's reference is the model with trained history tables; lookup is untouched
    assert not np.array_equal(fixed.reference.tables["history_item"].values, ir.tables["history_item"].values)
    np.testing.assert_array_equal(fixed.reference.tables["item"].values, ir.tables["item"].values)
    assert fixed.ir.metrics["float"]["history/recall@20"] > fixed.reports[0].metrics_after["history/recall@20"]

    kept = compile_lowered(ir, PassReport("lower"), dataclasses.replace(options, history_fix=False), truth, counts)
    assert "distill_history" not in [r.name for r in kept.reports]
    assert kept.reference is ir
