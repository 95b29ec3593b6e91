r"""PyG's ``GraphSAGE`` / ``GCN`` / ``GAT`` encoders (the ``BasicGNN`` family), as edgerec's
GNN recommender (:mod:`edgerec.gnn`) with the user's weights.

The user's model ranks by the dot product of its final embeddings

.. math::
    \mathbf{Z} = \mathrm{model}(\mathbf{X}, \mathcal{E}), \qquad
    \mathbf{x}^{(l+1)} = \mathrm{ReLU}\big(\mathrm{conv}_l(\mathbf{x}^{(l)}, \mathcal{E})\big)
    \ (l < L-1), \qquad \mathbf{Z} = \mathrm{conv}_{L-1}(\mathbf{x}^{(L-1)}, \mathcal{E}),

with :math:`\mathbf{X}` the node input (a learned embedding table or features) and
:math:`\mathcal{E}` the symmetrised training graph: exactly the structure of
:class:`edgerec.gnn.GNNRecommender` with a dot head, whose input embedding is :math:`\mathbf{X}`.
The weights are copied layer by layer; a bias or root weight the user's model was built without
becomes zeros, which adds exactly nothing. What that structure cannot express (jumping knowledge,
normalisation layers, another activation, several attention heads, other aggregations, residual
or edge-feature attention, a projection) is refused in one line naming it, never approximated.
Dropout is inference-time identity and is ignored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from edgerec.checkpoint import Checkpoint, in_memory_checkpoint
from edgerec.errors import FrontendError
from edgerec.frontend.graph import interactions, training_pairs
from edgerec.gnn import GAT_NEGATIVE_SLOPE, GNNRecommender


def basic_gnn_kind(model: Any) -> str | None:
    """edgerec's name for a PyG ``BasicGNN`` encoder (``sage``, ``gcn``, ``gat``), else None."""
    from torch_geometric.nn.models import GAT, GCN, GraphSAGE

    return {GraphSAGE: "sage", GCN: "gcn", GAT: "gat"}.get(type(model))


def from_basic_gnn(model: Any, kind: str, edge_index: Any, x: Any, U: int, I: int,
                   user_ids: Sequence[str] | None, item_ids: Sequence[str] | None,
                   valid: Any, test: Any) -> Checkpoint:
    """The checkpoint of a ``GraphSAGE`` / ``GCN`` / ``GAT`` ``model`` over node input ``x``
    (see the module doc); ``kind`` is :func:`basic_gnn_kind` of it."""
    name = type(model).__name__
    _check_structure(model, name)
    for n, conv in enumerate(model.convs):
        _check_conv(conv, kind, f"{name}.convs[{n}]")
    table = _node_input(x, U + I, name)
    widths = _widths(model, table.shape[1], name)
    users, items = training_pairs(edge_index, U, I)
    data = interactions(users, items, U, I, user_ids, item_ids, valid, test)
    dim, layers = widths[-1], len(model.convs)
    slope = _negative_slope(model, kind, name)
    own = GNNRecommender(kind, U, I, dim, layers, in_channels=widths[0],
                         hidden_channels=widths[1] if layers > 1 else None, negative_slope=slope)
    with torch.no_grad():
        own.embedding.weight.copy_(table)
        for n, (mine, theirs) in enumerate(zip(own.convs, model.convs, strict=True)):
            _copy_weights(mine, theirs, f"{name}.convs[{n}]")
    own.eval()
    config: dict[str, Any] = {"model": kind, "dim": dim, "layers": layers, "head": "dot",
                              "train": {"source": "from_pyg", "module": name}, "metrics": {}}
    if widths[0] != dim:
        config["in_channels"] = widths[0]
    if layers > 1 and widths[1] != dim:
        config["hidden_channels"] = widths[1]
    if slope != GAT_NEGATIVE_SLOPE:
        config["negative_slope"] = slope
    return in_memory_checkpoint(own, data, config)


def _negative_slope(model: Any, kind: str, name: str) -> float:
    """gat's LeakyReLU slope (any finite one: the device's history program reads it from the
    IR); edgerec's layers share one, as PyG's ``GAT(negative_slope=...)`` builds them."""
    if kind != "gat":
        return GAT_NEGATIVE_SLOPE
    slopes = {float(conv.negative_slope) for conv in model.convs}
    if len(slopes) > 1:
        raise FrontendError(f"{name} has layers with different negative_slope ({sorted(slopes)}): "
                            "edgerec's layers share one")
    slope = slopes.pop()
    if not math.isfinite(slope):
        raise FrontendError(f"{name} has negative_slope={slope}: it must be finite")
    return slope


def _check_structure(model: Any, name: str) -> None:
    """The layer stack around the convolutions: ReLU between layers and nothing else."""
    if model.jk_mode is not None or hasattr(model, "lin"):
        raise FrontendError(f"{name} with jumping knowledge (jk={model.jk_mode!r}) is not "
                            "supported: build it with jk=None")
    norms = [type(n).__name__ for n in model.norms if not isinstance(n, torch.nn.Identity)]
    if norms:
        raise FrontendError(f"{name} with normalisation layers ({norms[0]}) is not supported: "
                            "build it with norm=None")
    relu = type(model.act) is torch.nn.ReLU or model.act in (torch.relu, torch.nn.functional.relu)
    if len(model.convs) > 1 and not relu:
        act = "no activation" if model.act is None else \
            f"activation {getattr(model.act, '__name__', type(model.act).__name__)}"
        raise FrontendError(f"{name} with {act} between layers is not supported: edgerec's "
                            "encoders use ReLU (act='relu')")


def _check_conv(conv: Any, kind: str, where: str) -> None:
    """One convolution: the PyG class and the options edgerec's layer of that kind has."""
    from torch_geometric.nn.aggr import MeanAggregation, SumAggregation
    from torch_geometric.nn.conv import GATConv, GCNConv, SAGEConv

    expected = {"sage": SAGEConv, "gcn": GCNConv, "gat": GATConv}[kind]
    if type(conv) is not expected:
        raise FrontendError(f"{where} is a {type(conv).__name__}, not a {expected.__name__}: "
                            "unsupported module")
    aggr = MeanAggregation if kind == "sage" else SumAggregation
    if type(conv.aggr_module) is not aggr:
        raise FrontendError(f"{where} aggregates with {conv.aggr!r}: edgerec's history program "
                            f"needs PyG's default aggr={'mean' if kind == 'sage' else 'add'}")
    if kind == "sage":
        refused = [("normalize=True (L2-normalised outputs)", conv.normalize),
                   ("project=True", conv.project)]
    elif kind == "gcn":
        refused = [("improved=True", conv.improved),
                   ("add_self_loops=False", not conv.add_self_loops),
                   ("normalize=False (a pre-normalised adjacency)", not conv.normalize)]
    else:
        refused = [(f"heads={conv.heads} (multi-head attention)", conv.heads != 1),
                   ("add_self_loops=False", not conv.add_self_loops),
                   ("edge features (edge_dim)", conv.edge_dim is not None),
                   ("residual=True", getattr(conv, "residual", False)),
                   ("separate source/target weights (bipartite in_channels)", getattr(conv, "lin", None) is None)]
    for what, present in refused:
        if present:
            raise FrontendError(f"{where} with {what} is not supported")


def _node_input(x: Any, nodes: int, name: str) -> torch.Tensor:
    """``x`` as a float32 ``[U + I, c]`` tensor: an ``nn.Embedding``, a tensor or an array."""
    if x is None:
        raise FrontendError(f"{name} reads node input x: pass x= (its embedding table, a "
                            "torch.nn.Embedding or [U + I, c] tensor, or the node features)")
    if isinstance(x, torch.nn.Embedding):
        x = x.weight
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor) or x.is_sparse:
        raise FrontendError(f"x must be a torch.nn.Embedding, a dense tensor or a numpy array, "
                            f"not {type(x).__name__}")
    if x.ndim != 2 or not x.is_floating_point():
        raise FrontendError(f"x must be a [num_users + num_items, c] float matrix, got shape "
                            f"{list(x.shape)} of {x.dtype}")
    if x.shape[0] != nodes:
        raise FrontendError(f"x has {x.shape[0]} rows (nodes); num_users + num_items is {nodes} "
                            "(users first, then items)")
    x = x.detach().to("cpu", torch.float32)
    if not torch.isfinite(x).all():
        raise FrontendError("x has NaN or Inf values")
    return x


def _widths(model: Any, c: int, name: str) -> list[int]:
    """``[c, hidden, ..., out]``: every layer's input width and the last one's output width,
    read from the weights (a lazily initialised layer that never ran has none)."""
    widths = [c]
    for n, conv in enumerate(model.convs):
        params = list(conv.parameters())
        if any(isinstance(p, torch.nn.parameter.UninitializedParameter) for p in params):
            raise FrontendError(f"{name}.convs[{n}] has uninitialised weights (in_channels=-1 "
                                "and never run): run the model once before importing it")
        weights = [p for p in params if p.ndim == 2]
        width_in, width_out = int(weights[0].shape[1]), int(weights[0].shape[0])
        if width_in != widths[-1]:
            what = "x has" if n == 0 else f"{name}.convs[{n - 1}] outputs"
            raise FrontendError(f"{what} {widths[-1]} channels, but {name}.convs[{n}] reads "
                                f"{width_in}")
        widths.append(width_out)
    return widths


def _copy_weights(mine: torch.nn.Module, theirs: torch.nn.Module, where: str) -> None:
    """``theirs``' parameters into ``mine`` (same PyG class and names); one ``theirs`` lacks
    (no bias, ``root_weight=False``) stays zero, which is what its absence computes."""
    source = theirs.state_dict()
    target = mine.state_dict()
    extra = sorted(set(source) - set(target))
    if extra:
        raise FrontendError(f"{where} has parameters edgerec's layer lacks ({', '.join(extra)})")
    for key, value in target.items():
        if key not in source:
            value.zero_()
        elif tuple(source[key].shape) != tuple(value.shape):
            raise FrontendError(f"{where}.{key} has shape {list(source[key].shape)}, expected "
                                f"{list(value.shape)}")
        else:
            value.copy_(source[key].detach().to(torch.float32))
