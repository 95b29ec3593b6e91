"""Does the prune's spreading rotation help low-bit formats? Valid Recall@20 per mode as a share
of the float model's, undistilled, with the SVD prune's tables left in the SVD basis and spread
by the seeded random rotation (``edgerec/passes/prune.py``):

    nice -n 10 python experiments/spread_rotation.py --ckpt CKPT --widths 56 40 32 24 --formats int4 int8

A benchmark, not a test: the figures go in docs/compression.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgerec.checkpoint import load_checkpoint
from edgerec.lowering import lower
from edgerec.passes.prune import prune
from edgerec.passes.quantize import quantize
from edgerec.schemes import scheme_of
from edgerec.scoring import evaluate_ir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", type=Path, required=True)
    ap.add_argument("--widths", type=int, nargs="+", default=[56, 40, 32, 24])
    ap.add_argument("--formats", nargs="+", default=["int4", "int8"])
    args = ap.parse_args()
    ckpt = load_checkpoint(args.ckpt)
    truth = ckpt.data.valid.csr(ckpt.data.num_users)
    raw, _ = lower(ckpt, ("lookup", "history"), "mean")
    ref = {m: evaluate_ir(raw, truth, ks=(20,), mode=m)["recall@20"] for m in raw.modes}
    print("| width | format | " + " | ".join(f"{m}, SVD basis | {m}, spread" for m in raw.modes) + " |")
    for w in args.widths:
        for fmt in args.formats:
            cells = {}
            for spread in (False, True):
                ir = quantize(prune(raw, w, "svd", spread)[0], scheme_of(fmt))[0]
                for m in raw.modes:
                    cells[m, spread] = evaluate_ir(ir, truth, ks=(20,), mode=m)["recall@20"] / ref[m]
            print(f"| {w} | {fmt} | " + " | ".join(f"{cells[m, False]:.2%} | {cells[m, True]:.2%}"
                                                 for m in raw.modes) + " |", flush=True)


if __name__ == "__main__":
    main()
