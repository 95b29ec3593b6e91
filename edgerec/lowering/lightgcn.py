"""LightGCN's lowering (precompute): run LightGCN's message passing once, offline, so the device never sees the graph.

Layer-wise full-graph inference (the PyG ``inference`` pattern): each layer is one sparse
product ``E^(l+1) = Â E^(l)`` computed in row chunks, so peak memory is a few dense layers plus
one chunk, whatever the graph's size. The pass emits both serving modes' tables:

- lookup: ``user`` and ``item``, the final embeddings ``(E^(0) + ... + E^(K)) / (K+1)``;
- history: ``history_item`` ``H_i = (e_i^(0) + ... + e_i^(K-1)) / (sqrt(d_i) (K+1))`` and
  ``user_base = e_u^(0) / (K+1)``, so that exactly
  ``e_u = user_base_u + d_u^-1/2 · Σ_{i ∈ hist(u)} H_i`` — the last hop runs on the device, from
  the user's own history. An item with no training interactions has ``H_i = 0``.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from edgerec.checkpoint import Checkpoint
from edgerec.ir import IR, MODES, PassReport
from edgerec.lowering.assemble import assemble
from edgerec.models import degrees, normalized_adjacency


def propagate(adj: torch.Tensor, x: np.ndarray, chunk: int = 65536) -> np.ndarray:
    r"""One layer :math:`\hat{A} x`, computed ``chunk`` rows at a time.

    Args:
        adj: the normalised adjacency :math:`\hat{A}` as a torch sparse CSR tensor
            (:func:`edgerec.models.normalized_adjacency`).
        x: the layer's input embeddings, float32, one row per node.
        chunk: rows per sparse product (bounds the temporary memory).
    """
    crow, col, val = adj.crow_indices(), adj.col_indices(), adj.values()
    n = adj.shape[0]
    xt = torch.from_numpy(x)
    out = np.empty_like(x)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": it is what PyG's spmm uses
        warnings.simplefilter("ignore", UserWarning)
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            lo, hi = int(crow[start]), int(crow[stop])
            rows = torch.sparse_csr_tensor(crow[start:stop + 1] - lo, col[lo:hi], val[lo:hi],
                                           (stop - start, n))
            out[start:stop] = torch.sparse.mm(rows, xt).numpy()
    return out


def _uniform_layers(adj: torch.Tensor, x: np.ndarray, K: int, chunk: int, inv_sqrt: np.ndarray,
                    U: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``alpha_l = 1/(K+1)`` (LightGCN's default): the layers are summed, then divided once."""
    x0 = x
    total = x.copy()
    below_last = x.copy()  # sum of layers 0..K-1
    for layer in range(K):
        x = propagate(adj, x, chunk)
        total += x
        if layer < K - 1:
            below_last += x
    hist = below_last[U:] * (inv_sqrt / (K + 1))[:, None]
    return total / (K + 1), hist, x0[:U] / (K + 1)


def _weighted_layers(adj: torch.Tensor, x: np.ndarray, alpha: np.ndarray, chunk: int,
                     inv_sqrt: np.ndarray, U: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Any per-layer ``alpha``: ``final = Σ_l α_l E^(l)``, ``H_i = d_i^-1/2 Σ_{l<K} α_{l+1}
    e_i^(l)`` and ``user_base = α_0 e_u^(0)``."""
    K = alpha.size - 1
    base = x[:U] * alpha[0]
    total = x * alpha[0]
    below_last = np.zeros_like(x[U:])
    for layer in range(K):
        below_last += x[U:] * alpha[layer + 1]
        x = propagate(adj, x, chunk)
        total += x * alpha[layer + 1]
    return total, below_last * inv_sqrt[:, None], base


def precompute(ckpt: Checkpoint, modes: tuple[str, ...] = MODES, chunk: int = 65536) -> tuple[IR, PassReport]:
    """Compile a trained LightGCN checkpoint into a float32 IR with both modes' tables."""
    cfg, data = ckpt.config, ckpt.data
    U, I, K = data.num_users, data.num_items, int(cfg["layers"])
    tu, ti = data.train.users, data.train.items
    adj = normalized_adjacency(tu, ti, U, I)
    with torch.no_grad():
        x = ckpt.model.embedding.weight.detach().numpy().astype(np.float32).copy()
        alpha = ckpt.model.alpha.detach().numpy().astype(np.float32)
    _, d_item = degrees(tu, ti, U, I)
    with np.errstate(divide="ignore"):
        inv_sqrt = np.where(d_item > 0, d_item.astype(np.float64) ** -0.5, 0.0).astype(np.float32)
    if np.all(alpha == np.float32(1.0 / (K + 1))):
        final, hist, base = _uniform_layers(adj, x, K, chunk, inv_sqrt, U)
    else:
        final, hist, base = _weighted_layers(adj, x, alpha, chunk, inv_sqrt, U)
    tables = {"item": final[U:], "user": final[:U], "history_item": hist, "user_base": base}
    return assemble(ckpt, {n: np.ascontiguousarray(v, np.float32) for n, v in tables.items()},
                    modes=modes, model={"kind": cfg["model"], "dim": int(cfg["dim"]), "layers": K},
                    params={"layers": K, "chunk": chunk},
                    bytes_before=int(ckpt.model.embedding.weight.numel() * 4), scorer={"kind": "dot"})
