"""export_ir: verified artifacts for tflite / onnx / numpy, refusals, atomicity, determinism."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgerec.errors import EdgerecError, ExportError
from edgerec.passes.quantize import quantize
from exporters import export_ir, parity
from runtime import artifact
from tests.factories import make_ir, tflite_half_scales

K = 10


@pytest.fixture(scope="module")
def irs():
    base = make_ir(num_users=70, num_items=1100, dim=16, seed=1)
    return {"float32": base, "int8": quantize(base, "int8")[0],
            "float16": quantize(base, "float16")[0]}


def _scales_as_stored(ir) -> dict[str, list[np.ndarray]]:
    """What each signature's float16 scales should be: the padded item scale, then the
    gathered table's scale with the 0 of ``pad_index``."""
    from exporters.tflite.layout import padded_item_scale

    item = padded_item_scale(ir).astype(np.float16)
    return {mode: [item, np.append(ir.tables[table].scale, 0).astype(np.float16)]
            for mode, table in (("lookup", "user"), ("history", "history_item"))}


def _sorted_bytes(vectors: list[np.ndarray]) -> list[bytes]:
    return sorted(v.tobytes() for v in vectors)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _check_artifact(root: Path, m: dict, ir, target: str) -> None:
    on_disk = json.loads((root / "manifest.json").read_text())
    assert on_disk == m
    assert m["target"] == target and m["k"] == K and m["pad_index"] == ir.num_items
    assert m["modes"] == list(ir.modes)
    assert m["exclude_capacity"] == int(np.diff(ir.seen_indptr).max())
    assert set(m["files"]) == set(_files(root)) - {"manifest.json"}
    for name, sha in m["files"].items():
        assert artifact.sha256_file(root / name) == sha
    assert m["source"]["checkpoint_fingerprint"] == "random-1"
    assert len(m["source"]["ir_fingerprint"]) == 64
    p = m["metrics"]["parity"]
    for mode in ir.modes:
        r = p["modes"][mode]
        assert r["queries"] >= (256 if mode == "history" else ir.num_users)
        assert r[f"agreement@{K}"] >= 0.99
        assert r[f"agreement@{K}_vs_float"] >= 0.9
    assert artifact.load_artifact(root).manifest == m  # the runtime accepts what we wrote


@pytest.mark.parametrize("dtype", ["int8", "float32", "float16"])
def test_tflite_export(tmp_path: Path, irs, dtype: str) -> None:
    pytest.importorskip("tensorflow")
    from exporters import tflite

    ir = irs[dtype]
    m = export_ir(ir, tmp_path / "a", "tflite", k=K, history_capacity=8)
    _check_artifact(tmp_path / "a", m, ir, "tflite")
    assert m["quantization"]["weights"] == {"int8": "int8-per-row"}.get(dtype, dtype)
    assert m["quantization"]["activations"] == ("dynamic-int8-asymmetric" if dtype == "int8" else "float")
    data = (tmp_path / "a" / "model.tflite").read_bytes()
    ops = tflite.list_ops(data)
    assert set(ops) == {"lookup", "history"}
    for names in ops.values():
        assert not [o for o in names if o.startswith(("CUSTOM", "UNKNOWN", "Flex"))]
        assert "TOPK_V2" in names and "FULLY_CONNECTED" in names
    if dtype == "int8":  # no float copy of a table: the DEQUANTIZEs widen float16 scales
        halves = tflite_half_scales(data)
        for mode, want in _scales_as_stored(ir).items():
            assert ops[mode].count("DEQUANTIZE") == len(halves[mode]) == 2
            assert _sorted_bytes(halves[mode]) == _sorted_bytes(want)
    if dtype == "int8":  # one copy of the item table, int8: the file is about the tables' size
        assert len(data) < ir.nbytes + 4 * ir.num_items + 30_000
        assert m["metrics"]["parity"]["modes"]["lookup"]["exact_match_rate"] >= 0.99


def _exact_in_float32_only(ir):
    """``ir`` with its scales nudged off float16 (same integers): a file must keep them float32."""
    from edgerec.ir import Table

    tables = {n: Table(t.values, t.scale * np.float32(1 + 2**-20), t.bits) if t.scale is not None
              else t for n, t in ir.tables.items()}
    return ir.replace(tables=tables)


@pytest.mark.parametrize("scheme", ["int8", "int4-item", "int4"])
def test_scales_are_stored_in_float16_when_exact(tmp_path: Path, scheme: str) -> None:
    """The quantize pass rounds every per-row scale to a float16; TFLite and ONNX store them in
    float16 (2 bytes a row, widened exactly in the graph) and answer as the numpy reference. A
    scale float16 cannot hold exactly stays float32 and the file is larger by 2 bytes a row."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("onnxruntime")
    import onnx
    from onnx import TensorProto

    import runtime
    from runtime.quant import half_scale

    ir = quantize(make_ir(num_users=700, num_items=3000, dim=16, seed=5), scheme)[0]
    assert all(half_scale(t.scale) is not None for t in ir.tables.values() if t.scale is not None)
    wide = _exact_in_float32_only(ir)
    assert all(half_scale(t.scale) is None for t in wide.tables.values() if t.scale is not None)
    assert wide.nbytes - ir.nbytes == 2 * (2 * ir.num_items + ir.num_users)
    export_ir(ir, tmp_path / "n", "numpy", k=K, history_capacity=8)
    sizes = {}
    for name, this in (("half", ir), ("wide", wide)):
        for target in ("tflite", "onnx"):
            root = tmp_path / f"{name}-{target}"
            m = export_ir(this, root, target, k=K, history_capacity=8)
            sizes[name, target] = sum((root / f).stat().st_size for f in runtime.artifact.model_files(m))
        data = (tmp_path / f"{name}-tflite" / "model.tflite").read_bytes()
        halves = tflite_half_scales(data)
        if name == "half":
            for mode, want in _scales_as_stored(ir).items():
                assert _sorted_bytes(halves[mode]) == _sorted_bytes(want)
        else:
            assert halves == {"lookup": [], "history": []}
        model = onnx.load(str(tmp_path / f"{name}-onnx" / "lookup.onnx"), load_external_data=False)
        types = {i.name: i.data_type for i in model.graph.initializer if "scale" in i.name}
        want_type = TensorProto.FLOAT16 if name == "half" else TensorProto.FLOAT
        assert types and set(types.values()) == {want_type}
    # 2 bytes a row of each scale (the item's and each gathered table's), less the DEQUANTIZE
    # ops and tensors TFLite adds (about 200 bytes a signature) or the page alignment of ONNX's
    # tables.bin
    rows = 2 * ir.num_items + ir.num_users
    assert sizes["wide", "tflite"] - sizes["half", "tflite"] >= 2 * rows - 1024
    assert sizes["wide", "onnx"] - sizes["half", "onnx"] >= 2 * rows - 3 * 4096
    # the files answer as the numpy reference on the same integers and scales (the parity check
    # before writing: exact for TFLite's integer kernels, near-ties for ONNX's float int4 MatMul),
    # and the runtime loads them (its model check reads the float16 scales' DEQUANTIZE / Cast)
    for target in ("tflite", "onnx"):
        m = json.loads((tmp_path / f"half-{target}" / "manifest.json").read_text())
        for mode in ir.modes:
            report = m["metrics"]["parity"]["modes"][mode]
            assert report[f"agreement@{K}"] >= 0.99
            if target == "tflite":
                assert report["exact_match_rate"] == 1.0 and report["max_score_error"] == 0.0
        got = runtime.load(tmp_path / f"half-{target}")
        assert len(got.recommend(got.artifact.user_ids[0], K)) == K
        assert len(got.recommend_from_history(list(got.artifact.item_ids[:5]), K)) == K


def test_tflite_export_is_deterministic(tmp_path: Path, irs) -> None:
    pytest.importorskip("tensorflow")
    a = export_ir(irs["int8"], tmp_path / "a", "tflite", k=K, history_capacity=8)
    b = export_ir(irs["int8"], tmp_path / "b", "tflite", k=K, history_capacity=8)
    assert a == b
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


@pytest.mark.parametrize("dtype", ["int8", "float32", "float16"])
def test_onnx_export(tmp_path: Path, irs, dtype: str) -> None:
    pytest.importorskip("onnxruntime")
    import onnx

    ir = irs[dtype]
    m = export_ir(ir, tmp_path / "a", "onnx", k=K, history_capacity=8)
    _check_artifact(tmp_path / "a", m, ir, "onnx")
    assert m["quantization"]["activations"] == ("dynamic-uint8-asymmetric" if dtype == "int8" else "float")
    for mode in ir.modes:
        model = onnx.load(tmp_path / "a" / f"{mode}.onnx")
        onnx.checker.check_model(model, full_check=True)
        assert [o.name for o in model.graph.output] == ["scores", "items"]
        assert [i.name for i in model.graph.input] == list(parity.input_names(mode))
        if dtype == "int8":
            assert {n.op_type for n in model.graph.node} >= {"DynamicQuantizeLinear", "MatMulInteger"}
            assert m["metrics"]["parity"]["modes"][mode]["exact_match_rate"] >= 0.99
    again = export_ir(ir, tmp_path / "b", "onnx", k=K, history_capacity=8)
    assert again == m and _files(tmp_path / "a") == _files(tmp_path / "b")


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_numpy_export(tmp_path: Path, irs, dtype: str) -> None:
    ir = irs[dtype]
    m = export_ir(ir, tmp_path / "a", "numpy", k=K)
    _check_artifact(tmp_path / "a", m, ir, "numpy")
    t = m["tables"]["item"]
    values = np.load(tmp_path / "a" / t["file"], allow_pickle=False)
    assert np.array_equal(values, ir.tables["item"].values)
    assert (t["scale_file"] is None) == (dtype != "int8")


def test_lookup_only_ir_has_seen_files_and_history_only_has_none(tmp_path: Path) -> None:
    ir = make_ir(num_users=30, num_items=300, modes=("history",))
    m = export_ir(ir, tmp_path / "h", "numpy", k=K)
    assert m["seen"] is None and not (tmp_path / "h" / "seen_indptr.npy").exists()
    ir = make_ir(num_users=30, num_items=300, modes=("lookup",))
    m = export_ir(ir, tmp_path / "l", "numpy", k=K)
    assert m["seen"] == {"indptr": "seen_indptr.npy", "indices": "seen_indices.npy"}


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


def test_refusals_leave_nothing_behind(tmp_path: Path, irs) -> None:
    ir = irs["float32"]
    with pytest.raises(ExportError, match="unknown target"):
        export_ir(ir, tmp_path / "x", "coreml")
    with pytest.raises(ExportError, match="k must be"):
        export_ir(ir, tmp_path / "x", "numpy", k=ir.num_items + 1)
    with pytest.raises(ExportError, match="dot-product scorers"):
        export_ir(ir.replace(scorer={"kind": "mlp", "hidden": 8}), tmp_path / "x", "numpy")
    with pytest.raises(ExportError, match="extra file"):
        export_ir(ir, tmp_path / "x", "numpy", extra_files={"../evil": b""})
    with pytest.raises(ExportError, match="min_parity"):
        export_ir(ir, tmp_path / "x", "numpy", k=K, min_parity=1.5)
    assert _leftovers(tmp_path) == []


def test_existing_output_needs_overwrite(tmp_path: Path, irs) -> None:
    out = tmp_path / "a"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="exists"):
        export_ir(irs["float32"], out, "numpy", k=K)
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(EdgerecError, match="not an earlier edgerec output"):  # not ours to delete
        export_ir(irs["float32"], out, "numpy", k=K, overwrite=True)
    assert (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()
    export_ir(irs["float32"], out, "numpy", k=K, overwrite=True)  # an empty directory may go
    m = export_ir(irs["float32"], out, "numpy", k=K, overwrite=True,  # and so may an earlier export
                  extra_files={"eval.json": b"{}"}, metrics={"float": {"recall@20": 0.1}})
    assert m["eval"] == "eval.json" and "eval.json" in m["files"]
    assert m["metrics"]["float"] == {"recall@20": 0.1}
    assert _leftovers(tmp_path) == ["a"]


def test_interrupt_leaves_nothing_and_keeps_old_artifact(tmp_path: Path, irs, monkeypatch) -> None:
    out = tmp_path / "a"
    first = export_ir(irs["float32"], out, "numpy", k=K)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(parity, "compare", boom)
    with pytest.raises(KeyboardInterrupt):
        export_ir(irs["int8"], out, "numpy", k=K, overwrite=True)
    assert _leftovers(tmp_path) == ["a"]
    assert json.loads((out / "manifest.json").read_text()) == first


def test_parity_queries_truncate_history_to_most_recent(irs) -> None:
    ir = irs["float32"]
    qs = parity.sample_queries(ir, n=500, history_capacity=3, exclude_capacity=20)
    h_name = parity.input_names("history")[0]
    users = sorted(range(ir.num_users))
    hist = [f for mode, f in qs if mode == "history"]
    assert len(hist) == 500  # the IR's 70 users, then random histories
    for u, f in zip(users, hist[: ir.num_users], strict=True):
        seen = ir.seen(u)
        n = int(f["length"][0])
        assert n == min(3, seen.size)
        assert f[h_name][:n].tolist() == seen[-3:].tolist()
        assert (f[h_name][n:] == ir.num_items).all()
    for f in hist[ir.num_users:]:
        n = int(f["length"][0])
        assert 1 <= n <= 3 and len(set(f[h_name][:n].tolist())) == n
        assert (f[h_name][n:] == ir.num_items).all()


def test_tiny_int8_table_stays_exact_in_float(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    ir = quantize(make_ir(num_users=20, num_items=40, dim=8), "int8")[0]  # 320 weights < 1024
    m = export_ir(ir, tmp_path / "a", "tflite", k=5, history_capacity=4)
    assert m["quantization"] == {"weights": "int8-per-row", "activations": "float"}
    assert m["metrics"]["parity"]["modes"]["lookup"]["exact_match_rate"] == 1.0


def test_a_model_that_disagrees_is_refused(tmp_path: Path, irs, monkeypatch) -> None:
    pytest.importorskip("onnxruntime")
    from exporters import onnx as onnx_target

    real = onnx_target.runner

    def off_by_one(files):
        run = real(files)

        def wrong(mode, feeds):
            out = run(mode, feeds)
            return {"scores": out["scores"], "items": (out["items"] + 1) % irs["int8"].num_items}

        return wrong

    monkeypatch.setattr(onnx_target, "runner", off_by_one)
    with pytest.raises(ExportError, match="disagrees with its numpy emulation"):
        export_ir(irs["int8"], tmp_path / "a", "onnx", k=K, history_capacity=8)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_large_catalogue_takes_the_two_stage_top_k_exactly(tmp_path: Path, dtype: str) -> None:
    pytest.importorskip("tensorflow")
    from exporters import tflite

    base = make_ir(num_users=40, num_items=3000, dim=16, seed=3)
    ir = quantize(base, dtype)[0] if dtype != "float32" else base
    assert tflite.uses_block_top_k(ir.num_items, K)
    m = export_ir(ir, tmp_path / "a", "tflite", k=K, history_capacity=8)
    ops = tflite.list_ops((tmp_path / "a" / "model.tflite").read_bytes())
    for names in ops.values():
        # block maxima, the k best blocks put back in index order, the candidates
        assert "REDUCE_MAX" in names and names.count("TOPK_V2") == 3
    for mode in ir.modes:
        assert m["metrics"]["parity"]["modes"][mode]["exact_match_rate"] >= 0.99


def test_block_top_k_equals_a_full_sort() -> None:
    tf = pytest.importorskip("tensorflow")
    from exporters.tflite import BLOCK
    from exporters.tflite.graph import block_top_k

    rng = np.random.default_rng(0)
    for trial in range(40):
        k = (7, 1, 12)[trial % 3]  # k = 1: the floor is the best score itself
        s = rng.standard_normal(BLOCK * 40).astype(np.float32)
        if trial % 4 == 1:  # the best items crowded into one block
            s[BLOCK * 3: BLOCK * 3 + 20] += 10
        if trial % 4 == 2:  # all but three items masked: the masked tail comes last
            keep = rng.choice(s.size, 3, replace=False)
            s[np.setdiff1d(np.arange(s.size), keep)] = -1e30
        if trial % 4 == 3:  # many equal scores across blocks: lowest index first
            s = np.rint(s * 2).astype(np.float32)
        values, ids = (t.numpy() for t in block_top_k(tf, tf.constant(s), k))
        want = np.argsort(-s, kind="stable")[:k]
        np.testing.assert_array_equal(values, s[want])
        np.testing.assert_array_equal(s[ids], values)
        if trial % 4 != 2:  # the same items in the same order as a stable sort, ties included
            np.testing.assert_array_equal(ids, want)


def test_seen_lists_are_stored_in_the_smallest_index_dtype(tmp_path: Path, irs) -> None:
    assert artifact.index_dtype(65_535) == np.uint16 and artifact.index_dtype(65_536) == np.int32
    ir = irs["float32"]
    export_ir(ir, tmp_path / "a", "numpy", k=K, history_capacity=8)
    stored = np.load(tmp_path / "a" / "seen_indices.npy")
    assert stored.dtype == np.uint16
    np.testing.assert_array_equal(stored, ir.seen_indices)
    art = artifact.load_artifact(tmp_path / "a")
    u = int(np.argmax(np.diff(ir.seen_indptr)))
    np.testing.assert_array_equal(art.seen(u), ir.seen(u))


def test_int4_item_table_is_packed_in_the_tflite_file_and_exact(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    from ai_edge_litert import schema_py_generated as schema

    import runtime
    from exporters import tflite
    from exporters.tflite.flatbuffer import op_name

    base = make_ir(num_users=40, num_items=3000, dim=16, seed=3)
    ir = quantize(base, "int4-item")[0]
    assert ir.tables["item"].bits == 4 and ir.tables["user"].bits is None
    m = export_ir(ir, tmp_path / "a", "tflite", k=K, history_capacity=8)
    # the scheme the builtin kernel was measured to use (16 channels: LiteRT 2.3's plain hybrid
    # path, asymmetric); parity below holds the model to it
    assert m["quantization"]["weights"] == "int8-per-row+int4-item"
    assert m["quantization"]["activations"] in ("dynamic-int8-asymmetric", "dynamic-int8-symmetric")
    for mode in ir.modes:
        assert m["metrics"]["parity"]["modes"][mode]["exact_match_rate"] >= 0.99
    data = (tmp_path / "a" / "model.tflite").read_bytes()
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    weights = {(sg.tensors[op.inputs[1]].type, sg.tensors[op.inputs[1]].buffer)
               for sg in model.subgraphs for op in sg.operators
               if op_name(model, op.opcodeIndex, schema) == "FULLY_CONNECTED"}
    assert weights and {t for t, _ in weights} == {schema.TensorType.INT4}
    assert len({b for _, b in weights}) == 1  # one packed copy for both signatures
    m8 = export_ir(quantize(base, "int8")[0], tmp_path / "b", "tflite", k=K, history_capacity=8)
    saved = (tmp_path / "b" / "model.tflite").stat().st_size - len(data)
    assert saved >= tflite.padded_scores(ir.num_items) * ir.dim // 2 - 4096
    assert m8["quantization"]["weights"] == "int8-per-row"
    # the runtime answers as the numpy reference of the same IR does
    export_ir(ir, tmp_path / "n", "numpy", k=K, history_capacity=8)
    got = runtime.load(tmp_path / "a", exact=True)
    ref = runtime.load(tmp_path / "n", activations=m["quantization"]["activations"])
    for u in ref.artifact.user_ids[:20]:
        assert [i for i, _ in got.recommend(u, K)] == [i for i, _ in ref.recommend(u, K)]


@pytest.mark.parametrize("dim", [16, 17])
def test_int4_stores_every_table_packed_and_exact(tmp_path: Path, dim: int) -> None:
    """--quantize int4: the matmul weights and the gathered user / history tables are INT4
    tensors holding the IR's integers (one buffer each); the model answers as the numpy
    reference does on the builtin kernels, and the file is smaller than int4-item's."""
    pytest.importorskip("tensorflow")
    from ai_edge_litert import schema_py_generated as schema

    import runtime
    from exporters import tflite
    from exporters.tflite.flatbuffer import op_name

    base = make_ir(num_users=40, num_items=3000, dim=dim, seed=3)
    ir = quantize(base, "int4")[0]
    assert all(ir.tables[n].bits == 4 for n in ("item", "user", "history_item"))
    m = export_ir(ir, tmp_path / "a", "tflite", k=K, history_capacity=8)
    assert m["quantization"]["weights"] == "int4-per-row"
    for mode in ir.modes:
        assert m["metrics"]["parity"]["modes"][mode]["exact_match_rate"] >= 0.99
    data = (tmp_path / "a" / "model.tflite").read_bytes()
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    gathered = {}
    for sg in model.subgraphs:
        for op in sg.operators:
            t = sg.tensors[op.inputs[0]]
            if op_name(model, op.opcodeIndex, schema) == "GATHER" and t.type in (
                    schema.TensorType.INT4, schema.TensorType.INT8):
                gathered.setdefault(tuple(t.shape), set()).add((t.type, t.buffer))
    width = dim + dim % 2  # LiteRT gathers INT4 rows as whole bytes: odd widths get a zero column
    want = {(ir.num_users + 1, width): "user", (ir.num_items + 1, width): "history_item"}
    assert set(gathered) == set(want)
    for shape, name in want.items():
        ((kind, buf),) = gathered[shape]
        assert kind == schema.TensorType.INT4
        stored = tflite.unpack_int4(bytes(model.buffers[buf].data), shape[0] * width)
        np.testing.assert_array_equal(stored.reshape(shape)[:-1, :dim], ir.tables[name].values)
        assert not stored.reshape(shape)[-1].any() and not stored.reshape(shape)[:, dim:].any()
    export_ir(quantize(base, "int4-item")[0], tmp_path / "b", "tflite", k=K, history_capacity=8)
    saved = (tmp_path / "b" / "model.tflite").stat().st_size - len(data)
    assert saved >= (ir.num_users + ir.num_items) * dim // 2 - 4096
    export_ir(ir, tmp_path / "n", "numpy", k=K, history_capacity=8)
    got = runtime.load(tmp_path / "a", exact=True)
    ref = runtime.load(tmp_path / "n", activations=m["quantization"]["activations"])
    for u in ref.artifact.user_ids[:20]:
        assert [i for i, _ in got.recommend(u, K)] == [i for i, _ in ref.recommend(u, K)]
    hist = list(ref.artifact.item_ids[:5])
    assert [i for i, _ in got.recommend_from_history(hist, K)] == \
        [i for i, _ in ref.recommend_from_history(hist, K)]


@pytest.mark.parametrize(("scheme", "dim"), [("int4-item", 16), ("int4", 17)])
def test_onnx_int4_tables_are_packed_and_answer_as_the_reference(tmp_path: Path, scheme: str,
                                                                   dim: int) -> None:
    """ONNX int4: INT4 initializers (opset 21) holding the IR's integers, Cast to int8 (folded
    by ONNX Runtime) and scored with MatMulInteger: about half the int8 file, exact parity with
    the integer emulation, and the runtime answers with the numpy reference's top-k."""
    pytest.importorskip("onnxruntime")
    import onnx
    from onnx import TensorProto

    import runtime
    from exporters.parity import EMULATED
    from exporters.weights import unpack_int4

    base = make_ir(num_users=40, num_items=3000, dim=dim, seed=3)
    ir = quantize(base, scheme)[0]
    m = export_ir(ir, tmp_path / "a", "onnx", k=K, history_capacity=8)
    weights = {"int4-item": "int8-per-row+int4-item", "int4": "int4-per-row"}[scheme]
    assert m["quantization"] == {"weights": weights, "activations": "dynamic-uint8-asymmetric"}
    assert m["metrics"]["parity"]["check"] == EMULATED
    for mode in ir.modes:
        assert m["metrics"]["parity"]["modes"][mode]["exact_match_rate"] == 1.0
    packed = {"item": ir.tables["item"].values.T}
    if scheme == "int4":
        packed |= {n: np.concatenate([ir.tables[n].values, np.zeros((1, dim), np.int8)])
                   for n in ("user", "history_item")}
    found = set()
    for mode, (file, table) in {"lookup": ("lookup.onnx", "user"),
                                "history": ("history.onnx", "history_item")}.items():
        model = onnx.load(str(tmp_path / "a" / file))
        assert model.opset_import[0].version == 21
        assert {"MatMulInteger", "DynamicQuantizeLinear"} <= {n.op_type for n in model.graph.node}
        assert "DequantizeLinear" not in {n.op_type for n in model.graph.node}
        for init in model.graph.initializer:
            if init.data_type != TensorProto.INT4:
                continue
            name = "item" if init.name == "item_q4_t" else init.name.removesuffix("_q4")
            want = packed[name]
            assert list(init.dims) == list(want.shape)
            np.testing.assert_array_equal(
                unpack_int4(init.raw_data, want.size).reshape(want.shape), want)
            found.add(name)
        assert (table in found) == (scheme == "int4"), mode
    assert found == set(packed)
    m8 = export_ir(quantize(base, "int8")[0], tmp_path / "b", "onnx", k=K, history_capacity=8)
    assert m8["quantization"]["weights"] == "int8-per-row"
    assert m8["metrics"]["parity"]["check"] == EMULATED
    size = {d: sum((tmp_path / d / f).stat().st_size for f in ("lookup.onnx", "history.onnx",
                                                                "tables.bin"))
            for d in ("a", "b")}
    stored = ir.num_items * dim + (ir.num_items + ir.num_users) * dim * (scheme == "int4")
    assert size["b"] - size["a"] >= stored // 2 - 4096 * 3  # 3 tables, each aligned to a page
    # the runtime (ONNX Runtime) answers with the numpy reference's top-k on the same integers
    export_ir(ir, tmp_path / "n", "numpy", k=K, history_capacity=8)
    got = runtime.load(tmp_path / "a")
    ref = runtime.load(tmp_path / "n", activations="dynamic-uint8-asymmetric")
    for u in ref.artifact.user_ids[:40]:
        assert got.recommend(u, K) == ref.recommend(u, K)  # ids and scores
    for start in range(0, 40, 8):
        hist = list(ref.artifact.item_ids[start:start + 5])
        assert [i for i, _ in got.recommend_from_history(hist, K)] == \
            [i for i, _ in ref.recommend_from_history(hist, K)]
    # the runtime's model check knows the layout: the int4 files under an int8 manifest are refused
    forged = json.loads((tmp_path / "a" / "manifest.json").read_text())
    forged["quantization"] = {"weights": "int8-per-row", "activations": "dynamic-uint8-asymmetric"}
    artifact.write_manifest(tmp_path / "a", forged)
    with pytest.raises(runtime.ArtifactError, match="not the one this manifest describes"):
        runtime.load(tmp_path / "a")


def _onnx_item_bytes(ir) -> bytes:
    """The scored item table as the ONNX file stores it (uint8 + 128 for MatMulInteger, or
    INT4 packed), transposed."""
    from exporters.weights import pack_int4

    item = ir.tables["item"]
    if item.bits == 4:
        return pack_int4(np.ascontiguousarray(item.values.T))
    return np.ascontiguousarray((item.values.T.astype(np.int16) + 128).astype(np.uint8)).tobytes()


@pytest.mark.parametrize("scheme", ["int8", "int4-item", "int4"])
def test_onnx_stores_each_table_once_and_answers_as_the_reference(tmp_path: Path,
                                                                   scheme: str) -> None:
    """Both mode files keep their tables as external data in one tables.bin, which holds the
    item table and its scales once (both modes point at the same bytes, at aligned offsets):
    the artifact is about the size of its tables, as model.tflite is. IR -> files -> runtime
    answers with the numpy reference's top-k in both modes; a tampered tables.bin is refused."""
    pytest.importorskip("onnxruntime")
    import onnx
    from onnx import TensorProto

    import runtime
    from exporters.onnx import ALIGN, DATA_FILE, EXTERNAL_MIN
    from tests.factories import assert_one_line_error, run

    ir = quantize(make_ir(num_users=60, num_items=3000, dim=16, seed=5), scheme)[0]
    a = tmp_path / "a"
    m = export_ir(ir, a, "onnx", k=K, history_capacity=8)
    assert {s["external_data"] for s in m["signatures"].values()} == {DATA_FILE}
    blob = (a / DATA_FILE).read_bytes()
    models = {f: (a / f).read_bytes() for f in ("lookup.onnx", "history.onnx")}
    item = _onnx_item_bytes(ir)
    scale = ir.tables["item"].scale.astype(np.float16).tobytes()  # exact: see the float16 test
    assert blob.count(item) == 1 and blob.count(scale) == 1
    assert not any(item in b or scale in b for b in models.values())
    ext = {}
    for f in models:
        model = onnx.load(str(a / f), load_external_data=False)
        for init in model.graph.initializer:
            if init.data_location != TensorProto.EXTERNAL:
                assert len(init.raw_data) < EXTERNAL_MIN, (f, init.name)
                continue
            e = {x.key: x.value for x in init.external_data}
            assert e["location"] == DATA_FILE and int(e["offset"]) % ALIGN == 0
            assert int(e["offset"]) + int(e["length"]) <= len(blob)
            ext[f, init.name] = e
    for name in ("item_q4_t" if scheme != "int8" else "item_u8_t", "item_scale_float16"):
        assert ext["lookup.onnx", name] == ext["history.onnx", name]
    # each table once: the files are the tables' bytes plus graphs, padding and the mask row
    total = len(blob) + sum(map(len, models.values()))
    assert total < ir.nbytes + 4 * ir.num_items + 16_384, total
    # the same IR exports the same bytes
    export_ir(ir, tmp_path / "again", "onnx", k=K, history_capacity=8)
    assert _files(a) == _files(tmp_path / "again")

    export_ir(ir, tmp_path / "n", "numpy", k=K, history_capacity=8)
    got = runtime.load(a)
    ref = runtime.load(tmp_path / "n", activations=m["quantization"]["activations"])
    rng = np.random.default_rng(0)
    for u in ref.artifact.user_ids[:60]:
        assert [i for i, _ in got.recommend(u, K)] == [i for i, _ in ref.recommend(u, K)], u
    for _ in range(40):
        hist = rng.choice(ref.artifact.item_ids, size=int(rng.integers(1, 12)), replace=False).tolist()
        assert [i for i, _ in got.recommend_from_history(hist, K)] == \
            [i for i, _ in ref.recommend_from_history(hist, K)], hist

    bad = tmp_path / "bad"
    shutil.copytree(a, bad)
    data = bytearray((bad / DATA_FILE).read_bytes())
    data[len(data) // 2] ^= 1
    (bad / DATA_FILE).write_bytes(bytes(data))
    with pytest.raises(runtime.ChecksumError, match="tables.bin does not match its SHA-256"):
        runtime.load(bad)
    if scheme == "int8":  # the CLI's one line
        assert_one_line_error(run("inspect", str(bad), ok=False),
                              "tables.bin does not match its SHA-256")


def test_tflite_refuses_mixed_int4_widths(tmp_path: Path) -> None:
    """int4 item with int8 gathered tables is int4-item; any other mix has no TFLite layout."""
    pytest.importorskip("tensorflow")
    from edgerec.errors import ExportError
    from exporters import tflite

    ir = quantize(make_ir(num_users=40, num_items=300, dim=8, seed=3), "int4")[0]
    mixed = ir.replace(tables={**ir.tables, "user": quantize(make_ir(num_users=40, num_items=300,
                                                                    dim=8, seed=3), "int8")[0].tables["user"]})
    with pytest.raises(ExportError, match="mixed widths"):
        tflite.convert(mixed, k=K, history_capacity=4, exclude_capacity=8)


def test_pack_int4_low_nibble_first() -> None:
    pytest.importorskip("tensorflow")
    from edgerec.errors import ExportError
    from exporters.tflite import pack_int4, unpack_int4

    assert pack_int4(np.array([[1, -1], [-7, 7]], np.int8)) == bytes([0xF1, 0x79])
    assert pack_int4(np.array([3, 2, 1], np.int8)) == bytes([0x23, 0x01])
    q = np.random.default_rng(0).integers(-8, 8, 99).astype(np.int8)
    np.testing.assert_array_equal(unpack_int4(pack_int4(q), q.size), q)
    with pytest.raises(ExportError, match="-8, 7"):
        pack_int4(np.array([9], np.int16))


def test_int4_item_with_an_odd_width_is_exact_in_both_kernels(tmp_path: Path) -> None:
    """Odd d: rows share bytes in the packed tensor. The builtin kernels (parity) and XNNPACK
    (the runtime's default) must both read it as the IR's integers."""
    pytest.importorskip("tensorflow")
    import runtime

    ir = quantize(make_ir(num_users=40, num_items=3000, dim=17, seed=5), "int4-item")[0]
    m = export_ir(ir, tmp_path / "a", "tflite", k=K, history_capacity=8)
    for mode in ir.modes:
        assert m["metrics"]["parity"]["modes"][mode]["exact_match_rate"] >= 0.99
    export_ir(ir, tmp_path / "n", "numpy", k=K, history_capacity=8)
    fast = runtime.load(tmp_path / "a")
    ref = runtime.load(tmp_path / "n", activations="dynamic-int8-asymmetric")
    overlap = [len({i for i, _ in fast.recommend(u, K)} & {i for i, _ in ref.recommend(u, K)}) / K
               for u in ref.artifact.user_ids]
    assert np.mean(overlap) >= 0.95  # XNNPACK rounds the user vector its own way: near, not exact


@pytest.mark.parametrize("scheme", ["int4-item", "int4"])
def test_int4_needs_the_dot_scorer(scheme: str) -> None:
    with pytest.raises(ValueError, match=f"{scheme} .*MLP"):
        quantize(make_ir().replace(scorer={"kind": "mlp", "hidden": 8}), scheme)


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_padding_slots_never_enter_the_top_k(tmp_path: Path, dtype: str) -> None:
    """With nearly every item excluded, the masked items fill the tail of the top-k: never a
    padding slot (index >= num_items), in either top-k layout."""
    pytest.importorskip("tensorflow")
    from exporters import tflite

    base = make_ir(num_users=20, num_items=3000, dim=8, seed=9)
    ir = quantize(base, "int8")[0] if dtype == "int8" else base
    assert tflite.uses_block_top_k(ir.num_items, K)
    model = tflite.convert(ir, k=K, history_capacity=4, exclude_capacity=ir.num_items)
    run = tflite.runner(model.data)
    a, b = parity.input_names("lookup")
    keep = np.array([5, 700, 1500, 2999])
    exclude = np.setdiff1d(np.arange(ir.num_items), keep).astype(np.int32)
    exclude = np.concatenate([exclude, np.full(ir.num_items - exclude.size, ir.num_items, np.int32)])
    out = run("lookup", {a: np.array([3], np.int32), b: exclude})
    assert set(out["items"][: keep.size].tolist()) == set(keep.tolist())
    assert out["items"].max() < ir.num_items and (out["scores"][keep.size:] <= -1e8).all()


def test_int4_item_names_the_input_scheme_the_builtin_kernel_uses(tmp_path: Path) -> None:
    """From 32 input channels (multiples of 8) LiteRT's optimized 4-bit kernel quantizes the
    input symmetrically: the exporter measures which scheme the model follows and the parity
    check holds it to that scheme."""
    pytest.importorskip("tensorflow")
    ir = quantize(make_ir(num_users=40, num_items=3000, dim=64, seed=5), "int4-item")[0]
    m = export_ir(ir, tmp_path / "a", "tflite", k=K, history_capacity=8)
    # LiteRT 2.3 on x86-64 and aarch64: symmetric; whatever a build does, the scheme named must
    # be the one that reproduces the kernel (the two differ by about 1e-2 relative)
    assert m["quantization"]["activations"] in ("dynamic-int8-asymmetric", "dynamic-int8-symmetric")
    for mode in ir.modes:
        r = m["metrics"]["parity"]["modes"][mode]
        assert r["exact_match_rate"] >= 0.99 and r["max_relative_score_error"] < 1e-5


@pytest.mark.parametrize("mode", ["lookup", "history"])
@pytest.mark.parametrize("scheme", ["int8", "int4"])
def test_single_mode_tflite_artifacts(tmp_path: Path, mode: str, scheme: str) -> None:
    """--mode lookup / history: the converter names a lone signature "serving_default"; the
    exporter keys it by the mode, as the manifest and the runtime expect."""
    pytest.importorskip("tensorflow")
    import runtime

    ir = quantize(make_ir(num_users=40, num_items=3000, dim=16, seed=4, modes=(mode,)), scheme)[0]
    m = export_ir(ir, tmp_path / "a", "tflite", k=K, history_capacity=8)
    assert m["modes"] == [mode] and m["signatures"][mode]["key"] == mode
    assert m["metrics"]["parity"]["modes"][mode]["exact_match_rate"] >= 0.99
    rec = runtime.load(tmp_path / "a")
    got = rec.recommend("3", K) if mode == "lookup" else rec.recommend_from_history(["3", "9"], K)
    assert len(got) == K



def test_int4_tables_with_identical_bytes_share_a_buffer(tmp_path: Path) -> None:
    """When the user and history tables hold the same integers (same shape too) the converter
    may store one buffer for both; the int4 rewrite packs it once and the check accepts it."""
    pytest.importorskip("tensorflow")
    ir = quantize(make_ir(num_users=1100, num_items=1100, dim=16, seed=6), "int4")[0]
    ir = ir.replace(tables={**ir.tables, "user": ir.tables["history_item"]})
    m = export_ir(ir, tmp_path / "a", "tflite", k=K, history_capacity=8)
    assert m["quantization"]["weights"] == "int4-per-row"
    for mode in ir.modes:
        assert m["metrics"]["parity"]["modes"][mode]["exact_match_rate"] >= 0.99
