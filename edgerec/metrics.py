"""Full-ranking Recall@K and NDCG@K, batched over users.

Protocol (as in the LightGCN papers): score every item for every user with held-out items,
exclude the user's training items, take the top K; Recall@K = hits / number of held-out items,
NDCG@K with binary relevance; averaged over users that have held-out items.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

ScoreFn = Callable[[np.ndarray], torch.Tensor]


def topk_full_ranking(score_fn: ScoreFn, users: np.ndarray, exclude: tuple[np.ndarray, np.ndarray],
                      k: int, batch_size: int = 1024) -> np.ndarray:
    """Top-``k`` item indices [len(users), min(k, items)] with each user's ``exclude`` CSR items
    masked. ``k`` beyond the catalogue ranks all of it: Recall/NDCG@k stay well defined there."""
    indptr, indices = exclude
    parts = []
    for start in range(0, users.size, batch_size):
        batch = users[start:start + batch_size]
        scores = score_fn(batch).float().clone()
        rows, cols = csr_rows(indptr, indices, batch)
        scores[torch.from_numpy(rows), torch.from_numpy(cols)] = -torch.inf
        parts.append(torch.topk(scores, min(k, scores.shape[1]), dim=1).indices.numpy())
    return np.concatenate(parts) if parts else np.zeros((0, k), np.int64)


def csr_rows(indptr: np.ndarray, indices: np.ndarray, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts, ends = indptr[batch], indptr[batch + 1]
    lens = ends - starts
    rows = np.repeat(np.arange(batch.size), lens)
    cols = (indices[np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)])]
            if lens.sum() else np.zeros(0, np.int64))
    return rows, cols.astype(np.int64)


def ranking_metrics(topk: np.ndarray, users: np.ndarray, truth: tuple[np.ndarray, np.ndarray],
                    ks: Sequence[int]) -> dict[str, float]:
    """Recall@k and NDCG@k of ``topk`` rows (for ``users``) against ``truth`` CSR; a ``k`` wider
    than ``topk`` (a catalogue smaller than k) scores the whole ranked list."""
    indptr, indices = truth
    kmax = topk.shape[1]
    hits = np.zeros(topk.shape, dtype=bool)
    n_true = (indptr[users + 1] - indptr[users]).astype(np.float64)
    for r, u in enumerate(users):
        t = indices[indptr[u]:indptr[u + 1]]
        hits[r] = np.isin(topk[r], t)
    discounts = 1.0 / np.log2(np.arange(2, kmax + 2))
    out: dict[str, float] = {}
    for k in ks:
        h = hits[:, :k]
        recall = h.sum(1) / n_true
        dcg = (h * discounts[:k]).sum(1)
        ideal = np.cumsum(discounts[:k])[np.minimum(n_true, min(k, kmax)).astype(int) - 1]
        out[f"recall@{k}"] = float(recall.mean())
        out[f"ndcg@{k}"] = float((dcg / ideal).mean())
    return out


def recall_per_user(topk: np.ndarray, users: np.ndarray, truth: tuple[np.ndarray, np.ndarray],
                    k: int) -> np.ndarray:
    """Each user's Recall@k (``[len(users)]``): the values :func:`ranking_metrics` averages."""
    indptr, indices = truth
    hits = np.array([np.isin(topk[r, :k], indices[indptr[u]:indptr[u + 1]]).sum()
                     for r, u in enumerate(users)], np.float64)
    return hits / (indptr[users + 1] - indptr[users])


def evaluate_embeddings(user_emb: torch.Tensor | np.ndarray, item_emb: torch.Tensor | np.ndarray,
                        exclude: tuple[np.ndarray, np.ndarray], truth: tuple[np.ndarray, np.ndarray],
                        ks: Sequence[int] = (10, 20, 40), batch_size: int = 1024,
                        users: np.ndarray | None = None) -> dict[str, float]:
    """Dot-product scorer: metrics of ``user_emb @ item_emb.T`` (float32 on the CPU)."""
    U = torch.as_tensor(np.asarray(user_emb, np.float32) if isinstance(user_emb, np.ndarray) else user_emb.float())
    I = torch.as_tensor(np.asarray(item_emb, np.float32) if isinstance(item_emb, np.ndarray) else item_emb.float())
    if users is None:
        users = users_with_items(truth)
    if users.size == 0:
        return {f"{m}@{k}": float("nan") for k in ks for m in ("recall", "ndcg")}
    with torch.no_grad():
        top = topk_full_ranking(lambda b: U[torch.from_numpy(b)] @ I.T, users, exclude, max(ks), batch_size)
    return ranking_metrics(top, users, truth, ks)


def users_with_items(csr: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    indptr = csr[0]
    return np.flatnonzero(np.diff(indptr) > 0)


def topk_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Mean overlap |A ∩ B| / k of two top-k index matrices (order ignored)."""
    k = a.shape[1]
    return float(np.mean([np.intersect1d(x, y).size / k for x, y in zip(a, b, strict=True)]))
