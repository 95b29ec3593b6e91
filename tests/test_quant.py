"""runtime.quant reproduces the interpreters' dynamic activation quantization exactly."""

from __future__ import annotations

import numpy as np
import pytest

from edgerec.passes.quantize import quantize
from runtime import quant
from tests.factories import make_ir


def test_round_half_away_matches_c_round() -> None:
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49999997, -0.49999997, 3.2], np.float32)
    assert quant._round_half_away(x).tolist() == [-3, -2, -1, 1, 2, 3, 0, 0, 3]


def test_zero_and_empty_vectors_quantize_to_zero() -> None:
    for fn in (quant.quantize_int8_symmetric, quant.quantize_int8_asymmetric,
               quant.quantize_uint8_asymmetric):
        q = fn(np.zeros(8, np.float32))[0]
        assert not q.any()


def test_asymmetric_int8_covers_range_with_zero_exact() -> None:
    x = np.array([-1.0, 0.0, 0.25, 3.0], np.float32)
    q, s, zp = quant.quantize_int8_asymmetric(x)
    assert q.dtype == np.int8 and q.min() == -128 and q.max() == 127
    assert q[1] == zp  # zero is exactly representable
    assert np.allclose((q.astype(np.float32) - zp) * s, x, atol=s)


def test_unknown_activation_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown activation"):
        quant.score_items(np.zeros(4, np.float32), np.zeros((3, 4), np.int8),
                          np.ones(3, np.float32), "int4")


@pytest.fixture(scope="module")
def int8_ir():
    ir, _ = quantize(make_ir(num_users=300, num_items=1200, dim=16, seed=7), "int8")
    return ir


def _full_scores(run, mode: str, feeds: dict, n: int) -> np.ndarray:
    out = run(mode, feeds)
    got = np.empty(n, np.float32)
    got[out["items"]] = out["scores"]
    return got


def test_tflite_hybrid_fully_connected_is_emulated_bit_for_bit(int8_ir) -> None:
    pytest.importorskip("tensorflow")
    from exporters import parity, tflite

    n = int8_ir.num_items
    model = tflite.convert(int8_ir, k=n, history_capacity=4, exclude_capacity=4)
    assert model.activations == "dynamic-int8-asymmetric"
    run = tflite.runner(model.data)
    item, user, hist = (int8_ir.tables[t] for t in ("item", "user", "history_item"))
    vectors = [(("lookup", {"user": np.array([u], np.int32), "exclude": np.full(4, n, np.int32)}),
                user.dequantize()[u]) for u in range(int8_ir.num_users)]
    h_name = parity.input_names("history")[0]
    vectors += [(("history", {h_name: np.array([i, n, n, n], np.int32),
                              "length": np.array([1], np.int32)}), hist.dequantize()[i])
                for i in range(0, n, 6)]
    exact = topk_same = 0
    for (mode, feeds), u in vectors:
        got = _full_scores(run, mode, feeds, n)
        want = quant.score_items(u, item.values, item.scale, model.activations)
        if mode == "history":  # the history item itself is masked in-graph
            i = int(feeds[h_name][0])
            got[i] = want[i] = -np.inf
        exact += np.array_equal(got, want)
        topk_same += np.array_equal(np.argsort(-got, kind="stable")[:20],
                                    np.argsort(-want, kind="stable")[:20])
    assert exact == len(vectors), f"{exact}/{len(vectors)} bit-exact"
    assert topk_same == len(vectors)
    # the symmetric scheme is measurably different: the test can tell the schemes apart
    u = user.dequantize()[0]
    assert not np.array_equal(quant.score_items(u, item.values, item.scale, "dynamic-int8-symmetric"),
                              quant.score_items(u, item.values, item.scale, "dynamic-int8-asymmetric"))


def test_onnx_dynamic_quantize_matmulinteger_is_emulated_bit_for_bit(int8_ir) -> None:
    pytest.importorskip("onnxruntime")
    from exporters import onnx as onnx_exp

    n = int8_ir.num_items
    models = onnx_exp.build(int8_ir, k=n, history_capacity=4, exclude_capacity=4)
    run = onnx_exp.runner(models.files)
    item, user = int8_ir.tables["item"], int8_ir.tables["user"]
    for u in range(int8_ir.num_users):
        got = _full_scores(run, "lookup", {"user": np.array([u], np.int32),
                                           "exclude": np.full(4, n, np.int32)}, n)
        want = quant.score_items(user.dequantize()[u], item.values, item.scale,
                                 "dynamic-uint8-asymmetric")
        assert np.array_equal(got, want), f"user {u}"


def test_dynamic_quantize_linear_matches_onnxruntime() -> None:
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"])], "dql",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [32])],
        [helper.make_tensor_value_info("q", TensorProto.UINT8, [32]),
         helper.make_tensor_value_info("s", TensorProto.FLOAT, []),
         helper.make_tensor_value_info("z", TensorProto.UINT8, [])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for i in range(300):
        x = (rng.standard_normal(32) * rng.uniform(0.01, 10) + (i % 3 - 1)).astype(np.float32)
        q, s, z = sess.run(None, {"x": x})
        eq, es, ez = quant.quantize_uint8_asymmetric(x)
        assert np.array_equal(q, eq) and s == es and z == ez
