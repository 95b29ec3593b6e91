"""Does the guard's promise hold on users it has not seen, and what does the margin cost?

    nice -n 10 python experiments/guard_promises.py --ckpt CKPT [--margins 0 0.95] [--target all] [--out DIR]

For each ``--recall-margin`` (0: the guard holds the measured drop; q: it holds the q-quantile of
a paired bootstrap over the validation users) the checkpoint is compiled with the default
options (``--quantize auto --dims auto``, both modes, ranked by ``--target``'s file bytes as
``edgerec export --target`` ranks them) and the report gives, per mode: the width and format
the guard chose, the serving tables' bytes, the valid drop (point and bound, as the guard saw
them) and the test drop (every test user, float model vs compiled model, same protocol). It also
reports the float model's history/lookup Recall@20 ratio on both splits and whether the compile
trained the history tables toward lookup (``passes/distill_history.py``). A benchmark, not a
test: the figures go in docs/benchmarks.md. With ``--out``, each run's IR is saved beside the
report (``ir-q<margin>``), and with ``--export`` each run is exported as measured
(``art-q<margin>``, ``--target``, with the evaluation sample) for ``edgerec bench``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import edgerec
from edgerec.checkpoint import load_checkpoint
from edgerec.lowering import lower
from edgerec.scoring import evaluate_ir


def _recall(ir: edgerec.IR, truth: tuple[np.ndarray, np.ndarray], mode: str) -> float:
    return evaluate_ir(ir, truth, ks=(20,), mode=mode)["recall@20"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", type=Path, required=True)
    ap.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.95])
    ap.add_argument("--target", default="tflite", choices=["tflite", "onnx", "all"],
                    help="the file the search ranks by (as edgerec export --target)")
    ap.add_argument("--out", type=Path, default=None, help="write report.json and the IRs here")
    ap.add_argument("--export", action="store_true", help="also export each run (needs --out)")
    args = ap.parse_args()
    ckpt = load_checkpoint(args.ckpt)
    data = ckpt.data
    test, valid = data.test.csr(data.num_users), data.valid.csr(data.num_users)
    raw, _ = lower(ckpt, ("lookup", "history"), "mean")
    train_len = np.bincount(data.train.users, minlength=data.num_users)
    report: dict = {"checkpoint": str(args.ckpt), "data": data.source,
                    "median_train_items_per_user": float(np.median(train_len)),
                    "float": {s: {m: _recall(raw, t, m) for m in ("lookup", "history")}
                              for s, t in (("valid", valid), ("test", test))}, "runs": []}
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}), flush=True)
    for q in args.margins:
        t0 = time.time()
        compiled = edgerec.compile(ckpt, recall_margin=q, size_target=args.target)
        ir = compiled.ir
        fixed = any(r.name == "distill_history" and "input kept" not in " ".join(r.notes)
                    for r in compiled.reports)
        reference = ir.metrics["float"]
        # the guard's reference: the float model, with trained history tables if the compile fixed them
        ref_ir = compiled.reference
        scheme = [r.params for r in compiled.reports if r.name == "quantize"]
        row: dict = {"recall_margin": q, "dims": ir.dim, "format": scheme[-1] if scheme else "float32",
                     "bytes": ir.nbytes, "history_fixed": fixed, "seconds": round(time.time() - t0, 1),
                     "modes": {}}
        for mode in ("lookup", "history"):
            got = ir.metrics["compiled"]
            ref_test = _recall(ref_ir, test, mode)
            test_got = _recall(ir, test, mode)
            row["modes"][mode] = {
                "valid_recall": got[f"{mode}/recall@20"],
                "valid_drop": 1 - got[f"{mode}/recall@20"] / reference[f"{mode}/recall@20"],
                "valid_drop_bound": got.get(f"{mode}/recall@20_drop_bound"),
                "test_recall": test_got, "float_test_recall": ref_test,
                "test_drop": 1 - test_got / ref_test}
        row["history_over_lookup_test"] = (row["modes"]["history"]["test_recall"]
                                           / row["modes"]["lookup"]["test_recall"])
        report["runs"].append(row)
        if args.out:
            compiled.save(args.out / f"ir-q{q:g}", overwrite=True)
            if args.export:
                edgerec.export(compiled, args.out / f"art-q{q:g}", target=args.target, with_eval=True,
                               overwrite=True)
        print(json.dumps(row), flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
