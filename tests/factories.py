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
