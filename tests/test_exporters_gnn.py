"""Exporting sage / gcn / gat history programs and the MLP head: tflite, onnx and numpy artifacts,
served by ``runtime.load``, agree with ``edgerec.scoring`` (the numpy reference of the IR)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import runtime
from edgerec.errors import ExportError
from edgerec.ir import IR, Table
from edgerec.passes.quantize import quantize
from edgerec.scoring import history_vectors, score_matrix
from exporters import export_ir
from runtime.errors import ArtifactError
from tests.factories import make_ir

K = 10
HCAP = 8
SPECS = {
    "sage": {"kind": "sage", "aggregation": "mean", "norm": "inv_len", "new_user": "mean"},
    "gcn": {"kind": "gcn", "aggregation": "sum", "norm": "rsqrt_len_plus_one", "new_user": "mean"},
    "gat": {"kind": "gat", "aggregation": "attention", "norm": "softmax", "negative_slope": 0.2,
            "new_user": "item_logits_only"},
}
CASES = [("sage", "dot"), ("gat", "dot"), ("sage", "mlp"), ("gcn", "mlp")]


def make_gnn_ir(kind: str, head: str, num_users: int = 60, num_items: int = 1100, dim: int = 24,
                hidden: int = 20, seed: int = 3) -> IR:
    """A random IR with the tables of a ``kind`` history program and a ``head`` scorer."""
    base = make_ir(num_users=num_users, num_items=num_items, dim=dim, seed=seed)
    rng = np.random.default_rng(seed + 100)

    def f(*shape: int, sc: float = 1.0) -> Table:
        return Table((rng.standard_normal(shape) * sc).astype(np.float32))

    t = dict(base.tables)
    if kind == "gat":
        del t["user_base"]
        t.update(history_logit=f(num_items, 1, sc=2.0), history_bias=f(1, dim, sc=0.2),
                 user_self=f(num_users, dim), user_logit=f(num_users, 2))
    else:
        t["user_default"] = f(1, dim, sc=0.2)
    scorer: dict = {"kind": "dot"}
    if head == "mlp":
        t.update(mlp_item=f(num_items, hidden), mlp_w1_user=f(dim, hidden, sc=0.3),
                 mlp_b1=f(1, hidden, sc=0.1), mlp_w2=f(hidden, 1), mlp_b2=f(1, 1))
        scorer = {"kind": "mlp", "hidden": hidden, "activation": "relu"}
    ir = base.replace(tables=t, scorer=scorer, history=dict(SPECS[kind]))
    ir.validate()
    return ir


@pytest.fixture(scope="module")
def irs() -> dict[tuple[str, str, str], IR]:
    out = {}
    for kind, head in CASES:
        ir = make_gnn_ir(kind, head)
        out[(kind, head, "float32")] = ir
        out[(kind, head, "int8")] = quantize(ir, "int8")[0]
    return out


def _histories(ir: IR, n: int = 40, seed: int = 7) -> list[np.ndarray]:
    """New users' histories: random, of every length 1..HCAP (the last one is a duplicate-free
    history of exactly the capacity)."""
    rng = np.random.default_rng(seed)
    return [rng.choice(ir.num_items, size=int(rng.integers(1, HCAP + 1)), replace=False).astype(np.int32)
            for _ in range(n)]


def _reference(ir: IR, uv: np.ndarray, excluded: list[np.ndarray]) -> np.ndarray:
    """``edgerec.scoring``'s score vectors with each query's excluded items at -inf."""
    s = score_matrix(ir, uv).numpy().astype(np.float64)
    for row, ex in zip(s, excluded, strict=True):
        row[ex] = -np.inf
    return s


def _agree(ir: IR, scores: np.ndarray, got: list[list[int]], exact: bool) -> float:
    """Mean top-K overlap of ``got`` with the reference; with ``exact`` the returned items must
    carry the reference's K best scores (identical up to ties)."""
    overlaps = []
    for row, items in zip(scores, got, strict=True):
        best = np.sort(row)[::-1][:K]
        ref = set(np.argsort(-row, kind="stable")[:K].tolist())
        overlaps.append(len(ref & set(items)) / K)
        if exact:
            np.testing.assert_allclose(row[items], best, rtol=1e-4, atol=1e-4)
    return float(np.mean(overlaps))


@pytest.mark.parametrize("kind,head", CASES)
@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("target", ["tflite", "onnx", "numpy"])
def test_export_serves_the_ir(tmp_path: Path, irs, kind: str, head: str, dtype: str, target: str) -> None:
    if target == "tflite":
        pytest.importorskip("tensorflow")
    if target == "onnx":
        pytest.importorskip("onnxruntime")
    ir = irs[(kind, head, dtype)]
    m = export_ir(ir, tmp_path / "a", target, k=K, history_capacity=HCAP)
    assert m["history"]["kind"] == kind and m.get("scorer", {"kind": "dot"})["kind"] == head
    if head == "mlp":  # the head's dense weights stay float: no activation quantization
        assert m["scorer"] == {"kind": "mlp", "hidden": 20, "activation": "relu"}
        assert m["quantization"]["activations"] == "float"
    for mode, r in m["metrics"]["parity"]["modes"].items():
        assert r[f"agreement@{K}"] >= 0.99, mode
        if head == "mlp" or dtype == "float32":
            assert r["max_relative_score_error"] < 1e-4, mode
    _check_ops(tmp_path / "a", target, head, dtype)

    rec = runtime.load(tmp_path / "a")
    index = {x: i for i, x in enumerate(ir.item_ids)}
    users = np.arange(ir.num_users)
    # lookup: stored user vectors, seen items excluded
    got = [[index[i] for i, _ in rec.recommend(ir.user_ids[u], k=K)] for u in users]
    ref = _reference(ir, ir.tables["user"].dequantize()[users], [ir.seen(int(u)) for u in users])
    exact = dtype == "float32" or head == "mlp"
    assert _agree(ir, ref, got, exact) >= 0.98
    # history: a new user (no per-user state) from random histories
    hists = _histories(ir)
    indptr = np.concatenate([[0], np.cumsum([h.size for h in hists])]).astype(np.int64)
    uv = history_vectors(ir, np.arange(len(hists)), (indptr, np.concatenate(hists)), with_base=False)
    got = [[index[i] for i, _ in rec.recommend_from_history([ir.item_ids[j] for j in h], k=K)]
           for h in hists]
    assert _agree(ir, _reference(ir, uv, hists), got, exact) >= 0.98


def _check_ops(root: Path, target: str, head: str, dtype: str) -> None:
    if target == "tflite":
        from exporters import tflite
        from tests.factories import tflite_half_scales

        data = (root / "model.tflite").read_bytes()
        halves = tflite_half_scales(data)
        for mode, names in tflite.list_ops(data).items():
            assert not [o for o in names if o.startswith(("CUSTOM", "UNKNOWN", "Flex"))]
            assert "TOPK_V2" in names
            if dtype == "int8":  # no float copy of a table: DEQUANTIZE widens float16 scales only
                assert names.count("DEQUANTIZE") == len(halves[mode]) >= 1
    elif target == "onnx":
        import onnx

        for f in root.glob("*.onnx"):
            model = onnx.load(f)
            assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)
            ops = {n.op_type for n in model.graph.node}
            assert "TopK" in ops
            if head == "mlp":
                assert not ops & {"MatMulInteger", "DynamicQuantizeLinear"}
    else:
        m = json.loads((root / "manifest.json").read_text())
        want = {"mlp_item", "mlp_w1_user", "mlp_b1", "mlp_w2", "mlp_b2"} if head == "mlp" else {"item"}
        assert want <= set(m["tables"])


def test_gat_padding_slots_get_zero_weight(tmp_path: Path, irs) -> None:
    """A history padded with a real item index beyond ``length`` scores like the unpadded one."""
    pytest.importorskip("onnxruntime")
    from exporters import onnx as onnx_target

    ir = irs[("gat", "dot", "float32")]
    export_ir(ir, tmp_path / "a", "onnx", k=K, history_capacity=HCAP)
    run = onnx_target.runner({f: (tmp_path / "a" / f).read_bytes() for f in ("history.onnx", "tables.bin")})
    hist = np.array([5, 9, 11], np.int32)
    clean = np.full(HCAP, ir.num_items, np.int32)
    clean[:3] = hist
    dirty = np.full(HCAP, 17, np.int32)  # padding slots hold a real item with a large logit
    dirty[:3] = hist
    a = run("history", {"history": clean, "length": np.array([3], np.int32)})
    b = run("history", {"history": dirty, "length": np.array([3], np.int32)})
    np.testing.assert_array_equal(a["items"][a["items"] != 17][:5], b["items"][:5])
    uv = history_vectors(ir, np.array([0]), (np.array([0, 3]), hist))
    ref = _reference(ir, uv, [hist])[0]
    assert set(a["items"].tolist()) == set(np.argsort(-ref)[:K].tolist())


def test_trained_checkpoint_exports(tmp_path: Path, synthetic_dir: Path) -> None:
    """A trained gcn+mlp model, int8, through the exporters: history for a new user agrees."""
    pytest.importorskip("tensorflow")
    from edgerec.checkpoint import load_checkpoint, save_checkpoint
    from edgerec.data import load_data
    from edgerec.lowering.gnn import precompute_gnn
    from edgerec.trainer import TrainConfig, train

    data = load_data(synthetic_dir)
    r = train(data, TrainConfig(model="gcn", head="mlp", hidden=16, dim=8, layers=2, epochs=3,
                                batch_size=2048, lr=2e-2, eval_every=3, patience=2, threads=1))
    ck = load_checkpoint(save_checkpoint(tmp_path / "ck", r.model, data, r.checkpoint_config()))
    ir = quantize(precompute_gnn(ck)[0], "int8")[0]
    for target in ("tflite", "numpy"):
        m = export_ir(ir, tmp_path / target, target, k=K, history_capacity=HCAP)
        assert m["metrics"]["parity"][f"agreement@{K}"] >= 0.99
        rec = runtime.load(tmp_path / target)
        index = {x: i for i, x in enumerate(ir.item_ids)}
        hists = _histories(ir, n=30)
        indptr = np.concatenate([[0], np.cumsum([h.size for h in hists])]).astype(np.int64)
        uv = history_vectors(ir, np.arange(len(hists)), (indptr, np.concatenate(hists)))
        got = [[index[i] for i, _ in rec.recommend_from_history([ir.item_ids[j] for j in h], k=K)]
               for h in hists]
        assert _agree(ir, _reference(ir, uv, hists), got, exact=True) >= 0.98


def test_refusals(tmp_path: Path, irs, monkeypatch) -> None:
    ir = irs[("sage", "mlp", "float32")]
    tables = {n: t for n, t in ir.tables.items() if n != "mlp_w2"}
    with pytest.raises(ExportError, match="mlp_w2"):
        export_ir(ir.replace(tables=tables), tmp_path / "x", "numpy", k=K)
    from exporters import onnx as onnx_target

    real = onnx_target.runner

    def shuffled(files):
        run = real(files)
        return lambda mode, feeds: {**run(mode, feeds), "items": run(mode, feeds)["items"][::-1] + 1}

    monkeypatch.setattr(onnx_target, "runner", shuffled)
    with pytest.raises(ExportError, match="disagrees"):
        export_ir(ir, tmp_path / "x", "onnx", k=K, history_capacity=HCAP)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_manifest_program_is_validated(tmp_path: Path, irs) -> None:
    ir = quantize(make_gnn_ir("gat", "mlp"), "int8")[0]
    export_ir(ir, tmp_path / "a", "numpy", k=K, history_capacity=HCAP)
    f = tmp_path / "a" / "manifest.json"
    good = json.loads(f.read_text())
    for key, bad, msg in (("scorer", {"kind": "mlp"}, "hidden"), ("scorer", {"kind": "svm"}, "scorer"),
                          ("history", {"kind": "gin"}, "history"),
                          ("history", {**good["history"], "negative_slope": "x"}, "negative_slope")):
        f.write_text(json.dumps({**good, key: bad}))
        with pytest.raises(ArtifactError, match=msg):
            runtime.load(tmp_path / "a")
    m = {**good, "scorer": {**good["scorer"], "hidden": 7}}  # tables no longer match the head
    f.write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="mlp_"):
        runtime.load(tmp_path / "a")


def test_mlp_tflite_export_is_deterministic(tmp_path: Path, irs) -> None:
    pytest.importorskip("tensorflow")
    ir = irs[("gcn", "mlp", "int8")]
    a = export_ir(ir, tmp_path / "a", "tflite", k=K, history_capacity=HCAP)
    b = export_ir(ir, tmp_path / "b", "tflite", k=K, history_capacity=HCAP)
    assert a == b
    assert (tmp_path / "a" / "model.tflite").read_bytes() == (tmp_path / "b" / "model.tflite").read_bytes()
    # the int8 head table is in the file once, as int8: the file is about the tables' size
    assert (tmp_path / "a" / "model.tflite").stat().st_size < ir.nbytes + 4 * ir.num_items + 40_000
