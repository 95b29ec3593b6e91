"""Structured pruning of the MLP head: whole hidden neurons leave (a column of ``mlp_item`` and
``mlp_w1_user``, an entry of ``mlp_b1`` and ``mlp_w2``), the least important first
(:mod:`edgerec.passes.mlp_head` defines importance)."""

from __future__ import annotations

import numpy as np

from edgerec.ir import IR, PassReport
from edgerec.passes.base import Pass, logged
from edgerec.passes.mlp_head import head_importance, head_tables, kept_count, slice_head


def prune_head(ir: IR, keep: float | int, importance: str = "activation", sample_users: int = 512,
               seed: int = 0) -> tuple[IR, PassReport]:
    """Keep the ``keep`` most important hidden neurons of the MLP head (a fraction if float)."""
    h = ir.tables["mlp_b1"].shape[1] if "mlp_b1" in ir.tables else 0
    head_tables(ir)
    n = kept_count(keep, h, "hidden neurons")
    score = head_importance(ir, importance, sample_users, seed)
    keep_idx = np.sort(np.argsort(-score, kind="stable")[:n])
    new = ir.replace(tables=slice_head(ir, keep_idx), scorer={**ir.scorer, "hidden": n})
    kept = float(score[keep_idx].sum() / max(score.sum(), 1e-30))
    return logged(ir, new, "prune_head", {"keep": n, "from": h, "importance": importance},
                  [f"importance kept: {kept:.4f}"])


class PruneHead(Pass):
    """Keep the ``keep`` most important hidden neurons of the MLP head (see :func:`prune_head`).

    Args:
        keep (float or int): a fraction of the neurons, or their number.
        importance (str, optional): ``"activation"`` or ``"magnitude"``.
            (default: ``"activation"``)
    """

    name = "prune_head"

    def __init__(self, keep: float | int, importance: str = "activation") -> None:
        self.keep, self.importance = keep, importance

    def __call__(self, ir: IR) -> tuple[IR, PassReport]:
        return prune_head(ir, self.keep, self.importance)
