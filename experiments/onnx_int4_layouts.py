"""How ONNX Runtime runs an int4 item table under three graph layouts (docs/compression.md).

A random per-row int4 table ``q`` [I, d] scores a float user vector ``u`` as ``q @ u``:

- ``cast``: INT4 initializer [d, I] -> Cast(float) -> MatMul(u, W) (what the ONNX exporter writes);
- ``dq``: INT4 initializer [d, I] -> DequantizeLinear(scale 1) -> MatMul(u, W) (ONNX Runtime fuses
  the pair into MatMulNBits);
- ``dq_first_input``: DequantizeLinear on MatMul's first input (W [I, d] @ u^T): not fused.

For each: the ops left after ONNX Runtime's optimizer, the max relative error of the scores
against numpy's float32 ``q @ u``, and the p50 of one call (one thread). Prints JSON lines.

    python experiments/onnx_int4_layouts.py [--items 41025] [--dim 64]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from exporters.weights import pack_int4  # noqa: E402


def _model(variant: str, q: np.ndarray) -> bytes:
    items, dim = q.shape
    t = np.ascontiguousarray(q.T)
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
    if variant == "cast":
        inits = [helper.make_tensor("w_q", TensorProto.INT4, t.shape, pack_int4(t), raw=True)]
        nodes = [helper.make_node("Cast", ["w_q"], ["w"], to=1),
                 helper.make_node("MatMul", ["u", "w"], ["s"])]
    elif variant == "dq":
        inits = [helper.make_tensor("w_q", TensorProto.INT4, t.shape, pack_int4(t), raw=True), one]
        nodes = [helper.make_node("DequantizeLinear", ["w_q", "one"], ["w"]),
                 helper.make_node("MatMul", ["u", "w"], ["s"])]
    else:
        inits = [helper.make_tensor("w_q", TensorProto.INT4, q.shape, pack_int4(q), raw=True), one,
                 numpy_helper.from_array(np.array([1, items], np.int64), "shape")]
        nodes = [helper.make_node("Transpose", ["u"], ["ut"]),
                 helper.make_node("DequantizeLinear", ["w_q", "one"], ["w"]),
                 helper.make_node("MatMul", ["w", "ut"], ["st"]),
                 helper.make_node("Reshape", ["st", "shape"], ["s"])]
    graph = helper.make_graph(nodes, variant, [helper.make_tensor_value_info("u", TensorProto.FLOAT, [1, dim])],
                              [helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, items])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=41025)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    q = rng.integers(-7, 8, size=(args.items, args.dim)).astype(np.int8)
    users = rng.standard_normal((50, 1, args.dim)).astype(np.float32)
    for variant in ("cast", "dq", "dq_first_input"):
        with tempfile.TemporaryDirectory() as tmp:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.log_severity_level = 3
            opts.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
            sess = ort.InferenceSession(_model(variant, q), opts, providers=["CPUExecutionProvider"])
            ops = [n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node]
        err = 0.0
        for u in users:
            ref = q.astype(np.float32) @ u[0]
            got = sess.run(None, {"u": u})[0][0]
            err = max(err, float(np.abs(got - ref).max() / np.abs(ref).max()))
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            sess.run(None, {"u": users[0]})
            times.append(time.perf_counter() - t0)
        print(json.dumps({"variant": variant, "items": args.items, "dim": args.dim,
                          "ops_after_optimizer": ops, "max_relative_error": float(f"{err:.3g}"),
                          "p50_us": round(float(np.median(times)) * 1e6, 1),
                          "onnxruntime": ort.__version__}), flush=True)


if __name__ == "__main__":
    main()
