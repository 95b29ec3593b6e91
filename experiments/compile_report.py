"""What each compiler configuration costs: bytes, test Recall/NDCG@20, agreement with float.

    python experiments/compile_report.py --ckpt runs/lastfm/ckpt --out runs/lastfm/compile_report

One row per configuration: float32; int8; float16; SVD rank reduction to 48/32/24/16 dims with
and without int8; naive column pruning at the same widths (with int8); history mode with and
without the user's own base vector. Bytes are those of the tables the mode ships (lookup: item +
user; history: item + history_item). Writes ``compile_report.json`` and ``compile_report.md``.
A benchmark, not a test: run on demand.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import psutil

from edgerec.checkpoint import load_checkpoint
from edgerec.ir import IR
from edgerec.lowering.lightgcn import precompute
from edgerec.metrics import ranking_metrics, topk_agreement, users_with_items
from edgerec.passes.prune import prune
from edgerec.passes.quantize import quantize
from edgerec.scoring import ir_topk


def table_bytes(ir: IR, mode: str, with_base: bool = False) -> int:
    """What the mode ships (``IR.serving_tables``), plus the user base vectors if asked."""
    names = ir.serving_tables((mode,)) + (["user_base"] if with_base else [])
    return sum(ir.tables[n].nbytes for n in names)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--widths", type=int, nargs="+", default=[48, 32, 24, 16])
    ap.add_argument("--sample", type=int, default=2000, help="users for top-20 agreement")
    args = ap.parse_args()
    ckpt = load_checkpoint(args.ckpt)
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    t0 = time.perf_counter()
    base, _ = precompute(ckpt)
    precompute_s = time.perf_counter() - t0
    precompute_rss = proc.memory_info().rss - rss0
    data = ckpt.data
    truth = data.test.csr(data.num_users)
    users = users_with_items(truth)
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(base.num_users, min(args.sample, base.num_users), replace=False))
    ref_top: dict[tuple[str, bool], np.ndarray] = {}

    def row(name: str, ir: IR, mode: str = "lookup", with_base: bool = False) -> dict[str, object]:
        top = ir_topk(ir, users, 20, mode, with_base)
        m = ranking_metrics(top, users, truth, (20,))
        key = (mode, with_base)
        agr_top = ir_topk(ir, sample, 20, mode, with_base)
        if key not in ref_top:
            ref_top[key] = ir_topk(base, sample, 20, mode, with_base)
        return {"config": name, "mode": mode + (" +base" if with_base else ""), "dims": ir.dim,
                "dtype": ir.tables["item"].dtype, "bytes": table_bytes(ir, mode, with_base),
                "recall@20": m["recall@20"], "ndcg@20": m["ndcg@20"],
                "agreement@20_vs_float_same_mode": topk_agreement(agr_top, ref_top[key])}

    rows = [row("float32", base), row("int8", quantize(base, "int8")[0]),
            row("float16", quantize(base, "float16")[0])]
    for w in args.widths:
        if w >= base.dim:
            continue
        svd = prune(base, w, "svd")[0]
        rows.append(row(f"svd {w}", svd))
        rows.append(row(f"svd {w} + int8", quantize(svd, "int8")[0]))
        rows.append(row(f"columns {w} + int8", quantize(prune(base, w, "columns")[0], "int8")[0]))
    rows.append(row("history, with user base (exact)", base, "history", True))
    rows.append(row("history, no per-user parameters", base, "history", False))
    rows.append(row("history, no per-user parameters, int8", quantize(base, "int8")[0], "history"))
    for w in args.widths:
        if w < base.dim:
            rows.append(row(f"history svd {w} + int8", quantize(prune(base, w, "svd")[0], "int8")[0], "history"))
    # Ratios against the float32 full-width row of the same mode (history: no per-user
    # parameters, what a device runs); recall ratio always against the float lookup model.
    f32 = {"lookup": rows[0], "history": next(r for r in rows if r["config"] == "history, no per-user parameters")}
    for r in rows:
        fam = "history" if r["mode"].startswith("history") else "lookup"
        r["x_smaller"] = f32[fam]["bytes"] / r["bytes"]
        r["recall_ratio_to_float_lookup"] = r["recall@20"] / rows[0]["recall@20"]
    out = {"checkpoint": str(args.ckpt), "data": data.source, "users_evaluated": int(users.size),
           "precompute_seconds": round(precompute_s, 2), "precompute_rss_increase_mb": round(precompute_rss / 2**20, 1),
           "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compile_report.json").write_text(json.dumps(out, indent=2))
    lines = [f"Checkpoint `{args.ckpt}` ({data.source}); test split, {users.size} users; "
             f"precompute {precompute_s:.1f} s, +{precompute_rss / 2**20:.0f} MB RSS.", "",
             "| config | mode | dims | dtype | table bytes | x smaller (same mode) | Recall@20 | NDCG@20 | Recall ratio to float lookup | top-20 agreement (same mode) |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['mode']} | {r['dims']} | {r['dtype']} | {r['bytes']:,} | "
                     f"{r['x_smaller']:.1f} | {r['recall@20']:.4f} | {r['ndcg@20']:.4f} | "
                     f"{r['recall_ratio_to_float_lookup']:.3f} | {r['agreement@20_vs_float_same_mode']:.3f} |")
    (args.out / "compile_report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
