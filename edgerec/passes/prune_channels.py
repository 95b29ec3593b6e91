r"""Structured pruning of whole channels: MLP-head hidden neurons and encoder output channels.

Unlike ``prune.py`` (a rotation of the embedding space, exact only for linear programs), these
passes delete whole rows/columns of the IR's tables, so they apply to every encoder and scorer:

- :func:`prune_head` removes hidden neurons ``j`` of the MLP head (a column of ``mlp_item`` and
  ``mlp_w1_user``, an entry of ``mlp_b1`` and ``mlp_w2``). Importance is either
  ``activation``: the mean absolute contribution ``|w2_j| · E[relu(h_j)]`` over a calibration
  sample of (user, item) pairs (users' training items and as many random items), or
  ``magnitude``: ``|w2_j| · ‖W1[:, j]‖`` (both halves of the first layer; the item half is
  recovered from ``mlp_item = item · W1_item`` by least squares).
- :func:`prune_encoder_channels` removes output channels ``c`` of the encoder: a column of every
  ``d``-wide table (and a row of ``mlp_w1_user``). Importance: dot scorer ``‖U_c‖·‖I_c‖`` (the
  bound on the channel's share of the score matrix); MLP scorer ``‖U_c‖·‖W1_user[c]‖`` (the item
  half ``mlp_item`` was precomputed from all channels and stays exact). GAT attention logits were
  precomputed from all channels and are kept.
- :func:`finetune_head` recovers accuracy after pruning: BPR on the IR's training pairs (its
  ``seen`` lists) over the head's parameters only, the encoder's user/item vectors frozen, then
  ``mlp_item`` is recomputed.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from edgerec.ir import IR, PassReport, Table

IMPORTANCE = ("activation", "magnitude")
D_WIDE = ("item", "user", "history_item", "user_base", "user_default", "user_self", "history_bias")


def _width(keep: float | int, total: int, what: str) -> int:
    n = int(round(keep * total)) if isinstance(keep, float) else int(keep)
    if not 1 <= n <= total:
        raise ValueError(f"cannot keep {keep} of {total} {what}: need between 1 and {total}")
    return n


def _head(ir: IR) -> dict[str, np.ndarray]:
    if ir.scorer.get("kind") != "mlp":
        raise ValueError(f"this IR has a {ir.scorer.get('kind')!r} scorer, not an MLP head")
    return {n: ir.tables[n].dequantize() for n in ("mlp_item", "mlp_w1_user", "mlp_b1", "mlp_w2", "mlp_b2")}


def _item_weight(ir: IR, t_item: np.ndarray) -> np.ndarray:
    """``W1_item`` [d, h] such that ``item @ W1_item ≈ mlp_item`` (exact for a full-rank item table)."""
    e = ir.tables["item"].dequantize().astype(np.float64)
    return np.linalg.lstsq(e, t_item.astype(np.float64), rcond=None)[0].astype(np.float32)


def calibration_pairs(ir: IR, sample_users: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(users, items): a sample of users' training items plus as many uniformly random items."""
    rng = np.random.default_rng(seed)
    lens = np.diff(ir.seen_indptr)
    users = np.flatnonzero(lens > 0)
    if users.size > sample_users:
        users = np.sort(rng.choice(users, sample_users, replace=False))
    pu = np.concatenate([np.full(lens[u], u) for u in users]) if users.size else np.zeros(0, np.int64)
    pi = np.concatenate([ir.seen(int(u)) for u in users]) if users.size else np.zeros(0, np.int64)
    ru = rng.choice(users, pu.size) if users.size else pu
    ri = rng.integers(0, ir.num_items, pu.size)
    return np.concatenate([pu, ru]).astype(np.int64), np.concatenate([pi, ri]).astype(np.int64)


def head_importance(ir: IR, method: str = "activation", sample_users: int = 512, seed: int = 0) -> np.ndarray:
    """One score per hidden neuron of the MLP head (higher = keep)."""
    if method not in IMPORTANCE:
        raise ValueError(f"unknown importance {method!r}; choose one of {IMPORTANCE}")
    t = _head(ir)
    w2 = np.abs(t["mlp_w2"][:, 0])
    if method == "magnitude":
        w1 = np.concatenate([t["mlp_w1_user"], _item_weight(ir, t["mlp_item"])])
        return w2 * np.linalg.norm(w1, axis=0)
    users, items = calibration_pairs(ir, sample_users, seed)
    u = ir.tables["user"].dequantize() if "user" in ir.tables else None
    if u is None:
        from edgerec.scoring import history_vectors

        uv = history_vectors(ir, np.unique(users))
        u = np.zeros((ir.num_users, uv.shape[1]), np.float32)
        u[np.unique(users)] = uv
    h = np.maximum(u[users] @ t["mlp_w1_user"] + t["mlp_item"][items] + t["mlp_b1"], 0)
    return w2 * h.mean(0)


def _slice_head(ir: IR, keep_idx: np.ndarray) -> dict[str, Table]:
    t = _head(ir)
    tables = dict(ir.tables)
    tables.update(mlp_item=Table(np.ascontiguousarray(t["mlp_item"][:, keep_idx])),
                  mlp_w1_user=Table(np.ascontiguousarray(t["mlp_w1_user"][:, keep_idx])),
                  mlp_b1=Table(np.ascontiguousarray(t["mlp_b1"][:, keep_idx])),
                  mlp_w2=Table(np.ascontiguousarray(t["mlp_w2"][keep_idx])),
                  mlp_b2=Table(t["mlp_b2"]))
    return tables


def prune_head(ir: IR, keep: float | int, importance: str = "activation", sample_users: int = 512,
               seed: int = 0) -> tuple[IR, PassReport]:
    """Keep the ``keep`` most important hidden neurons of the MLP head (a fraction if float)."""
    h = ir.tables["mlp_b1"].shape[1] if "mlp_b1" in ir.tables else 0
    _head(ir)
    n = _width(keep, h, "hidden neurons")
    score = head_importance(ir, importance, sample_users, seed)
    keep_idx = np.sort(np.argsort(-score, kind="stable")[:n])
    new = ir.replace(tables=_slice_head(ir, keep_idx), scorer={**ir.scorer, "hidden": n})
    kept = float(score[keep_idx].sum() / max(score.sum(), 1e-30))
    report = PassReport(name="prune_head", params={"keep": n, "from": h, "importance": importance},
                        bytes_before=ir.nbytes, bytes_after=new.nbytes,
                        notes=[f"importance kept: {kept:.4f}"])
    return new.with_pass(report), report


def prune_encoder_channels(ir: IR, keep: float | int) -> tuple[IR, PassReport]:
    """Keep the ``keep`` most important output channels of the encoder (a fraction if float)."""
    d = ir.dim
    n = _width(keep, d, "channels")
    U = ir.tables["user"].dequantize() if "user" in ir.tables else ir.tables["history_item"].dequantize()
    if ir.scorer.get("kind") == "mlp":
        score = np.linalg.norm(U, axis=0) * np.linalg.norm(ir.tables["mlp_w1_user"].dequantize(), axis=1)
    else:
        score = np.linalg.norm(U, axis=0) * np.linalg.norm(ir.tables["item"].dequantize(), axis=0)
    cols = np.sort(np.argsort(-score, kind="stable")[:n])
    tables = dict(ir.tables)
    for name in D_WIDE:
        if name in tables:
            tables[name] = Table(np.ascontiguousarray(tables[name].dequantize()[:, cols]))
    if "mlp_w1_user" in tables:
        tables["mlp_w1_user"] = Table(np.ascontiguousarray(tables["mlp_w1_user"].dequantize()[cols]))
    new = ir.replace(tables=tables)
    report = PassReport(name="prune_channels", params={"keep": n, "from": d},
                        bytes_before=ir.nbytes, bytes_after=new.nbytes,
                        notes=[f"importance kept: {float(score[cols].sum() / max(score.sum(), 1e-30)):.4f}"])
    return new.with_pass(report), report


def finetune_head(ir: IR, epochs: int = 3, lr: float = 5e-3, batch_size: int = 4096,
                  seed: int = 0) -> tuple[IR, PassReport]:
    """BPR fine-tuning of the (pruned) MLP head on the IR's training pairs; encoder frozen."""
    if epochs < 1:
        raise ValueError("finetune epochs must be at least 1")
    t = _head(ir)
    if "user" not in ir.tables:
        raise ValueError("fine-tuning needs the lookup-mode 'user' table")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    U = torch.from_numpy(ir.tables["user"].dequantize())
    E = torch.from_numpy(ir.tables["item"].dequantize())
    params = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in
              (t["mlp_w1_user"], _item_weight(ir, t["mlp_item"]), t["mlp_b1"][0], t["mlp_w2"][:, 0])]
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
    report = PassReport(name="finetune_head", params={"epochs": epochs, "lr": lr, "batch_size": batch_size},
                        bytes_before=ir.nbytes, bytes_after=new.nbytes,
                        notes=[f"BPR loss per epoch: {[round(x, 4) for x in losses]}"])
    return new.with_pass(report), report
