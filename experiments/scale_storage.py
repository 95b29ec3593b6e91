"""Float16 against float32 per-row scales in one TFLite model: file bytes and latency.

The quantize pass rounds every scale to a float16 and the TFLite file stores them so, widened by
a DEQUANTIZE of a constant, which LiteRT runs once when it prepares the interpreter. This checks
that claim where it matters, per call: the same IR is exported twice, once as is and once with
every scale nudged by 2^-20 of itself (no longer exact in float16, so stored float32; the same
integers), and both models answer the same lookup and history requests, alternating in rounds
so that the machine's drift hits both alike. Default delegates (XNNPACK, what the runtime
uses) and the builtin kernels. Prints one JSON line per (variant, kernels).

    python experiments/scale_storage.py --ir runs/gowalla/half/ir-q0.95 [--calls 2000 --rounds 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edgerec.ir import IR, Table, load_ir  # noqa: E402
from exporters.parity import input_names  # noqa: E402
from exporters.tflite import convert  # noqa: E402


def float32_scales(ir: IR) -> IR:
    """``ir`` with every scale nudged off float16 (same integers): stored as float32."""
    return ir.replace(tables={n: Table(t.values, t.scale * np.float32(1 + 2**-20), t.bits)
                              if t.scale is not None else t for n, t in ir.tables.items()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ir", type=Path, required=True)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    ir = load_ir(args.ir)
    models = {name: convert(v, k=50, history_capacity=50, exclude_capacity=50).data
              for name, v in (("float16 scales", ir), ("float32 scales", float32_scales(ir)))}
    rng = np.random.default_rng(0)
    users = rng.integers(0, ir.num_users, args.calls).astype(np.int32)
    hists = rng.integers(0, ir.num_items, (args.calls, 50)).astype(np.int32)
    pad = np.full(50, ir.num_items, np.int32)
    for kernels, resolver in (("default delegates", OpResolverType.AUTO),
                              ("builtin kernels", OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)):
        runners = {}
        for name, data in models.items():
            interp = Interpreter(model_content=data, num_threads=1,
                                 experimental_op_resolver_type=resolver)
            runners[name] = {m: interp.get_signature_runner(m) for m in ir.modes}
        p50: dict[str, dict[str, list[float]]] = {n: {m: [] for m in ir.modes} for n in models}
        for _ in range(args.rounds):
            for name, run in runners.items():
                for mode in ir.modes:
                    a, b = input_names(mode)
                    times = []
                    for i in range(args.calls):
                        feeds = ({a: users[i:i + 1], b: pad} if mode == "lookup"
                                 else {a: hists[i], b: np.array([50], np.int32)})
                        t0 = time.perf_counter()
                        run[mode](**feeds)
                        times.append(time.perf_counter() - t0)
                    p50[name][mode].append(float(np.median(times)) * 1e3)
        for name, data in models.items():
            print(json.dumps({"ir": str(args.ir), "variant": name, "kernels": kernels,
                              "file_bytes": len(data),
                              **{f"{m}_p50_ms": round(float(np.median(v)), 4)
                                 for m, v in p50[name].items()},
                              "rounds": args.rounds, "calls": args.calls}), flush=True)


if __name__ == "__main__":
    main()
