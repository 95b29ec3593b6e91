"""Compare export schemes on a LastFM-sized random IR: file size, p50 latency, top-20 agreement.

    python experiments/export_schemes.py --dims 64 32 --out experiments/results/export_schemes.json

Schemes: TFLite float32 / float16 / dynamic-range int8 (the default exporter) / full-integer
int8 (representative dataset, float I/O); ONNX float32 / float16 / dynamic uint8 (the default
exporter) / ``onnxruntime.quantization.quantize_dynamic`` applied to the float32 graph.
Latency: one interpreter, one thread, ``lookup`` and ``history`` signatures, p50 over
``--runs`` calls after a warm-up. Agreement: mean |top-20 ∩ float top-20| / 20 against the
unquantized IR computed in numpy float32.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgerec.passes.quantize import quantize  # noqa: E402
from exporters import onnx as onnx_exp  # noqa: E402
from exporters import parity, tflite  # noqa: E402
from tests.factories import make_ir  # noqa: E402

K, HCAP = 20, 50


def _p50(run: Any, queries: list[tuple[str, dict[str, np.ndarray]]], mode: str, runs: int) -> float:
    qs = [f for m, f in queries if m == mode][:runs]
    for f in qs[:20]:
        run(mode, f)
    times = []
    for f in qs:
        t = time.perf_counter()
        run(mode, f)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def _full_int8(ir_float: Any, queries: list, ecap: int) -> bytes:
    import tensorflow as tf

    module = tflite._build_module(ir_float, K, HCAP, ecap)
    fns = [module.lookup.get_concrete_function(), module.history.get_concrete_function()]
    conv = tf.lite.TFLiteConverter.from_concrete_functions(fns, module)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                      tf.lite.OpsSet.TFLITE_BUILTINS]

    def rep() -> Any:
        yield from queries[:200]  # (signature key, inputs) pairs

    conv.representative_dataset = rep
    with tflite._quiet():
        return conv.convert()


def _quantize_dynamic(files: dict[str, bytes]) -> dict[str, bytes]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = {}
    with tempfile.TemporaryDirectory() as d:
        for name, data in files.items():  # the mode files with the tables.bin they read
            (Path(d) / name).write_bytes(data)
        for name in files:
            if name.endswith(".onnx"):  # written back with their tables inline
                dst = Path(d) / f"q_{name}"
                quantize_dynamic(Path(d) / name, dst, weight_type=QuantType.QInt8, per_channel=True)
                out[name] = dst.read_bytes()
    return out


def bench_dim(dim: int, runs: int, users: int) -> list[dict[str, Any]]:
    base = make_ir(num_users=users, num_items=17388, dim=dim, seed=0)
    ecap = int(np.diff(base.seen_indptr).max())
    queries = parity.sample_queries(base, n=256, history_capacity=HCAP, exclude_capacity=ecap)
    rows: list[dict[str, Any]] = []

    def record(target: str, scheme: str, size: int, run: Any) -> None:
        rep = parity.compare(base, run, queries, K, "float")
        row = {"dim": dim, "target": target, "scheme": scheme, "bytes": size}
        for mode in ("lookup", "history"):
            row[f"{mode}_p50_ms"] = round(_p50(run, queries, mode, runs), 4)
            row[f"{mode}_agreement@{K}"] = rep["modes"][mode][f"agreement@{K}"]
        rows.append(row)
        print(json.dumps(row), flush=True)

    for scheme in ("none", "float16", "int8"):
        ir = quantize(base, scheme)[0] if scheme != "none" else base
        m = tflite.convert(ir, k=K, history_capacity=HCAP, exclude_capacity=ecap)
        name = {"none": "float32", "int8": "dynamic-range int8"}.get(scheme, scheme)
        record("tflite", name, len(m.data), tflite.runner(m.data, default_delegates=True))
        if scheme == "int8":
            record("tflite", name + " (builtin kernels, no XNNPACK)", len(m.data),
                   tflite.runner(m.data))
        o = onnx_exp.build(ir, k=K, history_capacity=HCAP, exclude_capacity=ecap)
        onnx_name = {"none": "float32", "int8": "dynamic uint8 (DQL+MatMulInteger)"}.get(scheme, scheme)
        record("onnx", onnx_name, sum(map(len, o.files.values())), onnx_exp.runner(o.files))
        if scheme == "none":
            q = _quantize_dynamic(o.files)
            record("onnx", "quantize_dynamic(float32 graph)", sum(map(len, q.values())),
                   onnx_exp.runner(q))
    # full-integer int8 from the dequantized int8 IR (same weights the dynamic scheme starts from)
    deq = quantize(quantize(base, "int8")[0], "none")[0]
    try:
        data = _full_int8(deq, queries, ecap)
        record("tflite", "full-integer int8", len(data), tflite.runner(data, default_delegates=True))
    except Exception as e:  # record why it could not be built rather than crash the benchmark
        rows.append({"dim": dim, "target": "tflite", "scheme": "full-integer int8",
                     "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[64, 32])
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--users", type=int, default=1885)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    rows = [r for d in args.dims for r in bench_dim(d, args.runs, args.users)]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
