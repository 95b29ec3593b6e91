"""History mode for users the model never saw: hold users out of the training graph entirely.

    python experiments/new_users.py --data ../shared/datasets/lastfm --ckpt runs/lastfm/ckpt --out runs/lastfm/new_users

A seeded 10% of the users with test items are removed from the training graph (their training
interactions become their on-device history), a LightGCN is trained on the rest with the
default recipe, and the held-out users are answered in history mode from their histories alone
(no per-user parameter exists for them). Compared, on the same users, with the model trained on
everyone: lookup mode, and history mode without the user's base vector. Writes ``new_users.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from edgerec.checkpoint import Checkpoint, load_checkpoint
from edgerec.data import Split, load_data
from edgerec.lowering.lightgcn import precompute
from edgerec.metrics import ranking_metrics, topk_full_ranking, users_with_items
from edgerec.scoring import history_vectors, ir_topk
from edgerec.trainer import TrainConfig, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--ckpt", required=True, type=Path, help="the model trained on every user")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--frac", type=float, default=0.1)
    ap.add_argument("--max-minutes", type=float, default=60.0,
                    help="wall-time cap of the reduced model's training (a safety net: by default it "
                         "trains with the full model's recipe and at most its number of epochs)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    data = load_data(args.data)
    truth = data.test.csr(data.num_users)
    rng = np.random.default_rng(args.seed)
    cands = users_with_items(truth)
    cands = cands[np.diff(data.train.csr(data.num_users)[0])[cands] > 0]
    held = np.sort(rng.choice(cands, int(round(args.frac * cands.size)), replace=False))
    is_held = np.zeros(data.num_users, bool)
    is_held[held] = True
    keep = ~is_held[data.train.users]
    reduced = replace(data, train=Split(data.train.users[keep], data.train.items[keep]),
                      valid=Split(data.valid.users[~is_held[data.valid.users]],
                                  data.valid.items[~is_held[data.valid.users]]))
    # Same recipe and epoch budget as the model trained on everyone, so that the comparison
    # measures the missing per-user parameters, not a shorter training.
    full = load_checkpoint(args.ckpt)
    tc = full.config["train"]
    cfg = TrainConfig(dim=int(full.config["dim"]), layers=int(full.config["layers"]),
                      epochs=int(tc["epochs_run"]), batch_size=int(tc["batch_size"]), lr=float(tc["lr"]),
                      reg=float(tc["reg"]), seed=int(tc["seed"]), eval_every=int(tc["eval_every"]),
                      patience=int(tc["patience"]), max_minutes=args.max_minutes)
    t0 = time.perf_counter()
    result = train(reduced, cfg)
    wall = time.perf_counter() - t0
    ir, _ = precompute(Checkpoint(args.out, {"model": "lightgcn", "layers": result.config.layers,
                                              "dim": result.config.dim, "data": {},
                                              "files": {"weights.safetensors": "in-memory"}},
                                  result.model, reduced))
    # The held-out users' histories are their real training interactions.
    hist = data.train.csr(data.num_users)
    vec = history_vectors(ir, held, hist, with_base=False)
    items = ir.tables["item"].dequantize()
    import torch

    top = topk_full_ranking(lambda b: torch.from_numpy(vec[np.searchsorted(held, b)] @ items.T),
                            held, hist, 20)
    new_user = ranking_metrics(top, held, truth, (20,))
    full_ir, _ = precompute(full)
    lookup = ranking_metrics(ir_topk(full_ir, held, 20, "lookup"), held, truth, (20,))
    hist_known = ranking_metrics(ir_topk(full_ir, held, 20, "history"), held, truth, (20,))
    out = {
        "data": str(args.data), "held_out_users": int(held.size), "train_minutes_cap": args.max_minutes,
        "reduced_model_train_seconds": round(wall, 1), "reduced_model_epochs": result.epochs_run,
        "full_model_epochs": int(tc["epochs_run"]),
        "held_out_users_history_mode": new_user,
        "same_users_full_model_lookup": lookup,
        "same_users_full_model_history_no_base": hist_known,
        "ratio_new_user_to_full_lookup": new_user["recall@20"] / lookup["recall@20"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "new_users.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
