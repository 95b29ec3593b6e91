"""int4-pq: the item table in int4, the gathered tables (user, history rows) in product codes.

The codes are calibrated and encoded by ``edgerec.passes.codebook``, decoded the same way by the
IR, the numpy runtime and both graphs (``runtime.quant.pq_decode``), and every file answers with
the numpy reference's top-k."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from edgerec.errors import IRError
from edgerec.ir import Table, load_ir, save_ir
from edgerec.passes.codebook import calibrate, encode, quantize_rows_pq
from edgerec.passes.quantize import PQ_CODE_BITS, pq_subspaces, quantize
from exporters import export_ir
from runtime.quant import CENTROIDS, pq_columns, pq_decode, pq_sizes
from tests.factories import make_ir

K = 20


def test_subspaces_cover_the_row_widest_first() -> None:
    assert pq_sizes(64, 24) == [3] * 16 + [2] * 8
    assert pq_sizes(17, 6) == [3] * 5 + [2]
    # the decoded [M * S] row holds each subspace's S columns; narrower ones skip their padding
    assert pq_columns(7, 3, 3).tolist() == [0, 1, 2, 3, 4, 6, 7]
    # one byte per 8 / 3 values
    assert pq_subspaces("user", 64) == 24 and pq_subspaces("history_item", 56) == 21
    assert pq_subspaces("user", 2) == 1 and set(PQ_CODE_BITS) == {"user", "history_item"}


def test_decoding_copies_centroids_then_scales() -> None:
    """A row is its centroids, subspace by subspace (padding columns dropped), times its scale."""
    rng = np.random.default_rng(0)
    book = np.zeros((3, CENTROIDS, 3), np.float32)
    for m, size in enumerate(pq_sizes(8, 3)):
        book[m, :, :size] = rng.normal(size=(CENTROIDS, size)).astype(np.float16)
    codes = rng.integers(0, CENTROIDS, size=(5, 3)).astype(np.uint8)
    want = np.stack([np.concatenate([book[0, c[0], :3], book[1, c[1], :3], book[2, c[2], :2]])
                     for c in codes])
    assert np.array_equal(pq_decode(codes, book, 8), want)
    scale = np.float32([1, 2, 0.5, 0, 3])
    t = Table(codes, scale, codebook=book, width=8)
    assert t.shape == (5, 8) and t.dtype == "uint8"
    assert np.array_equal(t.dequantize(), want * scale[:, None])
    assert np.array_equal(t.take(np.array([3, 1])), t.dequantize()[[3, 1]])
    assert np.array_equal(np.concatenate([b for _, _, b in t.blocks(2)]), t.dequantize())
    assert t.nbytes == 5 * 3 + 5 * 2 + book.size * 2  # codes, float16 scales, float16 codebook


def test_codes_are_deterministic_and_close() -> None:
    """Calibration is seeded and BLAS-free: the same table gives the same codes; a row keeps
    its length (the least-squares scale) and most of its direction; scales and centroids are
    exact in float16."""
    rng = np.random.default_rng(1)
    v = (rng.normal(size=(3000, 16)) * rng.uniform(0.2, 3, size=(3000, 1))).astype(np.float32)
    a, b = quantize_rows_pq(Table(v), 6), quantize_rows_pq(Table(v), 6)
    assert np.array_equal(a.values, b.values) and np.array_equal(a.codebook, b.codebook)
    d = a.dequantize()
    cos = (d * v).sum(1) / np.linalg.norm(d, axis=1) / np.linalg.norm(v, axis=1)
    assert np.median(cos) > 0.9
    ratio = np.linalg.norm(d, axis=1) / np.linalg.norm(v, axis=1)
    assert np.all(ratio < 1.01) and np.median(ratio) > 0.85  # least squares shrinks, never grows
    assert np.array_equal(a.codebook.astype(np.float16).astype(np.float32), a.codebook)
    assert np.array_equal(a.scale.astype(np.float16).astype(np.float32), a.scale)
    # more codes a row, less error
    err = [np.linalg.norm(quantize_rows_pq(Table(v), m).dequantize() - v) for m in (4, 8, 16)]
    assert err[0] > err[1] > err[2]
    # fewer distinct rows than centroids: the rows themselves, exactly
    few = Table(v[:40])
    t = encode(few, calibrate(few, 4))
    assert np.allclose(t.dequantize(), few.values, rtol=2e-3, atol=2e-3)


def test_int4_pq_ir_round_trips_and_is_validated(tmp_path: Path) -> None:
    ir = quantize(make_ir(num_users=200, num_items=900, dim=16, seed=2), "int4-pq")[0]
    assert ir.tables["item"].bits == 4 and ir.tables["item"].codebook is None
    for name in ("user", "history_item"):
        t = ir.tables[name]
        assert t.codebook.shape == (pq_subspaces(name, 16), CENTROIDS, math.ceil(16 / t.values.shape[1]))
    save_ir(ir, tmp_path / "ir")
    back = load_ir(tmp_path / "ir")
    for name, t in ir.tables.items():
        assert np.array_equal(back.tables[name].dequantize(), t.dequantize()), name
    meta = json.loads((tmp_path / "ir" / "ir.json").read_text())
    assert meta["tables"]["user"]["shape"] == [200, 16]
    # a codebook that does not fit the codes, or a coded scored table, is refused
    user = ir.tables["user"]
    with pytest.raises(IRError, match="codebook"):
        ir.replace(tables={**ir.tables, "user": Table(user.values, user.scale, codebook=user.codebook[:-1],
                                                      width=16)}).validate()
    with pytest.raises(IRError, match="only the gathered tables"):
        ir.replace(tables={**ir.tables, "item": quantize_rows_pq(ir.tables["item"], 4)}).validate()
    # a forged codebook file is refused by its hash
    np.save(tmp_path / "ir" / "user.codebook.npy", user.codebook * 2)
    with pytest.raises(IRError, match="SHA-256"):
        load_ir(tmp_path / "ir")


@pytest.mark.parametrize("dim", [16, 17])
def test_int4_pq_files_answer_as_the_numpy_reference(tmp_path: Path, dim: int) -> None:
    """IR -> TFLite / ONNX / numpy files -> runtime: every file passed the exact parity check
    before it was written, and the runtime's answers equal the numpy reference's (run with each
    file's activation scheme; TFLite without the XNNPACK delegate) in both modes. The files store the codes, float16 scales and
    float16 codebooks: about the IR's bytes."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("onnxruntime")
    import runtime
    from exporters.weights import INT4_PQ

    ir = quantize(make_ir(num_users=700, num_items=3000, dim=dim, seed=5), "int4-pq")[0]
    export_ir(ir, tmp_path / "numpy", "numpy", k=K, history_capacity=8)
    rng = np.random.default_rng(0)
    histories = [rng.choice(ir.item_ids, size=int(rng.integers(1, 9)), replace=False).tolist()
                 for _ in range(30)]
    for target in ("tflite", "onnx"):
        root = tmp_path / target
        m = export_ir(ir, root, target, k=K, history_capacity=8)
        assert m["quantization"]["weights"] == INT4_PQ
        for mode in ir.modes:
            report = m["metrics"]["parity"]["modes"][mode]
            assert report["exact_match_rate"] == 1.0 and report["max_score_error"] == 0.0, (target, mode)
        size = sum((root / f).stat().st_size for f in runtime.artifact.model_files(m))
        assert ir.nbytes < size < ir.nbytes + 4 * ir.num_items + 16_384, (target, size, ir.nbytes)
        got = runtime.load(root, exact=True)  # TFLite: builtin kernels, the manifest's arithmetic
        ref = runtime.load(tmp_path / "numpy", activations=m["quantization"]["activations"])
        for u in ref.artifact.user_ids[:50]:
            assert [i for i, _ in got.recommend(u, K)] == [i for i, _ in ref.recommend(u, K)], (target, u)
        for hist in histories:
            assert [i for i, _ in got.recommend_from_history(hist, K)] == \
                [i for i, _ in ref.recommend_from_history(hist, K)], (target, hist)
    # the numpy runtime decodes what the IR holds
    ref = runtime.load(tmp_path / "numpy")
    u = 3
    scores = ir.tables["item"].dequantize() @ ir.tables["user"].take(np.array([u]))[0]
    scores[ir.seen(u)] = -np.inf
    want = [ir.item_ids[i] for i in np.argsort(-scores, kind="stable")[:K]]
    assert [i for i, _ in ref.recommend(ir.user_ids[u], K)] == want


@pytest.mark.parametrize("kind", ["sage", "gat"])
def test_int4_pq_serves_gnn_history_programs(tmp_path: Path, kind: str) -> None:
    """A sage / gat encoder's new-user program reads product-coded history rows too (decoded per
    row, then weighted): every file answers as the numpy reference, exactly."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("onnxruntime")
    from tests.test_exporters_gnn import make_gnn_ir

    ir = quantize(make_gnn_ir(kind, "dot"), "int4-pq")[0]
    assert ir.tables["history_item"].codebook is not None
    for target in ("tflite", "onnx", "numpy"):
        m = export_ir(ir, tmp_path / target, target, k=K, history_capacity=8)
        for mode, r in m["metrics"]["parity"]["modes"].items():
            assert r["exact_match_rate"] == 1.0, (target, mode)


def test_tflite_gathers_float16_codebooks_directly(tmp_path: Path) -> None:
    """The codebooks are stored in float16 even where a centroid coordinate is a float16
    subnormal (calibration rounds to float16, subnormals included), and the TFLite file reads
    them with one GATHER by the [n, M] code indices (rewritten from the converter's GATHER_ND):
    the only GATHER_ND left per signature reads the row scales."""
    pytest.importorskip("tensorflow")
    from ai_edge_litert import schema_py_generated as schema

    from exporters.tflite.flatbuffer import list_ops

    ir = quantize(make_ir(num_users=700, num_items=3000, dim=16, seed=5), "int4-pq")[0]
    user = ir.tables["user"]
    book = user.codebook.copy()
    book[0, 0, 0] = np.float32(np.float16(3e-6))  # a float16 subnormal, exact in float32
    ir = ir.replace(tables={**ir.tables, "user": Table(user.values, user.scale, codebook=book, width=16)})
    assert ir.tables["user"].nbytes == user.nbytes  # still 2 bytes a coordinate
    m = export_ir(ir, tmp_path / "t", "tflite", k=K, history_capacity=8)
    assert all(r["exact_match_rate"] == 1.0 for r in m["metrics"]["parity"]["modes"].values())
    data = (tmp_path / "t" / "model.tflite").read_bytes()
    for mode, ops in list_ops(data).items():
        assert ops.count("GATHER_ND") == 1, (mode, ops)
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    stored = {bytes(np.asarray(b.data, np.uint8)) for b in model.buffers if b.data is not None}
    assert book.reshape(-1, book.shape[2]).astype(np.float16).tobytes() in stored
    assert book.reshape(-1, book.shape[2]).tobytes() not in stored
