"""Lowering: a trained model (a checkpoint) becomes the compiler's IR.

This is the one step before the passes: message passing runs once, offline, layer by layer, and
what the device needs in each serving mode is kept as tables. :func:`lower` picks the model's
lowering (:mod:`edgerec.lowering.lightgcn`, :mod:`edgerec.lowering.gnn`); both assemble the IR
through :func:`edgerec.lowering.assemble.assemble`, the one IR-building path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgerec.ir import MODES

if TYPE_CHECKING:
    from edgerec.checkpoint import Checkpoint
    from edgerec.ir import IR, PassReport



def lower(ckpt: Checkpoint, modes: tuple[str, ...] = MODES,
          new_user: str = "mean") -> tuple[IR, PassReport]:
    """The float32 IR of ``ckpt`` with the tables of ``modes``, and the lowering's report.

    Args:
        ckpt (Checkpoint): the trained model and its training graph.
        modes (tuple of str, optional): serving modes. (default: both)
        new_user (str, optional): sage/gcn: a new user's base vector, ``"mean"`` or
            ``"bias"``. (default: ``"mean"``)
    """
    if ckpt.config.get("model", "lightgcn") == "lightgcn":
        from edgerec.lowering.lightgcn import precompute

        return precompute(ckpt, modes)
    from edgerec.lowering.gnn import precompute_gnn

    return precompute_gnn(ckpt, modes, new_user)
