"""The one path from a lowered model's tables to an IR: what every lowering shares (ids,
popularity, seen lists, provenance, the first pass report, validation); a checkpoint's
lowering and final tables handed in by :func:`edgerec.from_embeddings` both end here."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgerec.checkpoint import Checkpoint
from edgerec.data import Split
from edgerec.ir import IR, MODES, PassReport, Table


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
    cfg, data = ckpt.config, ckpt.data
    return assemble_tables(
        tables, modes=modes, user_ids=data.user_ids, item_ids=data.item_ids,
        train=(data.train.users, data.train.items), model=model, params=params,
        bytes_before=bytes_before, notes=notes, scorer=scorer, history=history,
        provenance={"checkpoint": str(ckpt.path), "checkpoint_fingerprint": ckpt.fingerprint,
                    "data_fingerprint": cfg.get("data", {}).get("fingerprint"),
                    "data_source": data.source, "synthetic": data.synthetic})


def assemble_tables(tables: dict[str, np.ndarray], *, modes: tuple[str, ...],
                    user_ids: list[str], item_ids: list[str],
                    train: tuple[np.ndarray, np.ndarray], model: dict[str, Any],
                    params: dict[str, Any], bytes_before: int, provenance: dict[str, Any],
                    notes: tuple[str, ...] | list[str] = (), scorer: dict[str, Any] | None = None,
                    history: dict[str, Any] | None = None,
                    metrics: dict[str, Any] | None = None) -> tuple[IR, PassReport]:
    """The float32 IR of ``tables`` (the one IR-building path; :func:`assemble` for a
    checkpoint): the seen lists and the popular-items fallback come from the ``train``
    user/item pairs.

    Args:
        tables (dict): table name -> float32 array (or read-only memory map).
        modes (tuple of str): serving modes kept.
        user_ids (list of str): external user ids by dense index.
        item_ids (list of str): external item ids by dense index.
        train (tuple of np.ndarray): the training interactions' user and item indices (may be
            empty: nothing is excluded and the fallback is the item order).
        model (dict): the source model, as the IR records it.
        params (dict): the lowering's parameters, for its report.
        bytes_before (int): the source's parameter bytes.
        provenance (dict): where the tables came from.
        notes (list of str, optional): lines for the report.
        scorer (dict, optional): the scorer (default: a dot product).
        history (dict, optional): the history program (default: LightGCN's fold).
        metrics (dict, optional): the IR's initial metrics. (default: none)
    """
    if not set(modes) <= set(MODES) or not modes:
        raise ValueError(f"modes must be a non-empty subset of {MODES}")
    U, I = len(user_ids), len(item_ids)
    users, items = train
    seen_indptr, seen_indices = Split(users, items).csr(U)
    popular = np.argsort(-np.bincount(items, minlength=I), kind="stable").astype(np.int32)
    extra: dict[str, Any] = {}
    if scorer is not None:
        extra["scorer"] = scorer
    if history is not None:
        extra["history"] = history
    if metrics is not None:
        extra["metrics"] = metrics
    ir = IR(
        num_users=U, num_items=I, tables={n: Table(v) for n, v in tables.items()},
        modes=tuple(m for m in MODES if m in modes), user_ids=list(user_ids),
        item_ids=list(item_ids), popular=popular, seen_indptr=seen_indptr.astype(np.int64),
        seen_indices=seen_indices.astype(np.int32), model=model, provenance=provenance, **extra,
    )
    report = PassReport(name="precompute", params={"modes": list(ir.modes), **params},
                        bytes_before=bytes_before, bytes_after=ir.nbytes,
                        notes=[f"graph: {U} users, {I} items, {users.size} training edges",
                               *notes])
    ir = ir.with_pass(report)
    ir.validate()
    return ir, report
