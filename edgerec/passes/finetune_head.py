"""Recover accuracy after pruning the MLP head: BPR on the IR's training pairs (its ``seen``
lists) over the head's parameters only, the encoder's user/item vectors frozen; ``mlp_item`` is
then recomputed."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from edgerec.ir import IR, PassReport, Table
from edgerec.passes.base import Pass, logged
from edgerec.passes.mlp_head import head_tables, item_weight


def finetune_head(ir: IR, epochs: int = 3, lr: float = 5e-3, batch_size: int = 4096,
                  seed: int = 0) -> tuple[IR, PassReport]:
    """BPR fine-tuning of the (pruned) MLP head on the IR's training pairs; encoder frozen."""
    if epochs < 1:
        raise ValueError("finetune epochs must be at least 1")
    t = head_tables(ir)
    if "user" not in ir.tables:
        raise ValueError("fine-tuning needs the lookup-mode 'user' table")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    U = torch.from_numpy(ir.tables["user"].dequantize())
    E = torch.from_numpy(ir.tables["item"].dequantize())
    params = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in
              (t["mlp_w1_user"], item_weight(ir, t["mlp_item"]), t["mlp_b1"][0], t["mlp_w2"][:, 0])]
    w1u, w1i, b1, w2 = params
    opt = torch.optim.Adam(params, lr=lr)
    users = np.repeat(np.arange(ir.num_users), np.diff(ir.seen_indptr))
    items = ir.seen_indices.astype(np.int64)
    keys = np.sort(users * ir.num_items + items)

    def score(u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return torch.relu(U[u] @ w1u + E[i] @ w1i + b1) @ w2

    losses = []
    for _ in range(epochs):
        perm = rng.permutation(users.size)
        total = 0.0
        for s in range(0, users.size, batch_size):
            idx = perm[s:s + batch_size]
            neg = rng.integers(0, ir.num_items, idx.size)
            hit = np.isin(users[idx] * ir.num_items + neg, keys)
            neg[hit] = rng.integers(0, ir.num_items, int(hit.sum()))  # one resample is enough here
            u, p, q = (torch.from_numpy(a) for a in (users[idx], items[idx], neg))
            loss = -F.logsigmoid(score(u, p) - score(u, q)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.size
        losses.append(total / max(users.size, 1))
    with torch.no_grad():
        tables = dict(ir.tables)
        tables.update(mlp_item=Table(np.ascontiguousarray((E @ w1i).numpy(), np.float32)),
                      mlp_w1_user=Table(w1u.detach().numpy().copy()),
                      mlp_b1=Table(b1.detach().numpy()[None].copy()),
                      mlp_w2=Table(w2.detach().numpy()[:, None].copy()),
                      mlp_b2=Table(t["mlp_b2"]))
    new = ir.replace(tables=tables)
    return logged(ir, new, "finetune_head", {"epochs": epochs, "lr": lr, "batch_size": batch_size},
                  [f"BPR loss per epoch: {[round(x, 4) for x in losses]}"])


class FinetuneHead(Pass):
    """BPR fine-tuning of the MLP head for ``epochs`` epochs (see :func:`finetune_head`).

    Args:
        epochs (int): passes over the training pairs.
    """

    name = "finetune_head"

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def __call__(self, ir: IR) -> tuple[IR, PassReport]:
        return finetune_head(ir, self.epochs)
