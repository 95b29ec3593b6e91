r"""Structured pruning of the encoder's output channels: a column of every ``d``-wide table (and
a row of ``mlp_w1_user``) leaves.

Unlike ``prune.py`` (a rotation of the embedding space, exact only for linear programs), this
deletes whole columns, so it applies to every encoder and scorer. Importance: dot scorer
``‖U_c‖·‖I_c‖`` (the bound on the channel's share of the score matrix); MLP scorer
``‖U_c‖·‖W1_user[c]‖`` (the item half ``mlp_item`` was precomputed from all channels and stays
exact). GAT attention logits were precomputed from all channels and are kept.
"""

from __future__ import annotations

import numpy as np

from edgerec.ir import IR, PassReport, Table
from edgerec.passes.base import Pass, logged
from edgerec.passes.mlp_head import kept_count

D_WIDE = ("item", "user", "history_item", "user_base", "user_default", "user_self", "history_bias")


def prune_encoder_channels(ir: IR, keep: float | int) -> tuple[IR, PassReport]:
    """Keep the ``keep`` most important output channels of the encoder (a fraction if float)."""
    d = ir.dim
    n = kept_count(keep, d, "channels")
    U = ir.tables["user"].dequantize() if "user" in ir.tables else ir.tables["history_item"].dequantize()
    if ir.scorer.get("kind") == "mlp":
        score = np.linalg.norm(U, axis=0) * np.linalg.norm(ir.tables["mlp_w1_user"].dequantize(), axis=1)
    else:
        score = np.linalg.norm(U, axis=0) * np.linalg.norm(ir.tables["item"].dequantize(), axis=0)
    cols = np.sort(np.argsort(-score, kind="stable")[:n])
    tables = dict(ir.tables)
    for name in D_WIDE:
        if name in tables:
            tables[name] = Table(np.ascontiguousarray(tables[name].dequantize()[:, cols]))
    if "mlp_w1_user" in tables:
        tables["mlp_w1_user"] = Table(np.ascontiguousarray(tables["mlp_w1_user"].dequantize()[cols]))
    new = ir.replace(tables=tables)
    kept = float(score[cols].sum() / max(score.sum(), 1e-30))
    return logged(ir, new, "prune_channels", {"keep": n, "from": d}, [f"importance kept: {kept:.4f}"])


class PruneEncoderChannels(Pass):
    """Keep the ``keep`` most important encoder output channels (see
    :func:`prune_encoder_channels`).

    Args:
        keep (float or int): a fraction of the channels, or their number.
    """

    name = "prune_channels"

    def __init__(self, keep: float | int) -> None:
        self.keep = keep

    def __call__(self, ir: IR) -> tuple[IR, PassReport]:
        return prune_encoder_channels(ir, self.keep)
