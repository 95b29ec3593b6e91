"""The one path from a lowered model's tables to an IR: what every lowering shares (ids,
popularity, seen lists, provenance, the first pass report, validation)."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgerec.checkpoint import Checkpoint
from edgerec.ir import IR, PassReport, Table

MODES = ("lookup", "history")


def assemble(ckpt: Checkpoint, tables: dict[str, np.ndarray], *, modes: tuple[str, ...],
             model: dict[str, Any], params: dict[str, Any], bytes_before: int,
             notes: tuple[str, ...] | list[str] = (), scorer: dict[str, Any] | None = None,
             history: dict[str, Any] | None = None) -> tuple[IR, PassReport]:
    """The float32 IR of ``ckpt``'s lowered ``tables`` and the lowering's report.

    Args:
        ckpt (Checkpoint): the model lowered (ids, training graph, fingerprint).
        tables (dict): table name -> float32 array.
        modes (tuple of str): serving modes kept.
        model (dict): the source model's kind and hyperparameters, as the IR records them.
        params (dict): the lowering's parameters, for its report.
        bytes_before (int): the model's parameter bytes.
        notes (list of str, optional): lines for the report.
        scorer (dict, optional): the scorer (default: a dot product).
        history (dict, optional): the history program (default: LightGCN's fold).
    """
    if not set(modes) <= set(MODES) or not modes:
        raise ValueError(f"modes must be a non-empty subset of {MODES}")
    cfg, data = ckpt.config, ckpt.data
    U, I = data.num_users, data.num_items
    seen_indptr, seen_indices = data.train.csr(U)
    popular = np.argsort(-np.bincount(data.train.items, minlength=I), kind="stable").astype(np.int32)
    extra: dict[str, Any] = {}
    if scorer is not None:
        extra["scorer"] = scorer
    if history is not None:
        extra["history"] = history
    ir = IR(
        num_users=U, num_items=I, tables={n: Table(v) for n, v in tables.items()},
        modes=tuple(m for m in MODES if m in modes), user_ids=list(data.user_ids),
        item_ids=list(data.item_ids), popular=popular, seen_indptr=seen_indptr.astype(np.int64),
        seen_indices=seen_indices.astype(np.int32), model=model,
        provenance={"checkpoint": str(ckpt.path), "checkpoint_fingerprint": ckpt.fingerprint,
                    "data_fingerprint": cfg.get("data", {}).get("fingerprint"),
                    "data_source": data.source, "synthetic": data.synthetic},
        **extra,
    )
    report = PassReport(name="precompute", params={"modes": list(ir.modes), **params},
                        bytes_before=bytes_before, bytes_after=ir.nbytes,
                        notes=[f"graph: {U} users, {I} items, {data.train.users.size} training edges",
                               *notes])
    ir = ir.with_pass(report)
    ir.validate()
    return ir, report
