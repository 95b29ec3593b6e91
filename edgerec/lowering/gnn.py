r"""The lowering (precompute) of the nonlinear encoders (``sage``, ``gcn``, ``gat``) and the MLP head.

Lookup mode: full-graph, layer-wise inference (every layer for every node, once, no sampling),
giving the final user and item embeddings ``z``.

History mode: every node's state ``x = x^(L-1)`` entering the last layer is precomputed; the
device runs exactly the model's last layer for the user's node over the user's history
(``n`` items). For a user seen in training, with its own state ``x_u`` included (``user_base``,
or ``user_self``/``user_logit`` for GAT) and its full training history, this equals ``z_u``.

- ``sage``: ``z_u = W_r x_u + b + W_n (1/n) Σ_i x_i``  ->  ``history_item H_i = W_n x_i``,
  ``user_base B_u = W_r x_u + b``; device ``mean_i H_i + B_u``.
- ``gcn``: ``z_u = Σ_i W x_i / sqrt((n+1)(n_i+1)) + W x_u / (n+1) + b``  ->
  ``H_i = W x_i / sqrt(n_i + 1)`` (``n_i`` the item's training degree),
  ``B_u = W x_u / (n_u + 1) + b``; device ``(n+1)^-1/2 Σ_i H_i + B_u``.
- ``gat``: ``z_u = Σ_{j ∈ hist ∪ {u}} α_j W x_j + b``, ``α = softmax_j LeakyReLU(s_j + t_u)``
  with ``s_j = a_s·W x_j``, ``t_u = a_d·W x_u``  ->  ``H_i = W x_i``, ``history_logit = s_i``,
  ``history_bias = b``; known users: ``user_self = W x_u``, ``user_logit = (t_u, s_u)``.

A new user has no ``x_u``. sage/gcn add ``user_default`` instead of ``B_u``: ``new_user="mean"``
(the mean ``B_u`` over training users) or ``"bias"`` (``x_u = 0``, i.e. the layer's bias; for
gcn the self-loop term vanishes). gat drops the self-loop and the user's part of every logit
(``t_u = 0``: attention from the items' side only, ``α_j = softmax_j LeakyReLU(s_j)``), which is
an approximation: the trained model never saw a user without ``t_u``.

MLP head: ``mlp_item T_i = W1_item z_i`` [I, h] per item; ``mlp_w1_user`` [d, h], ``mlp_b1``,
``mlp_w2`` [h, 1], ``mlp_b2`` stay dense, and the device scores every item with
``relu(u W1_user + T_i + b1) · w2 + b2``.
"""

from __future__ import annotations

import numpy as np
import torch

from edgerec.checkpoint import Checkpoint
from edgerec.gnn import GNNRecommender, edge_index
from edgerec.ir import HISTORY_SPECS, IR, MODES, PassReport
from edgerec.lowering.assemble import assemble

NEW_USER = ("mean", "bias")


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().numpy(), dtype=np.float32)


def history_tables(model: GNNRecommender, x: torch.Tensor, users: np.ndarray, items: np.ndarray,
                   new_user: str = "mean") -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """The last layer of ``model`` split into per-item and per-user tables (see module doc);
    ``x`` is every node's input to the last layer. Returns (tables, history spec)."""
    if new_user not in NEW_USER:
        raise ValueError(f"new_user must be one of {NEW_USER}, got {new_user!r}")
    U, kind, conv = model.num_users, model.kind, model.convs[-1]
    agg, norm, _ = HISTORY_SPECS[kind]
    spec: dict[str, object] = {"kind": kind, "aggregation": agg, "norm": norm}
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():
        if kind == "sage":
            H = conv.lin_l.weight @ x.T  # no bias: it is in the base
            out["history_item"] = _np(H.T[U:])
            base = x[:U] @ conv.lin_r.weight.T + conv.lin_l.bias
            bias = conv.lin_l.bias
        elif kind == "gcn":
            z = x @ conv.lin.weight.T
            deg_u = torch.as_tensor(np.bincount(users, minlength=U) + 1, dtype=torch.float32)
            deg_i = torch.as_tensor(np.bincount(items, minlength=model.num_items) + 1, dtype=torch.float32)
            out["history_item"] = _np(z[U:] / deg_i.sqrt()[:, None])
            base = z[:U] / deg_u[:, None] + conv.bias
            bias = conv.bias
        else:
            z = conv.lin(x)
            s = (z * conv.att_src.view(1, -1)).sum(-1)
            t = (z * conv.att_dst.view(1, -1)).sum(-1)
            out.update(history_item=_np(z[U:]), history_logit=_np(s[U:, None]),
                       history_bias=_np(conv.bias[None]), user_self=_np(z[:U]),
                       user_logit=_np(torch.stack([t[:U], s[:U]], 1)))
            spec.update(negative_slope=float(conv.negative_slope), new_user="item_logits_only")
            return out, spec
    out["user_base"] = _np(base)
    known = np.bincount(users, minlength=U) > 0
    default = base[torch.from_numpy(known)].mean(0) if new_user == "mean" and known.any() else bias
    out["user_default"] = _np(default[None])
    spec["new_user"] = new_user
    return out, spec


def mlp_tables(model: GNNRecommender, item_emb: torch.Tensor) -> dict[str, np.ndarray]:
    """The MLP head with its item half precomputed per item."""
    head, d = model.head, item_emb.shape[1]
    with torch.no_grad():
        w1 = head.lin1.weight
        return {"mlp_item": _np(item_emb @ w1[:, d:].T), "mlp_w1_user": _np(w1[:, :d].T),
                "mlp_b1": _np(head.lin1.bias[None]), "mlp_w2": _np(head.lin2.weight.T),
                "mlp_b2": _np(head.lin2.bias.view(1, 1))}


def precompute_gnn(ckpt: Checkpoint, modes: tuple[str, ...] = MODES,
                   new_user: str = "mean") -> tuple[IR, PassReport]:
    """Compile a trained sage/gcn/gat checkpoint into a float32 IR (both modes' tables)."""
    model, cfg, data = ckpt.model, ckpt.config, ckpt.data
    if not isinstance(model, GNNRecommender):
        raise ValueError(f"precompute_gnn needs a sage/gat/gcn checkpoint, got {cfg.get('model')!r}")
    U = data.num_users
    tu, ti = data.train.users, data.train.items
    model.eval()
    with torch.no_grad():
        xs = model.layer_outputs(edge_index(tu, ti, U))
    z = xs[-1]
    tables = {"user": _np(z[:U]), "item": _np(z[U:])}
    hist, spec = history_tables(model, xs[-2], tu, ti, new_user)
    tables.update(hist)
    scorer: dict[str, object] = {"kind": "dot"}
    if model.head is not None:
        tables.update(mlp_tables(model, z[U:]))
        scorer = {"kind": "mlp", "hidden": int(model.head.lin1.out_features), "activation": "relu"}
    params = sum(p.numel() for p in model.parameters()) * 4
    return assemble(ckpt, tables, modes=modes, scorer=scorer, history=spec,
                    model={"kind": cfg["model"], "dim": int(cfg["dim"]), "layers": int(cfg["layers"]),
                           "head": cfg.get("head", "dot"), "hidden": cfg.get("hidden"),
                           "num_features": int(cfg.get("num_features", 0))},
                    params={"layers": int(cfg["layers"]), "kind": cfg["model"], "new_user": new_user},
                    bytes_before=int(params), notes=[f"history program: {spec}"])
