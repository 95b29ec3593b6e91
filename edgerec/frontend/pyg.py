r"""The PyG frontend: a model trained in the user's own PyTorch Geometric code, as a checkpoint.

The node layout is that of PyG's ``examples/lightgcn.py``: users are nodes ``0 .. U-1``, items
nodes ``U .. U+I-1``, and ``edge_index`` holds the training interactions. The ranking the user's
model defines is the dot product of its final embeddings on the graph as passed in both
directions. For :class:`~torch_geometric.nn.models.LightGCN` (``model.get_embedding(edge_index)``)

.. math::
    \mathbf{E} = \sum_{l=0}^{K} \alpha_l \, \hat{\mathbf{A}}^l \mathbf{E}^{(0)}, \qquad
    \hat{\mathbf{A}} = \mathbf{D}^{-1/2}\mathbf{A}\mathbf{D}^{-1/2},

with PyG's ``gcn_norm`` degrees (a duplicated edge counts twice, in the degree and in the sum).
The checkpoint keeps the training pairs with their multiplicity and the model's ``alpha``, so
the compiler's precompute reproduces exactly that ranking. The ``GraphSAGE`` / ``GCN`` /
``GAT`` encoders (``model(x, edge_index)``) are mapped by :mod:`edgerec.frontend.basic_gnn`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from edgerec.errors import FrontendError
from edgerec.frontend.graph import count, interactions, training_pairs

if TYPE_CHECKING:
    import torch

    from edgerec.checkpoint import Checkpoint

__all__ = ["FrontendError", "from_pyg"]


def from_pyg(model: torch.nn.Module, edge_index: Any, *, num_users: int, num_items: int,
             user_ids: Sequence[str] | None = None, item_ids: Sequence[str] | None = None,
             valid: Any = None, test: Any = None, x: Any = None,
             edge_weight: Any = None) -> Checkpoint:
    r"""Import a recommender trained in your own PyG code, ready for :func:`edgerec.compile`.

    Supported:

    - :class:`torch_geometric.nn.models.LightGCN` over ``num_users + num_items`` nodes, with
      its own normalisation (``gcn_norm``) and any ``alpha`` (scalar or per layer); it ranks by
      :math:`\mathbf{e}_u^\top\mathbf{e}_i` with :math:`\mathbf{E}` =
      ``model.get_embedding(edge_index)``.
    - the encoders :class:`~torch_geometric.nn.models.GraphSAGE` (mean aggregation, with or
      without root weight and bias), :class:`~torch_geometric.nn.models.GCN` and
      :class:`~torch_geometric.nn.models.GAT` (one head) over the node input ``x``, with ReLU
      between layers; they rank by :math:`\mathbf{z}_u^\top\mathbf{z}_i` with
      :math:`\mathbf{Z}` = ``model(x, edge_index)``. Jumping knowledge, normalisation layers,
      other activations, several heads or other aggregations are refused, naming the option.
      History mode runs the model's last layer on the device over the user's history; with
      ``edgerec.compile(..., new_user="bias")`` the new user's own state is zero, so it is
      exactly that layer for a node whose neighbours are the history items (GAT: without a
      self-loop); the default ``"mean"`` adds the mean training user's own term instead.

    .. code-block:: python

        ckpt = edgerec.from_pyg(model, edge_index, num_users=U, num_items=I)
        ckpt = edgerec.from_pyg(sage, edge_index, num_users=U, num_items=I, x=embedding)

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
        x (torch.nn.Embedding, torch.Tensor or np.ndarray, optional): the encoders' node input,
            ``[U + I, c]``: the learned embedding table or the node features (their values
            are compiled as they are now). LightGCN learns its own and takes none.
            (default: :obj:`None`)
        edge_weight (torch.Tensor, optional): not supported (refused when given): the compiled
            model's on-device history program assumes an unweighted graph.
            (default: :obj:`None`)
    """
    from torch_geometric.nn.models import LightGCN

    from edgerec.frontend.basic_gnn import basic_gnn_kind, from_basic_gnn

    if edge_weight is not None:
        raise FrontendError("edge weights are not supported: the history program assumes an "
                            "unweighted graph (pass edge_index alone)")
    num_users, num_items = count(num_users, "num_users"), count(num_items, "num_items")
    kind = basic_gnn_kind(model)
    if kind is not None:
        return from_basic_gnn(model, kind, edge_index, x, num_users, num_items, user_ids,
                              item_ids, valid, test)
    if not isinstance(model, LightGCN):
        raise FrontendError(f"unsupported module {type(model).__name__}: from_pyg compiles "
                            "torch_geometric.nn.models LightGCN, GraphSAGE, GCN or GAT")
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
    users, items = training_pairs(edge_index, U, I)
    data = interactions(users, items, U, I, user_ids, item_ids, valid, test)
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
