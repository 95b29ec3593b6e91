"""How ONNX Runtime runs an int4 item table under four graph layouts (docs/compression.md).

A random per-row int4 table ``q`` [I, d] scores a float user vector ``u`` as ``q @ u``:

- ``cast_int8``: INT4 initializer [d, I] -> Cast(int8) -> MatMulInteger(DynamicQuantizeLinear(u))
  (what the ONNX exporter writes since 2026-12-05: integer arithmetic, compared with its exact
  numpy emulation ``runtime.quant.score_items(..., "dynamic-uint8-asymmetric")``);
- ``cast``: INT4 initializer [d, I] -> Cast(float) -> MatMul(u, W) (the exporter's until then);
- ``dq``: INT4 initializer [d, I] -> DequantizeLinear(scale 1) -> MatMul(u, W) (ONNX Runtime fuses
  the pair into MatMulNBits);
- ``dq_first_input``: DequantizeLinear on MatMul's first input (W [I, d] @ u^T): not fused.

For each: the ops left after ONNX Runtime's optimizer, the max relative error of the scores
against numpy's float32 ``q @ u`` (and against the emulation for ``cast_int8``), the resident
memory the session added, and the p50 of one call (one thread). Prints JSON lines.

    python experiments/onnx_int4_layouts.py [--items 41025] [--dim 64]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
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
from runtime.quant import score_items  # noqa: E402


def _resident() -> int:
    """Resident bytes of this process (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


def _model(variant: str, q: np.ndarray) -> bytes:
    items, dim = q.shape
    t = np.ascontiguousarray(q.T)
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
    if variant == "cast_int8":
        inits = [helper.make_tensor("w_q", TensorProto.INT4, t.shape, pack_int4(t), raw=True)]
        nodes = [helper.make_node("Cast", ["w_q"], ["w"], to=TensorProto.INT8),
                 helper.make_node("DynamicQuantizeLinear", ["u"], ["uq", "us", "uzp"]),
                 helper.make_node("MatMulInteger", ["uq", "w", "uzp"], ["acc"]),
                 helper.make_node("Cast", ["acc"], ["accf"], to=1),
                 helper.make_node("Mul", ["accf", "us"], ["s"])]
    elif variant == "cast":
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


def _measure(variant: str, items: int, dim: int, runs: int) -> dict:
    """One layout in this process (run in a fresh one, so that the resident memory a session
    adds is its own: ONNX Runtime's first session also maps the library)."""
    rng = np.random.default_rng(0)
    q = rng.integers(-7, 8, size=(items, dim)).astype(np.int8)
    users = rng.standard_normal((50, 1, dim)).astype(np.float32)
    ones = np.ones(items, np.float32)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    warm = ort.InferenceSession(_model(variant, q[:64]), opts, providers=["CPUExecutionProvider"])
    warm.run(None, {"u": users[0]})
    with tempfile.TemporaryDirectory() as tmp:
        opts.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        before = _resident()
        sess = ort.InferenceSession(_model(variant, q), opts, providers=["CPUExecutionProvider"])
        sess.run(None, {"u": users[0]})
        added = _resident() - before
        ops = [n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node]
    err = emulated = 0.0
    for u in users:
        ref = q.astype(np.float32) @ u[0]
        got = sess.run(None, {"u": u})[0][0]
        err = max(err, float(np.abs(got - ref).max() / np.abs(ref).max()))
        if variant == "cast_int8":
            want = score_items(u[0], q, ones, "dynamic-uint8-asymmetric")
            emulated = max(emulated, float(np.abs(got - want).max()))
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, {"u": users[0]})
        times.append(time.perf_counter() - t0)
    return {"variant": variant, "items": items, "dim": dim, "ops_after_optimizer": ops,
            "max_relative_error": float(f"{err:.3g}"),
            **({"max_error_vs_emulation": emulated} if variant == "cast_int8" else {}),
            "session_resident_mib": round(added / 2**20, 1),
            "p50_us": round(float(np.median(times)) * 1e6, 1), "onnxruntime": ort.__version__}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=41025)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    ctx = multiprocessing.get_context("spawn")
    for variant in ("cast_int8", "cast", "dq", "dq_first_input"):
        with ctx.Pool(1) as pool:
            row = pool.apply(_measure, (variant, args.items, args.dim, args.runs))
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
