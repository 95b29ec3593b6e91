"""Exported artifacts measured in their own interpreters: size, test Recall@20, agreement, ops.

    python experiments/export_report.py --ckpt runs/lastfm/ckpt --out runs/lastfm/export_report

Exports TFLite and ONNX in float32 (full width) and int8 (the default: ``--dims auto``, and
full width), loads each with the on-device runtime, and answers every test user in both modes:
lookup (the user's id; training items excluded) and history (the user's most recent
``--history-capacity`` training items; those items excluded). Writes ``export_report.json`` and
``export_report.md``. A benchmark, not a test: run on demand.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import runtime
from edgerec.api import export
from edgerec.checkpoint import load_checkpoint
from edgerec.metrics import ranking_metrics, topk_agreement, users_with_items
from runtime.artifact import model_files

CONFIGS = [("float32", "full"), ("int8", "full"), ("int8", "auto")]


def answer_all(rec: runtime.Recommender, users: np.ndarray, histories: list[list[str]],
               user_ids: list[str], item_pos: dict[str, int], k: int) -> dict[str, np.ndarray]:
    out = {}
    modes = rec.artifact.manifest["modes"]
    if "lookup" in modes:
        out["lookup"] = np.array([[item_pos[i] for i, _ in rec.recommend(user_ids[u], k)] for u in users])
    if "history" in modes:
        out["history"] = np.array([[item_pos[i] for i, _ in rec.recommend_from_history(h, k)]
                                   for h in histories])
    return out


def model_bytes(root: Path) -> int:
    m = json.loads((root / "manifest.json").read_text())
    return sum((root / f).stat().st_size for f in model_files(m))


def ops(root: Path) -> dict[str, list[str]]:
    m = json.loads((root / "manifest.json").read_text())
    if m["target"] == "tflite":
        from exporters.tflite import list_ops

        return list_ops((root / "model.tflite").read_bytes())
    import onnx

    return {mode: sorted({n.op_type for n in onnx.load(str(root / s["file"])).graph.node})
            for mode, s in m["signatures"].items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--history-capacity", type=int, default=50)
    ap.add_argument("--max-users", type=int, default=0, help="evaluate a seeded sample (0: all test users)")
    args = ap.parse_args()
    ckpt = load_checkpoint(args.ckpt)
    data = ckpt.data
    truth = data.test.csr(data.num_users)
    users = users_with_items(truth)
    if args.max_users and users.size > args.max_users:
        users = np.sort(np.random.default_rng(0).choice(users, args.max_users, replace=False))
    tr_ptr, tr_idx = data.train.csr(data.num_users)
    histories = [[data.item_ids[i] for i in tr_idx[tr_ptr[u]:tr_ptr[u + 1]][-args.history_capacity:]]
                 for u in users]
    keep = np.array([len(h) > 0 for h in histories])
    users, histories = users[keep], [h for h, k in zip(histories, keep, strict=True) if k]
    args.out.mkdir(parents=True, exist_ok=True)
    item_pos = {i: n for n, i in enumerate(data.item_ids)}
    rows = []
    ref: dict[tuple[str, str], np.ndarray] = {}
    ref_bytes: dict[str, int] = {}
    for quant, dims in CONFIGS:
        name = f"{quant}-{dims}"
        art = args.out / name
        t0 = time.perf_counter()
        export(args.ckpt, art, target="all", quantize=quant, dims=None if dims == "full" else dims,
               history_capacity=args.history_capacity, overwrite=True,
               force=quant == "int8" and dims == "full")
        export_s = time.perf_counter() - t0
        for target in ("tflite", "onnx"):
            root = art / target
            rec = runtime.load(root, num_threads=1)
            top = answer_all(rec, users, histories, data.user_ids, item_pos, 20)
            size = model_bytes(root)
            if name == "float32-full":
                ref_bytes[target] = size
            manifest = json.loads((root / "manifest.json").read_text())
            for mode, t in top.items():
                m = ranking_metrics(t, users, truth, (20,))
                if name == "float32-full":
                    ref[(target, mode)] = t
                rows.append({
                    "config": name, "target": target, "mode": mode, "dims": manifest["dim"],
                    "model_bytes": size, "x_smaller_than_float32": ref_bytes[target] / size,
                    "recall@20": m["recall@20"], "ndcg@20": m["ndcg@20"],
                    "top20_agreement_vs_float32": topk_agreement(t, ref[(target, mode)]),
                    "export_seconds": round(export_s, 1), "ops": ops(root).get(mode),
                })
            for r in rows:
                if r["target"] == target and r["config"] == name:
                    r["recall_ratio_to_float32"] = r["recall@20"] / next(
                        x["recall@20"] for x in rows if x["config"] == "float32-full"
                        and x["target"] == target and x["mode"] == r["mode"])
    (args.out / "export_report.json").write_text(json.dumps({"checkpoint": str(args.ckpt),
                                                             "users": int(users.size), "rows": rows}, indent=2))
    lines = [f"Checkpoint `{args.ckpt}` ({data.source}), {users.size} test users, answered by the runtime "
             "(LiteRT / onnxruntime, 1 thread).", "",
             "| config | target | mode | dims | model bytes | x smaller | Recall@20 | ratio to float32 | top-20 agreement |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['target']} | {r['mode']} | {r['dims']} | {r['model_bytes']:,} | "
                     f"{r['x_smaller_than_float32']:.1f} | {r['recall@20']:.4f} | {r['recall_ratio_to_float32']:.3f} | "
                     f"{r['top20_agreement_vs_float32']:.3f} |")
    lines += ["", "Ops (int8, auto):"]
    for r in rows:
        if r["config"] == "int8-auto":
            lines.append(f"- {r['target']} {r['mode']}: {', '.join(r['ops'] or [])}")
    (args.out / "export_report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
