"""What every PyG frontend reads besides the model: the training graph, held-out pairs and ids.

The node layout is that of PyG's ``examples/lightgcn.py``: users are nodes ``0 .. U-1``, items
nodes ``U .. U+I-1``; ``edge_index`` holds the training interactions in both directions or
user->item only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgerec.errors import FrontendError


def count(value: Any, name: str) -> int:
    """``value`` as a positive int (a user or item count), or a one-line refusal."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise FrontendError(f"{name} must be a positive integer, not {value!r}")
    return int(value)


def as_index(value: Any, name: str) -> np.ndarray:
    """A ``[2, E]`` integer array from a tensor or an array; anything else is refused."""
    import torch

    if isinstance(value, torch.Tensor):
        if value.is_sparse or value.layout != torch.strided:
            raise FrontendError(f"{name} must be a dense [2, E] index tensor, not a sparse "
                                "adjacency (a pre-normalised or weighted adjacency is not supported)")
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise FrontendError(f"{name} must be a [2, E] torch.Tensor or numpy array, not "
                            f"{type(value).__name__}")
    if value.ndim != 2 or value.shape[0] != 2 or not np.issubdtype(value.dtype, np.integer):
        raise FrontendError(f"{name} must be a [2, E] integer array, got shape "
                            f"{list(value.shape)} of {value.dtype}")
    return value.astype(np.int64, copy=False)


def training_pairs(edge_index: Any, U: int, I: int) -> tuple[np.ndarray, np.ndarray]:
    """The user->item training pairs (with multiplicity) of ``edge_index``, checked to be the
    bipartite graph in both directions, or user->item only."""
    src, dst = as_index(edge_index, "edge_index")
    if src.size == 0:
        raise FrontendError("edge_index has no edges: nothing to propagate over")
    lo, hi = int(min(src.min(), dst.min())), int(max(src.max(), dst.max()))
    if lo < 0 or hi >= U + I:
        raise FrontendError(f"edge_index has node {lo if lo < 0 else hi}, outside 0..{U + I - 1} "
                            "(num_users + num_items nodes)")
    forward = (src < U) & (dst >= U)
    backward = (src >= U) & (dst < U)
    other = ~(forward | backward)
    if other.any():
        e = int(np.flatnonzero(other)[0])
        raise FrontendError(f"edge_index has an edge {int(src[e])}->{int(dst[e])} that is not "
                            "between a user and an item (users are nodes 0..num_users-1)")
    users, items = src[forward], dst[forward] - U
    if backward.any():
        back = np.stack([dst[backward], src[backward] - U])
        fwd = np.stack([users, items])
        if fwd.shape != back.shape or not np.array_equal(_sorted_pairs(fwd), _sorted_pairs(back)):
            raise FrontendError("edge_index has edges in both directions, but not every "
                                "user->item edge has its item->user reverse (pass the graph "
                                "symmetric, or user->item only)")
    return users, items


def _sorted_pairs(pairs: np.ndarray) -> np.ndarray:
    return pairs[:, np.lexsort((pairs[1], pairs[0]))]


def interactions(users: np.ndarray, items: np.ndarray, U: int, I: int,
                  user_ids: Sequence[str] | None, item_ids: Sequence[str] | None,
                  valid: Any, test: Any) -> Any:
    """The checkpoint's :class:`~edgerec.data.Interactions`: the training pairs, the held-out
    pairs (checked to lie in the node layout) and the id maps."""
    from edgerec.data import Interactions, Split

    return Interactions(num_users=U, num_items=I, train=Split(users, items),
                        valid=_held_out(valid, "valid", U, I), test=_held_out(test, "test", U, I),
                        user_ids=_ids(user_ids, U, "user_ids"),
                        item_ids=_ids(item_ids, I, "item_ids"), source="from_pyg",
                        synthetic=False)


def _held_out(pairs: Any, name: str, U: int, I: int) -> Any:
    from edgerec.data import Split

    if pairs is None:
        return Split(np.zeros(0, np.int64), np.zeros(0, np.int64))
    pu, pi = as_index(pairs, name)
    if pu.size and (pu.min() < 0 or pu.max() >= U or pi.min() < U or pi.max() >= U + I):
        raise FrontendError(f"{name} must hold user->item pairs in edge_index's layout: users "
                            f"in 0..{U - 1}, items in {U}..{U + I - 1}")
    return Split(pu, pi - U)


def _ids(ids: Sequence[str] | None, n: int, name: str) -> list[str]:
    if ids is None:
        return [str(k) for k in range(n)]
    out = list(ids)
    if len(out) != n or not all(isinstance(i, str) and i for i in out):
        raise FrontendError(f"{name} must be {n} non-empty strings")
    if len(set(out)) != n:
        raise FrontendError(f"{name} has duplicates")
    return out
