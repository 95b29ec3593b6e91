"""Small IRs built directly from random factors, for tests that do not need a trained model."""

from __future__ import annotations

import numpy as np

from edgerec.ir import IR, Table


def make_ir(num_users: int = 60, num_items: int = 200, dim: int = 16, seed: int = 0,
            modes: tuple[str, ...] = ("lookup", "history"), string_ids: bool = False) -> IR:
    """A float32 IR whose tables obey the LightGCN history fold on a random bipartite graph."""
    rng = np.random.default_rng(seed)
    seen_lists = []
    for _ in range(num_users):
        n = int(rng.integers(1, 12))
        seen_lists.append(np.sort(rng.choice(num_items, size=n, replace=False)).astype(np.int32))
    indptr = np.zeros(num_users + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(s) for s in seen_lists])
    indices = np.concatenate(seen_lists).astype(np.int32)
    item = rng.standard_normal((num_items, dim)).astype(np.float32)
    hist = (rng.standard_normal((num_items, dim)) * 0.3).astype(np.float32)
    base = (rng.standard_normal((num_users, dim)) * 0.1).astype(np.float32)
    user = np.stack([base[u] + hist[s].sum(0) / np.sqrt(len(s)) for u, s in enumerate(seen_lists)])
    counts = np.bincount(indices, minlength=num_items)
    popular = np.argsort(-counts, kind="stable").astype(np.int32)
    prefix = ("user-", "item-") if string_ids else ("", "")
    return IR(
        num_users=num_users, num_items=num_items,
        tables={"item": Table(item), "user": Table(user.astype(np.float32)),
                "history_item": Table(hist), "user_base": Table(base)},
        modes=modes,
        user_ids=[f"{prefix[0]}{u}" for u in range(num_users)],
        item_ids=[f"{prefix[1]}{i}" for i in range(num_items)],
        popular=popular, seen_indptr=indptr, seen_indices=indices,
        model={"kind": "random", "layers": 2, "dim": dim},
        provenance={"checkpoint_fingerprint": f"random-{seed}"},
    )


def train_pyg_lightgcn(num_users: int = 120, num_items: int = 200, *, dim: int = 16,
                       layers: int = 2, alpha: object = None, epochs: int = 40, seed: int = 0,
                       duplicates: int = 0) -> tuple[object, object, object]:
    """A LightGCN trained by a plain PyG loop (PyG's own model and BPR loss, as in PyG's
    ``examples/lightgcn.py``), not by edgerec: ``(model, edge_index both ways, valid pairs)``
    with items numbered after users. ``duplicates`` repeats that many training edges."""
    import torch
    from torch_geometric.nn.models import LightGCN

    u, i, edge_index, valid = _pyg_graph(num_users, num_items, seed, duplicates)
    torch.manual_seed(seed)
    model = LightGCN(num_users + num_items, dim, layers, alpha=alpha)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    items = torch.arange(num_users, num_users + num_items)
    for _ in range(epochs):
        neg = items[torch.randint(0, num_items, (u.numel(),))]
        pos_edges = torch.stack([u, i])
        neg_edges = torch.stack([u, neg])
        rank = model(edge_index, torch.cat([pos_edges, neg_edges], dim=1))
        pos, negs = rank.chunk(2)
        loss = model.recommendation_loss(pos, negs, node_id=torch.cat([u, i, neg]).unique(), lambda_reg=1e-4)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model, edge_index, valid


def _pyg_graph(num_users: int, num_items: int, seed: int, duplicates: int = 0) -> tuple[object, ...]:
    """Synthetic training pairs in PyG's layout (items numbered after users): ``(users, items,
    edge_index both ways, [2, V] valid pairs)``; ``duplicates`` repeats that many edges."""
    import torch

    from edgerec.synthetic import make_synthetic

    data = make_synthetic(num_users, num_items, communities=6, seed=seed)
    u = torch.as_tensor(data.train.users, dtype=torch.long)
    i = torch.as_tensor(data.train.items, dtype=torch.long) + num_users
    if duplicates:
        u, i = torch.cat([u, u[:duplicates]]), torch.cat([i, i[:duplicates]])
    edge_index = torch.stack([torch.cat([u, i]), torch.cat([i, u])])
    valid = torch.stack([torch.as_tensor(data.valid.users, dtype=torch.long),
                         torch.as_tensor(data.valid.items, dtype=torch.long) + num_users])
    return u, i, edge_index, valid


def train_pyg_encoder(model: object, num_users: int = 120, num_items: int = 200, *,
                      epochs: int = 30, seed: int = 0) -> tuple[object, object, object, object]:
    """A PyG encoder (``GraphSAGE``, ``GCN``, ``GAT``: ``model(x, edge_index)``) trained by a
    plain PyG loop over a learnable ``torch.nn.Embedding`` input with BPR, not by edgerec:
    ``(model, embedding, edge_index both ways, valid pairs)``, items numbered after users."""
    import torch
    import torch.nn.functional as F

    u, i, edge_index, valid = _pyg_graph(num_users, num_items, seed)
    torch.manual_seed(seed)
    embedding = torch.nn.Embedding(num_users + num_items, model.in_channels)
    torch.nn.init.normal_(embedding.weight, std=0.1)
    opt = torch.optim.Adam([*embedding.parameters(), *model.parameters()], lr=0.01)
    for _ in range(epochs):
        z = model(embedding.weight, edge_index)
        neg = torch.randint(num_users, num_users + num_items, (u.numel(),))
        pos_score, neg_score = (z[u] * z[i]).sum(-1), (z[u] * z[neg]).sum(-1)
        loss = -F.logsigmoid(pos_score - neg_score).mean() + 1e-4 * embedding.weight.pow(2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model, embedding, edge_index, valid


def train_pyg_graphsage(num_users: int = 120, num_items: int = 200, *, dim: int = 16,
                        layers: int = 2, epochs: int = 30, seed: int = 0,
                        **options: object) -> tuple[object, object, object, object]:
    """PyG's ``GraphSAGE(dim, dim, layers, **options)`` trained by :func:`train_pyg_encoder`."""
    import torch
    from torch_geometric.nn.models import GraphSAGE

    torch.manual_seed(seed)
    return train_pyg_encoder(GraphSAGE(dim, dim, layers, **options), num_users, num_items,
                             epochs=epochs, seed=seed)
