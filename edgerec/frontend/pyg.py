r"""The PyG frontend: a model trained in the user's own PyTorch Geometric code, as a checkpoint.

The node layout is that of PyG's ``examples/lightgcn.py``: users are nodes ``0 .. U-1``, items
nodes ``U .. U+I-1``, and ``edge_index`` holds the training interactions. The ranking the user's
model defines is that of its final embeddings

.. math::
    \mathbf{E} = \sum_{l=0}^{K} \alpha_l \, \hat{\mathbf{A}}^l \mathbf{E}^{(0)}, \qquad
    \hat{\mathbf{A}} = \mathbf{D}^{-1/2}\mathbf{A}\mathbf{D}^{-1/2},

on the graph as passed in both directions (``model.get_embedding(edge_index)``), with PyG's
``gcn_norm`` degrees (a duplicated edge counts twice, in the degree and in the sum). The
checkpoint keeps the training pairs with their multiplicity and the model's ``alpha``, so the
compiler's precompute reproduces exactly that ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from edgerec.errors import EdgerecError

if TYPE_CHECKING:
    import torch

    from edgerec.checkpoint import Checkpoint


class FrontendError(EdgerecError):
    """A model or graph the PyG frontend cannot compile exactly; the message names what."""


def from_pyg(model: torch.nn.Module, edge_index: Any, *, num_users: int, num_items: int,
             user_ids: Sequence[str] | None = None, item_ids: Sequence[str] | None = None,
             valid: Any = None, test: Any = None, x: Any = None,
             edge_weight: Any = None) -> Checkpoint:
    r"""Import a recommender trained in your own PyG code, ready for :func:`edgerec.compile`.

    Supported: :class:`torch_geometric.nn.models.LightGCN` over ``num_users + num_items``
    nodes, with its own normalisation (``gcn_norm``) and any ``alpha`` (scalar or per layer).

    .. code-block:: python

        ckpt = edgerec.from_pyg(model, edge_index, num_users=U, num_items=I)

    Args:
        model (torch.nn.Module): the trained model.
        edge_index (torch.Tensor or np.ndarray): ``[2, E]`` training graph, users first and
            items numbered after them, in both directions or user->item only (then it is
            symmetrised; an item->user edge without its reverse is refused).
        num_users (int): the number of users :math:`U`.
        num_items (int): the number of items :math:`I`.
        user_ids (sequence of str, optional): external user ids by dense index.
            (default: the indices as decimal strings)
        item_ids (sequence of str, optional): external item ids by dense item index
            (node ``U + j`` is item ``j``). (default: the indices as decimal strings)
        valid (torch.Tensor or np.ndarray, optional): ``[2, V]`` held-out user->item pairs in
            the same node layout as ``edge_index``; they feed the accuracy guard. Without them
            the guard holds top-20 agreement with the float model instead.
            (default: :obj:`None`)
        test (torch.Tensor or np.ndarray, optional): ``[2, T]`` test pairs, same layout: what
            ``edgerec evaluate`` and ``export(with_eval=True)`` measure. (default: :obj:`None`)
        x (torch.Tensor, optional): node features, for encoders that read them; LightGCN
            learns its own and takes none. (default: :obj:`None`)
        edge_weight (torch.Tensor, optional): not supported (refused when given): the compiled
            model's on-device history fold assumes an unweighted graph. (default: :obj:`None`)
    """
    from torch_geometric.nn.models import LightGCN

    if edge_weight is not None:
        raise FrontendError("edge weights are not supported: the history fold assumes an "
                            "unweighted graph (pass edge_index alone)")
    num_users, num_items = _count(num_users, "num_users"), _count(num_items, "num_items")
    if not isinstance(model, LightGCN):
        raise FrontendError(f"unsupported module {type(model).__name__}: from_pyg compiles "
                            "torch_geometric.nn.models.LightGCN")
    if x is not None:
        raise FrontendError("LightGCN learns its node embeddings and takes no x")
    return _lightgcn(model, edge_index, num_users, num_items, user_ids, item_ids, valid, test)


def _lightgcn(model: Any, edge_index: Any, U: int, I: int, user_ids: Sequence[str] | None,
              item_ids: Sequence[str] | None, valid: Any, test: Any) -> Checkpoint:
    import torch
    from torch_geometric.nn.models import LightGCN

    from edgerec.checkpoint import in_memory_checkpoint

    if model.num_nodes != U + I:
        raise FrontendError(f"the model has {model.num_nodes} nodes; num_users + num_items is "
                            f"{U + I} (users first, then items)")
    if any(not getattr(conv, "normalize", True) for conv in model.convs):
        raise FrontendError("a LightGCN built with normalize=False (a pre-normalised adjacency) is "
                            "not supported: build it with PyG's default normalize=True")
    users, items = _training_pairs(edge_index, U, I)
    data = _interactions(users, items, U, I, user_ids, item_ids, valid, test)
    K = int(model.num_layers)
    dim = int(model.embedding.weight.shape[1])
    alpha = model.alpha.detach().to(torch.float32).clone()
    own = LightGCN(U + I, dim, K, alpha=alpha, normalize=False)  # edgerec's pre-normalised form
    with torch.no_grad():
        own.embedding.weight.copy_(model.embedding.weight.detach().to(torch.float32))
    config = {"model": "lightgcn", "dim": dim, "layers": K,
              "train": {"source": "from_pyg", "alpha": [float(a) for a in alpha]},
              "metrics": {}}
    return in_memory_checkpoint(own, data, config)


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise FrontendError(f"{name} must be a positive integer, not {value!r}")
    return int(value)


def _as_index(value: Any, name: str) -> np.ndarray:
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


def _training_pairs(edge_index: Any, U: int, I: int) -> tuple[np.ndarray, np.ndarray]:
    """The user->item training pairs (with multiplicity) of ``edge_index``, checked to be the
    bipartite graph in both directions, or user->item only."""
    src, dst = _as_index(edge_index, "edge_index")
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


def _interactions(users: np.ndarray, items: np.ndarray, U: int, I: int,
                  user_ids: Sequence[str] | None, item_ids: Sequence[str] | None,
                  valid: Any, test: Any) -> Any:
    from edgerec.data import Interactions, Split

    return Interactions(num_users=U, num_items=I, train=Split(users, items),
                        valid=_held_out(valid, "valid", U, I), test=_held_out(test, "test", U, I), user_ids=_ids(user_ids, U, "user_ids"),
                        item_ids=_ids(item_ids, I, "item_ids"), source="from_pyg",
                        synthetic=False)


def _held_out(pairs: Any, name: str, U: int, I: int) -> Any:
    from edgerec.data import Split

    if pairs is None:
        return Split(np.zeros(0, np.int64), np.zeros(0, np.int64))
    pu, pi = _as_index(pairs, name)
    if pu.size and (pu.min() < 0 or pu.max() >= U or pi.min() < U or pi.max() >= U + I):
        raise FrontendError(f"{name} must hold user->item pairs in edge_index's layout: users "
                            f"in 0..{U - 1}, items in {U}..{U + I - 1}")
    return Split(pu, pi - U)


def _ids(ids: Sequence[str] | None, count: int, name: str) -> list[str]:
    if ids is None:
        return [str(n) for n in range(count)]
    out = list(ids)
    if len(out) != count or not all(isinstance(i, str) and i for i in out):
        raise FrontendError(f"{name} must be {count} non-empty strings")
    if len(set(out)) != count:
        raise FrontendError(f"{name} has duplicates")
    return out
