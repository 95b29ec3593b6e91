r"""Recommender models, built from PyTorch Geometric layers.

LightGCN (He et al., 2020) over the bipartite user-item graph with ``U + I`` nodes:

.. math::
    \mathbf{E}^{(l+1)} = \mathbf{D}^{-1/2}\mathbf{A}\mathbf{D}^{-1/2}\mathbf{E}^{(l)}, \qquad
    \mathbf{e} = \frac{1}{K+1}\sum_{l=0}^{K}\mathbf{e}^{(l)}, \qquad
    s(u, i) = \mathbf{e}_u^\top \mathbf{e}_i.

We use :class:`torch_geometric.nn.models.LightGCN` unchanged, but hand it the adjacency already
normalised, as a sparse CSR matrix, with ``normalize=False``: the normalisation is then computed
once instead of on every forward pass, and the sparse-dense product is PyG's fast ``spmm`` path
(about 8x faster to train on a CPU, same embeddings).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch_geometric.nn.models import LightGCN

MODEL_KINDS = ("lightgcn", "sage", "gat", "gcn")


def normalized_adjacency(users: np.ndarray, items: np.ndarray, num_users: int,
                         num_items: int) -> torch.Tensor:
    """Symmetric-normalised bipartite adjacency ``D^-1/2 A D^-1/2`` as a torch sparse CSR tensor.

    Items are nodes ``num_users .. num_users + num_items - 1``.
    """
    n = num_users + num_items
    u = torch.as_tensor(users, dtype=torch.long)
    i = torch.as_tensor(items, dtype=torch.long) + num_users
    row = torch.cat([u, i])
    col = torch.cat([i, u])
    deg = torch.bincount(row, minlength=n).float()
    dinv = deg.pow(-0.5)
    dinv[torch.isinf(dinv)] = 0
    w = dinv[row] * dinv[col]
    coo = torch.sparse_coo_tensor(torch.stack([row, col]), w, (n, n), check_invariants=True).coalesce()
    with warnings.catch_warnings():  # "sparse CSR support is in beta": it is what PyG's spmm uses
        warnings.simplefilter("ignore", UserWarning)
        return coo.to_sparse_csr()


def degrees(users: np.ndarray, items: np.ndarray, num_users: int, num_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Training-graph degrees of users and items."""
    return (np.bincount(users, minlength=num_users).astype(np.int64),
            np.bincount(items, minlength=num_items).astype(np.int64))


def build_model(config: dict[str, Any]) -> torch.nn.Module:
    """The PyG model described by a checkpoint config (``edgerec.gnn`` for the nonlinear kinds)."""
    kind = config.get("model")
    if kind in ("sage", "gat", "gcn"):
        from edgerec.gnn import build_gnn

        return build_gnn(config)
    if kind != "lightgcn":
        raise ValueError(f"unknown model kind {kind!r}; choose one of {MODEL_KINDS}")
    return LightGCN(num_nodes=int(config["num_users"]) + int(config["num_items"]),
                    embedding_dim=int(config["dim"]), num_layers=int(config["layers"]),
                    normalize=False)


class _SymmetricSpmm(torch.autograd.Function):
    """``A @ X`` for a symmetric sparse ``A``: the backward pass reuses ``A`` (``Aᵀ = A``) instead
    of transposing the CSR matrix on every step, which halves the cost of a training step."""

    @staticmethod
    def forward(ctx: Any, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj = adj
        return torch.sparse.mm(adj, x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, torch.sparse.mm(ctx.adj, grad)


def lightgcn_embedding(model: LightGCN, adj: torch.Tensor) -> torch.Tensor:
    """``model.get_embedding(adj)`` for a symmetric normalised ``adj``, with a cheaper backward.

    Same math as :meth:`LightGCN.get_embedding` (``Σ_l α_l Â^l E``, PyG's own ``alpha`` and
    embedding); tests check the two agree.
    """
    x = model.embedding.weight
    out = x * model.alpha[0]
    for i in range(model.num_layers):
        x = _SymmetricSpmm.apply(adj, x)
        out = out + x * model.alpha[i + 1]
    return out


def layer_embeddings(model: LightGCN, adj: torch.Tensor) -> list[torch.Tensor]:
    """``[E^(0), ..., E^(K)]``: every layer's node embeddings, propagated once over the graph."""
    x = model.embedding.weight
    out = [x]
    for conv in model.convs:
        x = conv(x, adj)
        out.append(x)
    return out
