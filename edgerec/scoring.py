"""Score an IR in numpy/torch exactly as a device would, for the passes' metrics and the guard.

A user vector comes from the ``user`` table (lookup mode) or is folded from the user's history
over ``history_item`` (history mode: ``n^-1/2 Σ H_i``, plus ``user_base`` when the user is known
and ``with_base`` is set). Scores are ``user · item`` over the (dequantized) item table.

The nonlinear encoders' history programs (``ir.history["kind"]`` sage / gcn / gat) and the MLP
scorer are implemented here too, as the numpy reference of what an exporter must compute
(docs/architecture.md, "GNN encoders and the MLP head").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from edgerec.ir import IR
from edgerec.metrics import (
    csr_rows,
    ranking_metrics,
    topk_agreement,
    topk_full_ranking,
    users_with_items,
)

# A catalogue larger than BLOCK_ITEMS (far above lastfm's and gowalla's, which keep the one-shot
# ranking) is ranked in item blocks of at most SCORE_ELEMENTS scores (2^24 float32: 64 MB).
BLOCK_ITEMS = 1 << 18
SCORE_ELEMENTS = 1 << 24


def history_vectors(ir: IR, users: np.ndarray, histories: tuple[np.ndarray, np.ndarray] | None = None,
                    with_base: bool = False) -> np.ndarray:
    """History-mode user vectors for ``users`` from their histories (default: their seen items)."""
    indptr, indices = histories if histories is not None else (ir.seen_indptr, ir.seen_indices)
    starts, ends = indptr[users], indptr[users + 1]
    lens = (ends - starts).astype(np.int64)
    seg = np.repeat(np.arange(users.size), lens)
    flat = indices[np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)])] \
        if lens.sum() else np.zeros(0, np.int64)
    H = ir.tables["history_item"].take(flat)  # the history rows only: the table may be mapped
    if ir.history_kind != "lightgcn":
        return _gnn_history(ir, users, H, seg, flat, lens, with_base)
    out = np.zeros((users.size, H.shape[1]), np.float32)
    np.add.at(out, seg, H)
    with np.errstate(divide="ignore"):
        norm = np.where(lens > 0, lens.astype(np.float64) ** -0.5, 0.0).astype(np.float32)
    out *= norm[:, None]
    if with_base and "user_base" in ir.tables:
        out += ir.tables["user_base"].take(users)
    return out


def _gnn_history(ir: IR, users: np.ndarray, H: np.ndarray, seg: np.ndarray, flat: np.ndarray,
                 lens: np.ndarray, with_base: bool) -> np.ndarray:
    """The last layer of a sage / gcn / gat encoder over each user's history (precompute_gnn);
    ``H`` holds the history rows (``history_item`` at ``flat``)."""
    kind, n = ir.history_kind, users.size
    out = np.zeros((n, H.shape[1]), np.float64)
    if kind in ("sage", "gcn"):
        np.add.at(out, seg, H)
        denom = lens.astype(np.float64) if kind == "sage" else np.sqrt(lens + 1.0)
        out /= np.maximum(denom, 1.0)[:, None] if kind == "sage" else denom[:, None]
        if with_base and "user_base" in ir.tables:
            out += ir.tables["user_base"].take(users)
        else:
            out += ir.tables["user_default"].dequantize()[0]
        return out.astype(np.float32)
    # gat: softmax over the history (and, for a known user, its self-loop) of LeakyReLU logits
    slope = float(ir.history.get("negative_slope", 0.2))
    s = ir.tables["history_logit"].dequantize()[:, 0].astype(np.float64)
    known = with_base and "user_self" in ir.tables
    t = ir.tables["user_logit"].dequantize().astype(np.float64)[users] if known else np.zeros((n, 2))
    logit = s[flat] + t[seg, 0]
    logit = np.where(logit > 0, logit, slope * logit)
    vals = H.astype(np.float64)
    if known:
        self_logit = t[:, 0] + t[:, 1]
        logit = np.concatenate([logit, np.where(self_logit > 0, self_logit, slope * self_logit)])
        vals = np.concatenate([vals, ir.tables["user_self"].take(users)])
        seg = np.concatenate([seg, np.arange(n)])
    top = np.full(n, -np.inf)
    np.maximum.at(top, seg, logit)
    w = np.exp(logit - top[seg])
    total = np.zeros(n)
    np.add.at(total, seg, w)
    np.add.at(out, seg, vals * (w / total[seg])[:, None])
    return (out + ir.tables["history_bias"].dequantize()[0]).astype(np.float32)


def score_matrix(ir: IR, uv: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``[B, I]`` scores of user vectors against every item with the IR's scorer."""
    uv = torch.as_tensor(uv, dtype=torch.float32)
    if ir.scorer.get("kind") != "mlp":
        return uv @ torch.from_numpy(ir.tables["item"].dequantize()).T
    t = {n: torch.from_numpy(ir.tables[n].dequantize()) for n in
         ("mlp_item", "mlp_w1_user", "mlp_b1", "mlp_w2", "mlp_b2")}
    hu = uv @ t["mlp_w1_user"] + t["mlp_b1"]  # [B, h]
    step = max(1, (1 << 24) // max(1, t["mlp_item"].numel()))
    return torch.cat([torch.relu(hu[s:s + step, None, :] + t["mlp_item"][None]) @ t["mlp_w2"][:, 0]
                      + t["mlp_b2"][0, 0] for s in range(0, hu.shape[0], step)]) if hu.shape[0] \
        else uv.new_zeros((0, ir.num_items))


def user_vectors(ir: IR, users: np.ndarray, mode: str = "lookup", with_base: bool = False) -> np.ndarray:
    if mode == "lookup":
        return ir.tables["user"].take(users)
    if mode == "history":
        return history_vectors(ir, users, with_base=with_base)
    raise ValueError(f"unknown mode {mode!r}")


def ir_topk(ir: IR, users: np.ndarray, k: int, mode: str = "lookup", with_base: bool = False,
            batch_size: int = 2048) -> np.ndarray:
    """Top-k item indices of ``users`` with their seen items excluded. A dot scorer over more
    than :data:`BLOCK_ITEMS` items ranks them block by block
    (:func:`_topk_item_blocks`), so the full ``[users, items]`` score matrix never exists."""
    out = []
    for s in range(0, users.size, batch_size):
        b = users[s:s + batch_size]
        uv = user_vectors(ir, b, mode, with_base)
        if ir.scorer.get("kind") != "mlp" and ir.num_items > BLOCK_ITEMS:
            out.append(_topk_item_blocks(ir, uv, b, k, max(1, SCORE_ELEMENTS // b.size)))
            continue
        out.append(topk_full_ranking(lambda _b, uv=uv: score_matrix(ir, uv), b,
                                     (ir.seen_indptr, ir.seen_indices), k, batch_size))
    return np.concatenate(out) if out else np.zeros((0, k), np.int64)


def _topk_item_blocks(ir: IR, uv: np.ndarray, users: np.ndarray, k: int, rows: int) -> np.ndarray:
    """Dot-scorer top-``k`` of ``uv`` over the item table read ``rows`` items at a time: each
    block's top-k (seen items masked) is merged into the running best."""
    k = min(k, ir.num_items)
    q = torch.from_numpy(np.ascontiguousarray(uv, np.float32))
    best_s = torch.full((users.size, 0), -torch.inf)
    best_i = torch.zeros((users.size, 0), dtype=torch.int64)
    seen_rows, seen_cols = csr_rows(ir.seen_indptr, ir.seen_indices, users)
    for start, stop, block in ir.tables["item"].blocks(rows):
        scores = q @ torch.from_numpy(block).T
        inside = (seen_cols >= start) & (seen_cols < stop)
        scores[torch.from_numpy(seen_rows[inside]), torch.from_numpy(seen_cols[inside] - start)] = -torch.inf
        top = torch.topk(scores, min(k, stop - start), dim=1)
        best_s, order = torch.topk(torch.cat([best_s, top.values], 1),
                                   min(k, best_s.shape[1] + top.values.shape[1]), dim=1)
        best_i = torch.gather(torch.cat([best_i, top.indices + start], 1), 1, order)
    return best_i.numpy()


def evaluate_ir(ir: IR, truth: tuple[np.ndarray, np.ndarray], ks: Sequence[int] = (20,),
                mode: str = "lookup", with_base: bool = False, users: np.ndarray | None = None) -> dict[str, float]:
    """Recall/NDCG@ks of the IR against held-out ``truth`` (CSR over the IR's users)."""
    if users is None:
        users = users_with_items(truth)
    if users.size == 0:
        return {}
    top = ir_topk(ir, users, max(ks), mode, with_base)
    return ranking_metrics(top, users, truth, ks)


def agreement(ir: IR, reference: IR, users: np.ndarray, k: int = 20, mode: str = "lookup") -> float:
    """Top-k overlap between ``ir`` and ``reference`` (the float model) for ``users``."""
    return topk_agreement(ir_topk(ir, users, k, mode), ir_topk(reference, users, k, mode))


def distinct_topk_scores(ir: IR, users: np.ndarray, k: int = 20) -> float:
    """Mean fraction of distinct scores within each user's top-k (1.0 = no ties)."""
    items = ir.tables["item"].dequantize()
    uv = user_vectors(ir, users)
    fr = []
    for v, u in zip(uv, users, strict=True):
        s = items @ v if ir.scorer.get("kind") == "dot" else score_matrix(ir, v[None])[0].numpy()
        s[ir.seen(int(u))] = -np.inf
        top = np.partition(s, -k)[-k:]
        fr.append(np.unique(top).size / k)
    return float(np.mean(fr)) if fr else 1.0
