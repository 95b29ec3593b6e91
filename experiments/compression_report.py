"""How small can the tables get at >= 98% of float Recall@20? Width x {int8, int4} x {plain, distilled}.

    nice -n 10 python experiments/compression_report.py --ckpt runs/gowalla/ckpt --out runs/gowalla/compression_report

For each width (SVD rank reduction, ``passes/prune.py``; the full width is the quantization-only
baseline) the report quantizes the tables to int8 and to int4 (per row, ``passes/quantize.py``)
with and without the compression-aware fine-tune (``passes/distill.py``, listwise KL to the float
model's scores; ``--qat`` adds an int4 quantization-aware variant). Each row is measured in both
serving modes: bytes of the tables the mode ships (lookup: item + user; history: item +
history_item, counting int4 as packed nibbles + float32 row scales), x smaller than the float32
full-width tables of that mode, test Recall@20, its ratio to the float model in the same mode,
and top-20 agreement with the float model. ``--groups G`` adds int4 rows with one scale per G
columns (ONNX Runtime's block layout). Results are rewritten after every row (JSON + Markdown),
so an interrupted run still leaves what it measured. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from edgerec.checkpoint import load_checkpoint
from edgerec.ir import IR, Table
from edgerec.lowering.lightgcn import precompute
from edgerec.metrics import ranking_metrics, topk_agreement, users_with_items
from edgerec.passes.distill import distill
from edgerec.passes.prune import prune
from edgerec.passes.quantize import int4_groups_roundtrip, quantize
from edgerec.scoring import ir_topk


def mode_bytes(ir: IR, mode: str, override: dict[str, int] | None = None) -> int:
    """Bytes of what the mode ships (``IR.serving_tables``); ``override`` replaces a table's."""
    return sum((override or {}).get(n, ir.tables[n].nbytes) for n in ir.serving_tables((mode,)))


def grouped_int4(ir: IR, group: int) -> tuple[IR, dict[str, int]]:
    """The IR with per-group int4 round-tripped tables (float32 in memory) and their packed bytes."""
    tables, nbytes = dict(ir.tables), {}
    for n in ("item", "user", "history_item"):
        if n in ir.tables:
            values, nbytes[n] = int4_groups_roundtrip(ir.tables[n].dequantize(), group)
            tables[n] = Table(values)
    return ir.replace(tables=tables), nbytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--widths", type=int, nargs="+", default=[48, 32, 24, 16])
    ap.add_argument("--epochs", type=int, default=3, help="distillation epochs")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--temperature", type=float, default=0.5)
    ap.add_argument("--distill-users", type=int, default=8192, help="users per distillation epoch")
    ap.add_argument("--qat", action="store_true", help="also distil with int4 fake quantization")
    ap.add_argument("--groups", type=int, nargs="*", default=[], help="int4 group sizes to add")
    ap.add_argument("--eval-users", type=int, default=0, help="test users scored (0 = all)")
    ap.add_argument("--sample", type=int, default=2000, help="users for top-20 agreement")
    args = ap.parse_args()
    ckpt = load_checkpoint(args.ckpt)
    base, _ = precompute(ckpt)
    data = ckpt.data
    truth = data.test.csr(data.num_users)
    rng = np.random.default_rng(0)
    users = users_with_items(truth)
    if 0 < args.eval_users < users.size:
        users = np.sort(rng.choice(users, args.eval_users, replace=False))
    sample = np.sort(rng.choice(base.num_users, min(args.sample, base.num_users), replace=False))
    ref_top = {m: ir_topk(base, sample, 20, m) for m in base.modes}
    rows: list[dict[str, object]] = []
    float_row: dict[str, dict[str, float]] = {}
    meta = {"checkpoint": str(args.ckpt), "data": data.source, "users_evaluated": int(users.size),
            "float_dim": base.dim, "args": {k: str(v) for k, v in vars(args).items()}, "distill": [],
            "mode_tables": {m: base.serving_tables((m,)) for m in base.modes}}

    def add(config: str, width: int, quant: str, finetune: str, ir: IR, nbytes: dict[str, int] | None = None) -> None:
        for mode in base.modes:
            top = ir_topk(ir, users, 20, mode)
            recall = ranking_metrics(top, users, truth, (20,))["recall@20"]
            row = {"config": config, "mode": mode, "dims": width, "quant": quant, "finetune": finetune,
                   "bytes": mode_bytes(ir, mode, nbytes), "recall@20": recall,
                   "agreement@20": topk_agreement(ir_topk(ir, sample, 20, mode), ref_top[mode])}
            if config == "float32":
                float_row[mode] = {"bytes": row["bytes"], "recall@20": recall}
            row["x_smaller"] = float_row[mode]["bytes"] / row["bytes"]
            row["recall_ratio"] = recall / float_row[mode]["recall@20"]
            rows.append(row)
            print(f"{config:28s} {mode:8s} {row['bytes']:>12,} {row['x_smaller']:6.1f}x "
                  f"R@20 {recall:.4f} ({row['recall_ratio']:.3f}) agr {row['agreement@20']:.3f}", flush=True)
        write(args.out, meta, rows)

    def timed_distill(pruned: IR, quant_bits: int | None = None) -> IR:
        """Distil ``pruned`` against the float model; its report and wall time go in the JSON."""
        t0 = time.perf_counter()
        out, rep = distill(pruned, base, epochs=args.epochs, lr=args.lr, temperature=args.temperature,
                           sample_users=args.distill_users, quant_bits=quant_bits, log=print)
        meta["distill"].append({"dims": pruned.dim, "seconds": round(time.perf_counter() - t0, 1),
                                **rep.to_json()})
        return out

    add("float32", base.dim, "float32", "none", base)
    add("int8", base.dim, "int8", "none", quantize(base, "int8")[0])
    add("int4", base.dim, "int4", "none", quantize(base, "int4")[0])
    for w in sorted((w for w in args.widths if w < base.dim), reverse=True):
        pruned = prune(base, w, "svd")[0]
        variants = [("svd", "none", pruned)]
        variants.append(("svd+distill", "distill", timed_distill(pruned)))
        for name, ft, ir in variants:
            for q in ("int8", "int4"):
                add(f"{name} {w} + {q}", w, q, ft, quantize(ir, q)[0])
            for g in args.groups:
                gir, nb = grouped_int4(ir, g)
                add(f"{name} {w} + int4 g{g}", w, f"int4-g{g}", ft, gir, nb)
        if args.qat:
            qat = timed_distill(pruned, quant_bits=4)
            add(f"svd+distill(qat4) {w} + int4", w, "int4", "distill-qat4", quantize(qat, "int4")[0])


def write(out: Path, meta: dict[str, object], rows: list[dict[str, object]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "compression_report.json").write_text(json.dumps({**meta, "rows": rows}, indent=2))
    lines = [f"Checkpoint `{meta['checkpoint']}` ({meta['data']}); test split, {meta['users_evaluated']} "
             "users; ratios against the float32 full-width model in the same mode.", ""]
    for mode in ("lookup", "history"):
        sel = [r for r in rows if r["mode"] == mode]
        if not sel:
            continue
        lines += [f"**{mode} mode** (tables: {' + '.join(meta['mode_tables'][mode])})", "",
                  "| config | dims | quant | fine-tune | table bytes | x smaller | Recall@20 | ratio to float | top-20 agreement |",
                  "|---|---:|---|---|---:|---:|---:|---:|---:|"]
        for r in sel:
            lines.append(f"| {r['config']} | {r['dims']} | {r['quant']} | {r['finetune']} | {r['bytes']:,} | "
                         f"{r['x_smaller']:.1f} | {r['recall@20']:.4f} | {r['recall_ratio']:.3f} | "
                         f"{r['agreement@20']:.3f} |")
        lines += ["", "Smallest at >= 98% of float Recall@20, by step:", ""]
        for ft, q in sorted({(str(r["finetune"]), str(r["quant"])) for r in sel if r["quant"] != "float32"}):
            ok = [r for r in sel if r["recall_ratio"] >= 0.98 and (r["finetune"], r["quant"]) in
                  ((ft, q), ("none", q))]
            best = max(ok, key=lambda r: (r["x_smaller"], r["recall_ratio"])) if ok else None
            lines.append(f"- fine-tune {ft}, {q}: " + (f"{best['config']}, {best['x_smaller']:.1f}x "
                                                       f"({best['recall_ratio']:.4f})" if best else "none"))
        lines.append("")
    (out / "compression_report.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
