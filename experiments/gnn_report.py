"""GraphSAGE / GAT (dot and MLP heads) beside LightGCN, and the MLP head pruned, on one dataset.

    python experiments/gnn_report.py --data /work/shared/datasets/lastfm \
        --lightgcn /work/main/runs/lastfm/ckpt --out runs/lastfm/gnn --minutes 3

Trains each encoder under a wall-time budget (BPR, early stopping on valid NDCG@20), compiles
it (precompute_gnn), and measures test Recall/NDCG@20 in lookup mode (stored user vectors) and
history mode (a new user: the device-side last layer over the user's training items, no own
state). MLP heads are pruned to 50% and 25% of their hidden neurons (activation importance),
with and without a short BPR fine-tune of the head. Every row is also quantized to int8, checked
(Recall@20, top-20 agreement with the row's float IR), exported to TFLite and ONNX (each verified
by the exporter's parity check) and timed through ``runtime.load`` (batch 1, 1 thread, p50 of
``--calls`` requests per mode). Writes ``gnn_report.json`` and ``gnn_report.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import runtime
from edgerec.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edgerec.data import load_data
from edgerec.ir import IR
from edgerec.lowering.gnn import precompute_gnn
from edgerec.lowering.lightgcn import precompute
from edgerec.passes.finetune_head import finetune_head
from edgerec.passes.prune_head import prune_head
from edgerec.passes.quantize import quantize
from edgerec.scoring import agreement, evaluate_ir
from edgerec.trainer import TrainConfig, train
from exporters import export_ir


def measure(ir: IR, ckpt: Checkpoint) -> dict[str, float]:
    truth = ckpt.data.test.csr(ckpt.data.num_users)
    out: dict[str, float] = {}
    for mode in ir.modes:
        for k, v in evaluate_ir(ir, truth, ks=(20,), mode=mode).items():
            out[f"{mode}/{k}"] = round(v, 4)
    out["serving_kb"] = round(ir.nbytes / 1024, 1)
    return out


def p50_ms(rec: Any, mode: str, ids: list[Any], histories: list[list[Any]], calls: int) -> float:
    """Median wall time of one ``recommend`` call (k = 20) through the runtime."""
    times = []
    for i in range(calls + 20):
        t0 = time.perf_counter_ns()
        if mode == "lookup":
            rec.recommend(ids[i % len(ids)], k=20)
        else:
            rec.recommend_from_history(histories[i % len(histories)], k=20)
        times.append(time.perf_counter_ns() - t0)
    return round(float(np.median(times[20:])) / 1e6, 3)


def measure_int8(ir: IR, ckpt: Checkpoint, calls: int) -> dict[str, Any]:
    """int8 accuracy and agreement with ``ir``, then each target's file size and latency."""
    q, _ = quantize(ir, "int8")
    truth = ckpt.data.test.csr(ckpt.data.num_users)
    users = np.unique(ckpt.data.test.users)[:2000]
    out: dict[str, Any] = {}
    for mode in q.modes:
        out[f"int8 {mode}/recall@20"] = round(evaluate_ir(q, truth, ks=(20,), mode=mode)["recall@20"], 4)
        out[f"int8 {mode}/agreement@20"] = round(agreement(q, ir, users, 20, mode), 3)
    ids = [q.user_ids[u] for u in users[:200]]
    indptr, idx = q.seen_indptr, q.seen_indices
    histories = [[q.item_ids[j] for j in idx[indptr[u]:indptr[u + 1]][-50:]] for u in users[:200]]
    tmp = Path(tempfile.mkdtemp(prefix="gnn-export-"))
    try:
        for target in ("tflite", "onnx"):
            art = tmp / target
            export_ir(q, art, target, history_capacity=50)
            out[f"{target}_kb"] = round(sum(f.stat().st_size for pattern in ("*.tflite", "*.onnx", "tables.bin")
                                            for f in art.glob(pattern)) / 1024, 1)
            rec = runtime.load(art, num_threads=1)
            for mode in q.modes:
                out[f"{target} {mode} p50 ms"] = p50_ms(rec, mode, ids, histories, calls)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_data(args.data)
    rows: list[dict[str, Any]] = []
    if args.lightgcn and (Path(args.lightgcn) / "config.json").is_file():
        ck = load_checkpoint(args.lightgcn)
        ir = precompute(ck)[0]
        rows.append({"model": "lightgcn", "variant": "float", **measure(ir, ck),
                     **measure_int8(ir, ck, args.calls)})
    for kind in args.kinds:
        for head in args.heads:
            path = out / f"ckpt-{kind}-{head}"
            t0 = time.perf_counter()
            if not path.exists():
                r = train(data, TrainConfig(model=kind, head=head, dim=args.dim, layers=args.layers,
                                            epochs=400, batch_size=args.batch_size, lr=args.lr,
                                            eval_every=args.eval_every, patience=3,
                                            max_minutes=args.minutes, threads=args.threads))
                save_checkpoint(path, r.model, data, r.checkpoint_config())
            ck = load_checkpoint(path)
            train_s = ck.config["train"]["wall_seconds"]
            name = f"{kind}+{head}"
            ir, _ = precompute_gnn(ck)
            rows.append({"model": name, "variant": "float", "train_s": train_s,
                         "epochs": ck.config["train"]["epochs_run"], **measure(ir, ck),
                         **measure_int8(ir, ck, args.calls)})
            if kind == "sage":
                bias_ir, _ = precompute_gnn(ck, modes=("history",), new_user="bias")
                rows.append({"model": name, "variant": "new user = bias (x_u=0)", **measure(bias_ir, ck)})
            if head == "mlp":
                for keep in (0.5, 0.25):
                    p, _ = prune_head(ir, keep)
                    rows.append({"model": name, "variant": f"head {int(keep * 100)}%", **measure(p, ck),
                                 **measure_int8(p, ck, args.calls)})
                    f, _ = finetune_head(p, epochs=args.finetune_epochs)
                    rows.append({"model": name, "variant": f"head {int(keep * 100)}% + finetune "
                                 f"{args.finetune_epochs} ep", **measure(f, ck),
                                 **measure_int8(f, ck, args.calls)})
            print(json.dumps(rows[-1]), f"({time.perf_counter() - t0:.0f} s)", flush=True)
    report = {"data": str(args.data), "args": vars(args), "rows": rows}
    (out / "gnn_report.json").write_text(json.dumps(report, indent=2))
    cols = ["model", "variant", "lookup/recall@20", "lookup/ndcg@20", "history/recall@20",
            "history/ndcg@20", "serving_kb", "train_s", "int8 lookup/recall@20",
            "int8 lookup/agreement@20", "int8 history/recall@20", "int8 history/agreement@20",
            "tflite_kb", "tflite lookup p50 ms", "tflite history p50 ms", "onnx_kb",
            "onnx lookup p50 ms", "onnx history p50 ms"]
    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    (out / "gnn_report.md").write_text(
        f"Test split of {args.data}; command: python experiments/gnn_report.py "
        + " ".join(f"--{k.replace('_', '-')} {' '.join(v) if isinstance(v, list) else v}"
                   for k, v in vars(args).items()) + "\n\n" + "\n".join(md) + "\n")
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/work/shared/datasets/lastfm")
    ap.add_argument("--lightgcn", default="/work/main/runs/lastfm/ckpt")
    ap.add_argument("--out", default="runs/lastfm/gnn")
    ap.add_argument("--kinds", nargs="+", default=["sage", "gat"])
    ap.add_argument("--heads", nargs="+", default=["dot", "mlp"])
    ap.add_argument("--minutes", type=float, default=3.0, help="training budget per model")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8192)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--finetune-epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--calls", type=int, default=300, help="timed runtime calls per mode")
    run(ap.parse_args())


if __name__ == "__main__":
    main()
