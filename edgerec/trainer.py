"""The reference trainer: LightGCN with BPR, early stopping on valid NDCG@20.

Recipe for two CPU cores: every step propagates the whole graph (that is LightGCN), so the cost
of an epoch is (number of steps) x (one sparse propagation); large batches with a higher
learning rate cut the number of steps, and a pre-normalised CSR adjacency makes each step cheap.
The defaults were chosen on LastFM and Gowalla (docs/benchmarks.md has the measurements).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from edgerec.data import Interactions
from edgerec.errors import DataError, EdgerecError, TrainConfigError
from edgerec.metrics import evaluate_embeddings
from edgerec.models import build_model, lightgcn_embedding, normalized_adjacency


@dataclass
class TrainConfig:
    """Hyperparameters of one training run (stored in the checkpoint)."""

    model: str = "lightgcn"
    dim: int = 64
    layers: int = 3
    epochs: int = 400
    batch_size: int = 8192
    lr: float = 5e-3
    reg: float = 1e-4
    seed: int = 0
    eval_every: int = 5
    patience: int = 5
    max_minutes: float | None = None
    threads: int | None = None
    head: str = "dot"      # sage/gat/gcn only: "dot" or "mlp"
    hidden: int = 64       # width of the MLP head


class TrainingDiverged(EdgerecError):
    """The loss or the weights became NaN/inf: nothing trained is worth saving."""


def check_config(config: TrainConfig) -> None:
    """Refuse hyperparameters that crash (ZeroDivisionError) or silently train nothing; the CLI
    bounds them at parse time, this catches API callers."""
    floors = {"dim": 1, "layers": 0, "epochs": 1, "batch_size": 1, "eval_every": 1, "patience": 1,
              "seed": 0, "hidden": 1}
    for name, low in floors.items():
        if getattr(config, name) < low:
            raise TrainConfigError(f"{name} must be at least {low}, not {getattr(config, name)}")
    if not (math.isfinite(config.lr) and config.lr > 0):
        raise TrainConfigError(f"lr must be a positive finite number, not {config.lr}")
    if not (math.isfinite(config.reg) and config.reg >= 0):
        raise TrainConfigError(f"reg must be a non-negative finite number, not {config.reg}")
    if config.max_minutes is not None and not (config.max_minutes > 0):
        raise TrainConfigError(f"max_minutes must be positive, not {config.max_minutes}")
    if config.threads is not None and config.threads < 1:
        raise TrainConfigError(f"threads must be at least 1, not {config.threads}")
    if config.model != "lightgcn" and config.layers < 1:
        raise TrainConfigError(f"a {config.model} encoder needs at least one layer (--layers)")


def _check_finite(model: torch.nn.Module, loss: float, epoch: int, config: TrainConfig) -> None:
    """Stop a diverged run at once, so that no checkpoint of NaN/inf weights is ever written."""
    if math.isfinite(loss) and all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        return
    raise TrainingDiverged(f"training diverged at epoch {epoch} (loss {loss:.4g}): lower --lr "
                           f"(now {config.lr:g}) or --reg (now {config.reg:g}); no checkpoint written")


@dataclass
class TrainResult:
    model: torch.nn.Module
    config: TrainConfig
    best_epoch: int
    epochs_run: int
    wall_seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    valid_metrics: dict[str, float] = field(default_factory=dict)

    def checkpoint_config(self) -> dict[str, Any]:
        c = asdict(self.config)
        head, hidden = c.pop("head"), c.pop("hidden")
        out = {
            "model": c.pop("model"), "dim": c.pop("dim"), "layers": c.pop("layers"),
            "train": {**c, "best_epoch": self.best_epoch, "epochs_run": self.epochs_run,
                      "wall_seconds": round(self.wall_seconds, 2)},
            "metrics": {"valid": self.valid_metrics},
        }
        if out["model"] != "lightgcn":
            out.update(head=head, hidden=hidden, num_features=int(self.model.features.shape[1]))
        return out


class _NegativeSampler:
    """Uniform negatives, resampled while they hit one of the user's training items."""

    def __init__(self, users: np.ndarray, items: np.ndarray, num_items: int, rng: np.random.Generator):
        self.num_items = num_items
        self.keys = np.sort(users.astype(np.int64) * num_items + items)
        self.rng = rng

    def sample(self, users: np.ndarray) -> np.ndarray:
        neg = self.rng.integers(0, self.num_items, users.size)
        for _ in range(10):
            key = users * self.num_items + neg
            pos = np.searchsorted(self.keys, key)
            bad = (pos < self.keys.size) & (self.keys[np.minimum(pos, self.keys.size - 1)] == key)
            if not bad.any():
                break
            neg[bad] = self.rng.integers(0, self.num_items, int(bad.sum()))
        return neg


def user_item_embeddings(model: torch.nn.Module, adj: torch.Tensor, num_users: int) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        emb = model.get_embedding(adj)
    return emb[:num_users], emb[num_users:]


def _graph(model_kind: str, data: Interactions) -> torch.Tensor:
    """What the model propagates over: LightGCN's normalised CSR, or the GNNs' edge_index."""
    U, I = data.num_users, data.num_items
    if model_kind == "lightgcn":
        return normalized_adjacency(data.train.users, data.train.items, U, I)
    from edgerec.gnn import edge_index

    return edge_index(data.train.users, data.train.items, U)


def _evaluate(model: torch.nn.Module, graph: torch.Tensor, num_users: int, exclude: tuple[np.ndarray, np.ndarray],
              truth: tuple[np.ndarray, np.ndarray], ks: tuple[int, ...]) -> dict[str, float]:
    ue, ie = user_item_embeddings(model, graph, num_users)
    if getattr(model, "head", None) is None:
        return evaluate_embeddings(ue, ie, exclude, truth, ks=ks)
    from edgerec.gnn import evaluate_scores

    return evaluate_scores(model, ue, ie, exclude, truth, ks)


def train(data: Interactions, config: TrainConfig,
          progress: Callable[[dict[str, float]], None] | None = None,
          features: np.ndarray | None = None) -> TrainResult:
    """Train ``config.model`` on ``data.train``, early-stopping on ``data.valid`` NDCG@20.

    Deterministic for a given seed and thread count. ``progress`` is called after every epoch
    with the loss (and the valid metrics on evaluation epochs). ``features`` (``[U + I, F]``,
    sage/gat/gcn only) are appended to the learned input embeddings.
    """
    check_config(config)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    U, I = data.num_users, data.num_items
    gnn = config.model != "lightgcn"
    if features is not None and (not gnn or features.ndim != 2 or features.shape[0] != U + I):
        raise ValueError("features need a sage/gat/gcn model and one row per user and item")
    model = build_model({"model": config.model, "num_users": U, "num_items": I,
                         "dim": config.dim, "layers": config.layers, "head": config.head,
                         "hidden": config.hidden,
                         "num_features": 0 if features is None else features.shape[1]})
    if features is not None:
        model.features.copy_(torch.as_tensor(features, dtype=torch.float32))
    adj = _graph(config.model, data)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sampler = _NegativeSampler(data.train.users, data.train.items, I, rng)
    train_csr = data.train.csr(U)
    valid_csr = data.valid.csr(U)
    has_valid = len(data.valid) > 0
    tu = data.train.users.astype(np.int64)
    ti = data.train.items.astype(np.int64)
    n = tu.size
    steps = max(1, math.ceil(n / config.batch_size))
    best = (-1.0, 0, None)  # (ndcg, epoch, state)
    bad_evals = 0
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        perm = rng.permutation(n)
        total = 0.0
        for s in range(steps):
            idx = perm[s * config.batch_size:(s + 1) * config.batch_size]
            u = torch.from_numpy(tu[idx])
            p = torch.from_numpy(ti[idx] + U)
            q = torch.from_numpy(sampler.sample(tu[idx]) + U)
            emb = model.get_embedding(adj) if gnn else lightgcn_embedding(model, adj)
            x0 = model.embedding.weight
            eu, ep, eq = emb[u], emb[p], emb[q]
            if gnn:
                bpr = -F.logsigmoid(model.score_pairs(eu, ep) - model.score_pairs(eu, eq)).mean()
            else:
                bpr = -F.logsigmoid((eu * ep).sum(-1) - (eu * eq).sum(-1)).mean()
            l2 = (x0[u].pow(2).sum() + x0[p].pow(2).sum() + x0[q].pow(2).sum()) / (2 * idx.size)
            loss = bpr + config.reg * l2
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.size
            if not math.isfinite(total):
                _check_finite(model, total, epoch, config)
        _check_finite(model, total / n, epoch, config)
        row: dict[str, float] = {"epoch": epoch, "loss": total / n,
                                 "seconds": time.perf_counter() - start}
        out_of_time = (config.max_minutes is not None
                       and time.perf_counter() - start > 60 * config.max_minutes)
        if has_valid and (epoch % config.eval_every == 0 or epoch == config.epochs or out_of_time):
            model.eval()
            m = _evaluate(model, adj, U, train_csr, valid_csr, (20,))
            row.update({"valid_recall@20": m["recall@20"], "valid_ndcg@20": m["ndcg@20"]})
            if m["ndcg@20"] > best[0]:
                best = (m["ndcg@20"], epoch, {k: v.clone() for k, v in model.state_dict().items()})
                bad_evals = 0
            else:
                bad_evals += 1
        history.append(row)
        if progress:
            progress(row)
        if bad_evals >= config.patience or out_of_time:
            break
    if best[2] is not None:
        model.load_state_dict(best[2])
    best_epoch = best[1] if best[2] is not None else epoch
    model.eval()
    valid_metrics: dict[str, float] = {}
    if has_valid:
        valid_metrics = _evaluate(model, adj, U, train_csr, valid_csr, (10, 20, 40))
    return TrainResult(model, config, best_epoch, epoch, time.perf_counter() - start, history,
                       valid_metrics)


def evaluate_checkpoint_model(model: torch.nn.Module, data: Interactions, split: str,
                              ks: tuple[int, ...] = (10, 20, 40)) -> dict[str, float]:
    """Full-ranking metrics of a trained model on ``split``, the user's training items excluded
    (the protocol of the published LightGCN figures). An empty split has no metrics: refused."""
    if len(data.split(split)) == 0:
        raise DataError(f"the {split} split is empty: nothing to evaluate")
    U = data.num_users
    return _evaluate(model, _graph(getattr(model, "kind", "lightgcn"), data), U, data.train.csr(U), data.split(split).csr(U), ks)
