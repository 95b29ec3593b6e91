"""Compiler passes: the history fold is exact, passes compose, the guard refuses, IRs round-trip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from edgerec.checkpoint import load_checkpoint
from edgerec.errors import EdgerecError, GuardError, IRError
from edgerec.ir import load_ir, save_ir
from edgerec.lowering.lightgcn import precompute
from edgerec.metrics import users_with_items
from edgerec.models import normalized_adjacency
from edgerec.passes.drop_cold import drop_cold_items
from edgerec.passes.guard import GuardData, guard, measure
from edgerec.passes.prune import energy_dims, prune
from edgerec.passes.quantize import quantize
from edgerec.pipeline import CompileOptions, compile_checkpoint
from edgerec.scoring import distinct_topk_scores, history_vectors
from tests.factories import make_ir


@pytest.fixture(scope="module")
def ckpt(trained_ckpt: Path):
    return load_checkpoint(trained_ckpt)


@pytest.fixture(scope="module")
def float_ir(ckpt):
    return precompute(ckpt)[0]


def test_precompute_matches_the_pyg_model(ckpt, float_ir) -> None:
    d = ckpt.data
    adj = normalized_adjacency(d.train.users, d.train.items, d.num_users, d.num_items)
    with torch.no_grad():
        emb = ckpt.model.get_embedding(adj).numpy()
    np.testing.assert_allclose(float_ir.tables["user"].values, emb[:d.num_users], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float_ir.tables["item"].values, emb[d.num_users:], rtol=1e-4, atol=1e-5)


def test_fast_training_propagation_matches_pyg(ckpt) -> None:
    from edgerec.models import lightgcn_embedding

    d = ckpt.data
    adj = normalized_adjacency(d.train.users, d.train.items, d.num_users, d.num_items)
    w = ckpt.model.embedding.weight
    fast = lightgcn_embedding(ckpt.model, adj)
    ref = ckpt.model.get_embedding(adj)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-6)
    g_fast = torch.autograd.grad(fast[:7].pow(2).sum(), w)[0]
    g_ref = torch.autograd.grad(ref[:7].pow(2).sum(), w)[0]
    torch.testing.assert_close(g_fast, g_ref, rtol=1e-4, atol=1e-6)


def test_history_fold_is_exact(ckpt, float_ir) -> None:
    users = np.arange(float_ir.num_users)
    folded = history_vectors(float_ir, users, with_base=True)
    np.testing.assert_allclose(folded, float_ir.tables["user"].values, rtol=1e-4, atol=1e-5)
    # without the user's own base vector it is a different (new-user) vector, but close in rank
    no_base = history_vectors(float_ir, users, with_base=False)
    assert not np.allclose(no_base, float_ir.tables["user"].values)


def test_svd_prune_beats_column_pruning(float_ir) -> None:
    S = float_ir.tables["user"].values @ float_ir.tables["item"].values.T
    errs = {}
    for method in ("svd", "columns"):
        p, rep = prune(float_ir, 6, method)
        assert p.dim == 6 and rep.bytes_after < rep.bytes_before
        errs[method] = np.linalg.norm(p.tables["user"].values @ p.tables["item"].values.T - S)
    assert errs["svd"] < 0.8 * errs["columns"]
    # the user-side map is linear, so the pruned history fold still reproduces the pruned users
    p, _ = prune(float_ir, 6, "svd")
    np.testing.assert_allclose(history_vectors(p, np.arange(p.num_users), with_base=True),
                               p.tables["user"].values, rtol=1e-3, atol=1e-4)
    assert 1 <= energy_dims(float_ir, 0.9) <= energy_dims(float_ir, 0.99) <= float_ir.dim


def test_int8_per_row_roundtrip_and_no_ties(float_ir) -> None:
    q, rep = quantize(float_ir, "int8")
    assert rep.bytes_after < rep.bytes_before / 3
    item = q.tables["item"]
    assert item.values.dtype == np.int8 and np.abs(item.values).max(axis=1).min() == 127
    err = np.abs(item.dequantize() - float_ir.tables["item"].values).max(axis=1)
    assert np.all(err <= item.scale * 0.5 + 1e-7)
    assert distinct_topk_scores(q, np.arange(50), k=20) > 0.95
    h, _ = quantize(float_ir, "float16")
    assert h.tables["item"].values.dtype == np.float16


def test_pass_composition_and_guard(ckpt, float_ir) -> None:
    truth = ckpt.data.valid.csr(ckpt.data.num_users)
    gdata = GuardData.from_truth(truth, float_ir.num_users, 200)
    ir, _ = prune(float_ir, 8)
    ir, _ = quantize(ir, "int8")
    ir, rep = guard(ir, float_ir, gdata, max_recall_drop=1.0)
    assert [p["name"] for p in ir.passes] == ["precompute", "prune", "quantize", "guard"]
    assert "lookup/recall@20" in rep.metrics_after and "history/agreement@20" in rep.metrics_after
    tiny, _ = prune(float_ir, 1)
    with pytest.raises(GuardError, match="Recall@20"):
        guard(tiny, float_ir, gdata, max_recall_drop=0.0001)
    forced, frep = guard(tiny, float_ir, gdata, max_recall_drop=0.0001, force=True)
    assert frep.notes and forced.metrics["guard_violations"]
    with pytest.raises(GuardError, match="agreement"):
        guard(ir, float_ir, gdata, max_recall_drop=1.0, min_agreement=1.01)
    m = measure(float_ir, float_ir, gdata)
    assert m["lookup/agreement@20"] == 1.0


def test_compile_dims_auto_and_refusal(ckpt) -> None:
    res = compile_checkpoint(ckpt, CompileOptions(dims="auto", max_recall_drop=0.05))
    assert res.search and res.ir.dim <= 16
    assert res.ir.tables["item"].dtype == "int8"
    accepted = [s["dims"] for s in res.search if s["accepted"]]
    assert res.ir.dim == min(accepted)
    with pytest.raises(GuardError):
        compile_checkpoint(ckpt, CompileOptions(dims=1, max_recall_drop=0.0))


def test_drop_cold_items(float_ir, ckpt) -> None:
    counts = np.bincount(ckpt.data.train.items, minlength=float_ir.num_items)
    ir, rep = drop_cold_items(float_ir, 3, counts)
    assert ir.num_items == int((counts >= 3).sum())
    ir.validate()
    kept = set(ir.item_ids)
    for u in range(5):
        before = {float_ir.item_ids[i] for i in float_ir.seen(u)} & kept
        assert {ir.item_ids[i] for i in ir.seen(u)} == before


def test_ir_roundtrip(tmp_path: Path) -> None:
    ir, _ = quantize(make_ir(string_ids=True), "int8")
    save_ir(ir, tmp_path / "ir")
    back = load_ir(tmp_path / "ir")
    for name, t in ir.tables.items():
        np.testing.assert_array_equal(back.tables[name].values, t.values)
        np.testing.assert_array_equal(back.tables[name].scale, t.scale)
    assert back.item_ids == ir.item_ids and back.passes == ir.passes
    with pytest.raises(IRError, match="exists"):
        save_ir(ir, tmp_path / "ir")


def _corrupt(src: Path, dst: Path, how: str) -> None:
    shutil.copytree(src, dst)
    meta = json.loads((dst / "ir.json").read_text())
    if how == "missing":
        (dst / "item.npy").unlink()
    elif how == "hash":
        a = np.load(dst / "item.npy")
        a[0, 0] += 1
        np.save(dst / "item.npy", a)
    elif how == "shape":
        meta["tables"]["item"]["shape"] = [3, 3]
    elif how == "nan":
        a = np.load(dst / "user.npy").astype(np.float32)
        a[0, 0] = np.nan
        np.save(dst / "user.npy", a)
        meta["tables"]["user"]["dtype"] = "float32"
        from runtime.artifact import sha256_file as _sha256
        meta["tables"]["user"]["sha256"] = _sha256(dst / "user.npy")
    elif how == "dtype":
        meta["tables"]["item"]["dtype"] = "float64"
    elif how == "version":
        meta["format_version"] = 99
    elif how == "pickle":
        import pickle
        (dst / "item.npy").write_bytes(pickle.dumps({"x": 1}))
        from runtime.artifact import sha256_file as _sha256
        meta["tables"]["item"]["sha256"] = _sha256(dst / "item.npy")
    elif how == "json":
        (dst / "ir.json").write_text("{not json")
        return
    (dst / "ir.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(("how", "needle"), [
    ("missing", "missing array file item.npy"), ("hash", "SHA-256"), ("shape", "ir.json says"),
    ("nan", "NaN"), ("dtype", "ir.json says"), ("version", "version 99"), ("pickle", "cannot read"),
    ("json", "invalid JSON"),
])
def test_corrupt_ir_refused(tmp_path: Path, how: str, needle: str) -> None:
    save_ir(make_ir(), tmp_path / "good")
    _corrupt(tmp_path / "good", tmp_path / "bad", how)
    with pytest.raises(IRError) as e:
        load_ir(tmp_path / "bad")
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_valid_users_exist(ckpt) -> None:
    assert users_with_items(ckpt.data.valid.csr(ckpt.data.num_users)).size > 0


def test_compile_with_distillation(ckpt) -> None:
    """--distill-epochs adds a measured distill pass after pruning, which brings the narrow
    model's rankings closer to the float model's, and the result still quantizes to int8."""
    plain = compile_checkpoint(ckpt, CompileOptions(dims=4, max_recall_drop=1.0))
    res = compile_checkpoint(ckpt, CompileOptions(dims=4, max_recall_drop=1.0, distill_epochs=3,
                                                  distill_users=None))
    names = [r.name for r in res.reports]
    assert names == ["precompute", "prune", "distill", "quantize", "guard"]
    assert res.ir.dim == 4 and res.ir.tables["item"].dtype == "int8"
    before, after = plain.reports[-1].metrics_after, res.reports[-1].metrics_after
    for mode in ("lookup", "history"):
        assert after[f"{mode}/agreement@20"] > before[f"{mode}/agreement@20"]
    with pytest.raises(EdgerecError, match="distill"):
        compile_checkpoint(ckpt.__class__(ckpt.path, {**ckpt.config, "model": "sage"}, ckpt.model, ckpt.data),
                           CompileOptions(dims=4, distill_epochs=1))


@pytest.mark.parametrize(("scheme", "bits"), [("int8", 8), ("int4", 4), ("int4-item", None),
                                             ("float16", None)])
def test_distillation_is_aware_of_uniform_quantization(ckpt, monkeypatch, scheme, bits) -> None:
    """The distill pass fake-quantizes to the width every table will have (int8, int4); a mixed
    scheme (int4-item) or a float one gets a plain distillation."""
    import edgerec.passes.distill as distill_module

    seen: list[int | None] = []
    real = distill_module.distill

    def spy(ir, reference, **kw):
        seen.append(kw.get("quant_bits"))
        return real(ir, reference, **kw)

    monkeypatch.setattr(distill_module, "distill", spy)
    res = compile_checkpoint(ckpt, CompileOptions(dims=4, max_recall_drop=1.0, distill_epochs=1,
                                                  distill_users=64, quantize=scheme))
    assert seen == [bits]
    if scheme == "int4":
        assert all(t.bits == 4 for t in res.ir.tables.values())


def test_dims_auto_reuses_the_searchs_distillation(ckpt, monkeypatch) -> None:
    """With --dims auto, the chosen width's distillation from the search is the one kept."""
    import edgerec.passes.distill as distill_module

    calls: list[int] = []
    real = distill_module.distill

    def counting(ir, reference, **kw):
        calls.append(ir.dim)
        return real(ir, reference, **kw)

    monkeypatch.setattr(distill_module, "distill", counting)
    res = compile_checkpoint(ckpt, CompileOptions(dims="auto", max_recall_drop=0.05, distill_epochs=1,
                                                  distill_users=64))
    searched = [int(s["dims"]) for s in res.search if s["dims"] < ckpt.config["dim"]]
    assert sorted(calls) == sorted(searched)
    assert "distill" in [r.name for r in res.reports] and res.ir.dim in searched
    # the IR's pass log is the measured one, prune included
    log = {p["name"]: p for p in res.ir.passes}
    assert [p["name"] for p in res.ir.passes] == ["precompute", "prune", "distill", "quantize", "guard"]
    assert log["prune"]["metrics_after"] and log["distill"]["metrics_after"]


def test_pass_manager_checks_after_each_pass_and_names_the_failing_one() -> None:
    """A pass that refuses its input, or leaves an inconsistent IR, is named in the error; the
    passes before it ran, each report carries the metrics before and after it."""
    from edgerec.errors import IRError
    from edgerec.ir import PassReport, Table
    from edgerec.passes.base import Pass
    from edgerec.passes.manager import PassError, PassManager
    from edgerec.passes.quantize import Quantize
    from tests.factories import make_ir

    class Breaks(Pass):
        name = "breaks"

        def __call__(self, ir):
            bad = ir.replace(tables={**ir.tables, "user": Table(ir.tables["user"].values[:3])})
            rep = PassReport(name=self.name)
            return bad.with_pass(rep), rep

    class Refuses(Pass):
        name = "refuses"

        def __call__(self, ir):
            raise ValueError("no")

    ir = make_ir()
    with pytest.raises(IRError, match="^breaks pass: ") as info:
        PassManager([Quantize("int8"), Breaks()]).run(ir)
    assert info.value.pass_name == "breaks"
    with pytest.raises(PassError, match="^refuses pass: no$"):
        PassManager([Refuses()]).run(ir)
    calls = []
    run = PassManager([Quantize("int8"), Quantize("none")],
                      measure=lambda x: calls.append(x) or {"m": float(len(calls))}).run(ir, {"m": 0.0})
    assert [r.metrics_before["m"] for r in run.reports] == [0.0, 1.0]
    assert [r.metrics_after["m"] for r in run.reports] == [1.0, 2.0]
    assert [p["name"] for p in run.ir.passes] == ["quantize", "quantize"]
    assert run.ir.passes[-1]["metrics_after"] == {"m": 2.0}


def test_cli_names_the_option_behind_a_pass_error(ckpt, tmp_path) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "edgerec", "compile", str(ckpt.path), "--out",
                           str(tmp_path / "ir"), "--min-item-count", "100000"],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    errors = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and "drop_cold_items pass:" in errors[0] and "--min-item-count" in errors[0]
