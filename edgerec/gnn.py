r"""Nonlinear graph encoders (GraphSAGE, GAT, GCN) and an MLP scoring head, from PyG layers.

The graph is LightGCN's: one homogeneous graph over ``U + I`` nodes (users first, then items)
with an undirected edge per training interaction. Each node has a learnable input embedding
:math:`\mathbf{e}^{(0)}_v`, optionally concatenated with a fixed feature row
:math:`\mathbf{f}_v` (zeros where a node has no features). ``L`` message-passing layers, ReLU
between layers and none after the last:

.. math::
    \mathbf{x}^{(0)}_v = [\mathbf{e}^{(0)}_v \,\|\, \mathbf{f}_v], \qquad
    \mathbf{x}^{(l+1)} = \sigma_l\big(\mathrm{conv}_l(\mathbf{x}^{(l)}, \mathcal{E})\big), \qquad
    \mathbf{z}_v = \mathbf{x}^{(L)}_v,

with ``conv`` one of (``N(v)`` the neighbours, ``n_v = |N(v)|``, ``\hat n_v = n_v + 1``):

- ``sage`` (:class:`~torch_geometric.nn.conv.SAGEConv`, mean):
  :math:`\mathbf{W}_r\mathbf{x}_v + \mathbf{W}_n \tfrac{1}{n_v}\sum_{w\in N(v)}\mathbf{x}_w + \mathbf{b}`;
- ``gcn`` (:class:`~torch_geometric.nn.conv.GCNConv`, self-loops, symmetric normalisation):
  :math:`\sum_{w\in N(v)\cup\{v\}} (\hat n_v \hat n_w)^{-1/2}\,\mathbf{W}\mathbf{x}_w + \mathbf{b}`;
- ``gat`` (:class:`~torch_geometric.nn.conv.GATConv`, one head, self-loops):
  :math:`\sum_{w\in N(v)\cup\{v\}} \alpha_{vw}\mathbf{W}\mathbf{x}_w + \mathbf{b}`,
  :math:`\alpha_{vw} = \mathrm{softmax}_w\,\mathrm{LeakyReLU}_{0.2}(\mathbf{a}_s^\top\mathbf{W}\mathbf{x}_w
  + \mathbf{a}_d^\top\mathbf{W}\mathbf{x}_v)`.

Scores: ``dot`` :math:`s(u,i) = \mathbf{z}_u^\top\mathbf{z}_i`, or ``mlp``
:math:`s(u,i) = \mathbf{w}_2^\top\mathrm{ReLU}(\mathbf{W}_{1u}\mathbf{z}_u + \mathbf{W}_{1i}\mathbf{z}_i
+ \mathbf{b}_1) + b_2` (a ``Linear(2d, h)`` on the concatenation, split in its two halves, so
that the item half can be precomputed per item).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch_geometric.nn import GATConv, GCNConv, SAGEConv

from edgerec.errors import DataError

GNN_KINDS = ("sage", "gat", "gcn")
HEADS = ("dot", "mlp")
GAT_NEGATIVE_SLOPE = 0.2  # GATConv's default; a PyG model imported by from_pyg may have another


def _conv(kind: str, dim_in: int, dim_out: int, negative_slope: float = GAT_NEGATIVE_SLOPE) -> nn.Module:
    if kind == "sage":
        return SAGEConv(dim_in, dim_out, aggr="mean", root_weight=True)
    if kind == "gcn":
        return GCNConv(dim_in, dim_out, add_self_loops=True, normalize=True, cached=False)
    if kind == "gat":
        return GATConv(dim_in, dim_out, heads=1, concat=True, negative_slope=negative_slope,
                       add_self_loops=True, dropout=0.0)
    raise ValueError(f"unknown GNN kind {kind!r}; choose one of {GNN_KINDS}")


class MLPHead(nn.Module):
    """``score = w2 · relu(W1 [u ‖ i] + b1) + b2``; ``lin1`` holds ``[W1_user | W1_item]``."""

    def __init__(self, dim: int, hidden: int = 64):
        super().__init__()
        self.dim = dim
        self.lin1 = nn.Linear(2 * dim, hidden)
        self.lin2 = nn.Linear(hidden, 1)

    def forward(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        """Pairwise scores of aligned rows ``u[k], i[k]``."""
        return self.lin2(torch.relu(self.lin1(torch.cat([u, i], -1)))).squeeze(-1)

    def score_all(self, u: torch.Tensor, items: torch.Tensor, budget: int = 1 << 24) -> torch.Tensor:
        """``[B, I]`` scores of every user row against every item, in chunks of users so that the
        ``B x I x h`` hidden activations stay under ``budget`` floats."""
        d = self.dim
        w = self.lin1.weight
        tu = u @ w[:, :d].T + self.lin1.bias          # [B, h]
        ti = items @ w[:, d:].T                       # [I, h]
        w2, b2 = self.lin2.weight[0], self.lin2.bias[0]
        step = max(1, budget // max(1, ti.numel()))
        out = [torch.relu(tu[s:s + step, None, :] + ti[None]) @ w2 + b2 for s in range(0, tu.shape[0], step)]
        return torch.cat(out) if out else u.new_zeros((0, items.shape[0]))


class GNNRecommender(nn.Module):
    """A ``sage`` / ``gat`` / ``gcn`` encoder over the user-item graph with a ``dot`` or ``mlp`` head."""

    def __init__(self, kind: str, num_users: int, num_items: int, dim: int, layers: int,
                 head: str = "dot", hidden: int = 64, num_features: int = 0,
                 in_channels: int | None = None, hidden_channels: int | None = None,
                 negative_slope: float = GAT_NEGATIVE_SLOPE):
        """``dim`` is the output width; ``in_channels`` (the embedding's width) and
        ``hidden_channels`` (the inner layers') default to it, as in PyG's ``BasicGNN``;
        ``negative_slope`` is gat's LeakyReLU slope."""
        super().__init__()
        if kind not in GNN_KINDS:
            raise ValueError(f"unknown GNN kind {kind!r}; choose one of {GNN_KINDS}")
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; choose one of {HEADS}")
        if layers < 1:
            raise ValueError(f"a {kind} encoder needs at least one layer")
        self.kind, self.head_kind = kind, head
        self.num_users, self.num_items = num_users, num_items
        in_channels = dim if in_channels is None else in_channels
        hidden_channels = dim if hidden_channels is None else hidden_channels
        self.embedding = nn.Embedding(num_users + num_items, in_channels)
        nn.init.normal_(self.embedding.weight, std=0.1)
        self.register_buffer("features", torch.zeros(num_users + num_items, num_features))
        widths = [in_channels + num_features] + [hidden_channels] * (layers - 1) + [dim]
        self.convs = nn.ModuleList([_conv(kind, widths[n], widths[n + 1], negative_slope) for n in range(layers)])
        self.head = MLPHead(dim, hidden) if head == "mlp" else None

    def inputs(self) -> torch.Tensor:
        """``x^(0)``: learned embeddings, with the feature columns appended when there are any."""
        x = self.embedding.weight
        return torch.cat([x, self.features], 1) if self.features.shape[1] else x

    def layer_outputs(self, edge_index: torch.Tensor) -> list[torch.Tensor]:
        """``[x^(0), ..., x^(L)]`` over the whole graph (ReLU after every layer but the last)."""
        xs = [self.inputs()]
        for n, conv in enumerate(self.convs):
            x = conv(xs[-1], edge_index)
            xs.append(torch.relu(x) if n < len(self.convs) - 1 else x)
        return xs

    def get_embedding(self, edge_index: torch.Tensor) -> torch.Tensor:
        """Final node embeddings ``z`` (users first, then items)."""
        return self.layer_outputs(edge_index)[-1]

    def score_pairs(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return self.head(u, i) if self.head is not None else (u * i).sum(-1)

    def score_all(self, u: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.head.score_all(u, items) if self.head is not None else u @ items.T


def build_gnn(config: dict[str, Any]) -> GNNRecommender:
    return GNNRecommender(str(config["model"]), int(config["num_users"]), int(config["num_items"]),
                          int(config["dim"]), int(config["layers"]), head=str(config.get("head", "dot")),
                          hidden=int(config.get("hidden", 64)),
                          num_features=int(config.get("num_features", 0)),
                          in_channels=_optional_int(config, "in_channels"),
                          hidden_channels=_optional_int(config, "hidden_channels"),
                          negative_slope=float(config.get("negative_slope", GAT_NEGATIVE_SLOPE)))


def _optional_int(config: dict[str, Any], key: str) -> int | None:
    return None if config.get(key) is None else int(config[key])


def edge_index(users: np.ndarray, items: np.ndarray, num_users: int) -> torch.Tensor:
    """Both directions of every training edge; items are nodes ``num_users + i``."""
    u = torch.as_tensor(np.asarray(users), dtype=torch.long)
    i = torch.as_tensor(np.asarray(items), dtype=torch.long) + num_users
    return torch.stack([torch.cat([u, i]), torch.cat([i, u])])


def load_features(path: str | Path, user_ids: list[str], item_ids: list[str]) -> np.ndarray:
    """Node features from one CSV ``kind,id,f1,...,fF`` (``kind`` is ``user`` or ``item``, ``id``
    the external id as in the data; a header line starting with ``kind`` is skipped).

    Returns float32 ``[U + I, F]``; nodes without a row get zeros. Unknown ids are an error (a
    typo would otherwise silently give a node no features)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such feature file")
    pos = {"user": {k: n for n, k in enumerate(user_ids)},
           "item": {k: len(user_ids) + n for n, k in enumerate(item_ids)}}
    rows: dict[int, list[float]] = {}
    width = None
    try:
        with open(path, newline="") as f:
            for lineno, rec in enumerate(csv.reader(f), 1):
                if not rec or (lineno == 1 and rec[0].strip().lower() == "kind"):
                    continue
                if len(rec) < 3:
                    raise DataError(f"{path}:{lineno}: expected kind,id,f1[,f2...]")
                kind, key = rec[0].strip().lower(), rec[1].strip()
                if kind not in pos:
                    raise DataError(f"{path}:{lineno}: kind must be 'user' or 'item', got {rec[0][:20]!r}")
                if key not in pos[kind]:
                    raise DataError(f"{path}:{lineno}: unknown {kind} id {key[:40]!r}")
                try:
                    vals = [float(v) for v in rec[2:]]
                except ValueError:
                    raise DataError(f"{path}:{lineno}: non-numeric feature value") from None
                if not all(np.isfinite(vals)):
                    raise DataError(f"{path}:{lineno}: feature values must be finite")
                if width is None:
                    width = len(vals)
                elif len(vals) != width:
                    raise DataError(f"{path}:{lineno}: {len(vals)} features, earlier rows have {width}")
                rows[pos[kind][key]] = vals
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file") from None
    if width is None:
        raise DataError(f"{path}: no feature rows")
    out = np.zeros((len(user_ids) + len(item_ids), width), np.float32)
    for node, vals in rows.items():
        out[node] = vals
    return out


def evaluate_scores(model: GNNRecommender, user_emb: torch.Tensor, item_emb: torch.Tensor,
                    exclude: tuple[np.ndarray, np.ndarray], truth: tuple[np.ndarray, np.ndarray],
                    ks: tuple[int, ...] = (10, 20, 40), batch_size: int = 256) -> dict[str, float]:
    """Full-ranking metrics with the model's own scorer (the MLP head scores every item)."""
    from edgerec.metrics import ranking_metrics, topk_full_ranking, users_with_items

    users = users_with_items(truth)
    if users.size == 0:
        return {f"{m}@{k}": float("nan") for k in ks for m in ("recall", "ndcg")}
    with torch.no_grad():
        top = topk_full_ranking(lambda b: model.score_all(user_emb[torch.from_numpy(b)], item_emb),
                                users, exclude, max(ks), batch_size)
    return ranking_metrics(top, users, truth, ks)
