"""PyG modules rebuilt from a state dict (what ``edgerec import`` reads from safetensors).

A state dict holds the weights, not the constructor's options: the module is rebuilt with the
options its tensors' names and shapes show (layers, widths, bias, root weight, heads) and PyG's
defaults for the rest (``act="relu"``, SAGE ``aggr="mean"``; GAT's ``negative_slope`` is a
parameter, 0.2 unless given). A model built with other options must go through :func:`edgerec.from_pyg` in Python, which checks
them on the module itself.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from edgerec.errors import FrontendError

KINDS = ("lightgcn", "sage", "gcn", "gat")
_MODULES = {"sage": "GraphSAGE", "gcn": "GCN", "gat": "GAT"}
_WEIGHT = {"sage": "lin_l.weight", "gcn": "lin.weight", "gat": "lin.weight"}


def rebuild(kind: str, state: dict[str, torch.Tensor], where: str, *,
            negative_slope: float | None = None) -> torch.nn.Module:
    """The PyG ``kind`` module (see :data:`KINDS`) holding ``state``.

    Args:
        kind (str): ``"lightgcn"``, ``"sage"``, ``"gcn"`` or ``"gat"``.
        state (dict): the state dict.
        where (str): the file it came from, named in the one-line refusal of a state dict that
            is not such a module's.
        negative_slope (float, optional): gat: the LeakyReLU slope the model was built with,
            which a state dict does not record. (default: :obj:`None`, GATConv's 0.2)
    """
    if negative_slope is not None and kind != "gat":
        raise FrontendError(f"negative_slope is GAT's attention slope; a {kind} has none")
    if kind == "lightgcn":
        return _lightgcn(state, where)
    if kind not in _MODULES:
        raise FrontendError(f"unknown model kind {kind!r}; choose one of {', '.join(KINDS)}")
    return _basic_gnn(kind, state, where, negative_slope)


def _lightgcn(state: dict[str, torch.Tensor], where: str) -> torch.nn.Module:
    from torch_geometric.nn.models import LightGCN

    weight, alpha = state.get("embedding.weight"), state.get("alpha")
    if weight is None or alpha is None or weight.ndim != 2 or alpha.ndim != 1 or alpha.numel() < 1:
        raise FrontendError(f"{where}: not a PyG LightGCN state dict (needs 'embedding.weight' "
                            f"[N, d] and 'alpha' [K+1]; found {sorted(state)[:6]})")
    model = LightGCN(int(weight.shape[0]), int(weight.shape[1]), int(alpha.numel()) - 1, alpha=alpha)
    _load(model, state, where, "LightGCN")
    return model


def _basic_gnn(kind: str, state: dict[str, torch.Tensor], where: str,
               negative_slope: float | None) -> torch.nn.Module:
    from torch_geometric.nn import models

    name = _MODULES[kind]
    if any(k.startswith("norms.") for k in state):
        raise FrontendError(f"{where}: a {name} with normalisation layers (norms.*) is not supported")
    if any(k.startswith(("jk.", "lin.")) for k in state):
        raise FrontendError(f"{where}: a {name} with jumping knowledge (jk.*, lin.*) is not supported")
    weights = _layer_weights(kind, state, where, name)
    layers = len(weights)
    c, hidden, out = int(weights[0].shape[1]), int(weights[0].shape[0]), int(weights[-1].shape[0])
    options: dict[str, Any] = {}
    if layers > 1 and out != hidden:
        options["out_channels"] = out
    if kind == "sage":
        options.update(bias="convs.0.lin_l.bias" in state, root_weight="convs.0.lin_r.weight" in state,
                       project="convs.0.lin.weight" in state)
    else:
        options["bias"] = "convs.0.bias" in state
    if kind == "gat":
        heads = int(state["convs.0.att_src"].shape[1]) if "convs.0.att_src" in state else 1
        if heads != 1:
            raise FrontendError(f"{where}: a GAT with heads={heads} (multi-head attention) is "
                                "not supported")
        options.update(edge_dim=_width(state, "convs.0.lin_edge.weight"),
                       residual="convs.0.res.weight" in state)
        if negative_slope is not None:
            options["negative_slope"] = negative_slope
    model = getattr(models, name)(c, hidden if layers > 1 else out, layers, **options)
    _load(model, state, where, name)
    return model


def _layer_weights(kind: str, state: dict[str, torch.Tensor], where: str,
                   name: str) -> list[torch.Tensor]:
    """Every layer's main weight ``[out, in]``, layer 0 first; a gap is refused."""
    found = {int(m.group(1)) for k in state if (m := re.fullmatch(r"convs\.(\d+)\..*", k))}
    if not found:
        raise FrontendError(f"{where}: not a PyG {name} state dict (no convs.N.* tensors; "
                            f"found {sorted(state)[:6]})")
    weights = []
    for n in range(max(found) + 1):
        w = state.get(f"convs.{n}.{_WEIGHT[kind]}")
        if w is None or w.ndim != 2:
            raise FrontendError(f"{where}: not a PyG {name} state dict (no 2-D "
                                f"convs.{n}.{_WEIGHT[kind]})")
        weights.append(w)
    return weights


def _width(state: dict[str, torch.Tensor], key: str) -> int | None:
    return int(state[key].shape[1]) if key in state else None


def _load(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str, name: str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:300]
        raise FrontendError(f"{where}: does not load into a PyG {name} ({detail})") from None
