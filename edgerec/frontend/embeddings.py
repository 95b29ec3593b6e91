r"""The embeddings frontend: final tables computed elsewhere (say, a cluster's GNN job), ready for
:func:`edgerec.compile`.

The ranking the tables define is the dot product :math:`s(u, i) = \mathbf{u}_u \cdot
\mathbf{v}_i`. Tables may be numpy arrays or memory-mapped ``.npy`` files: a path is opened with
``np.load(mmap_mode="r")`` and never read whole, so tables larger than RAM compile in row blocks
(:mod:`edgerec.blocks`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgerec.blocks import first_non_finite
from edgerec.errors import FrontendError
from edgerec.frontend.graph import _ids, as_index  # the same rules as from_pyg
from edgerec.lowering.embeddings import Embeddings

Table = np.ndarray | str | os.PathLike[str]


def from_embeddings(user: Table, item: Table, *, history_item: Table | None = None,
                    interactions: Any = None, valid: Any = None,
                    user_ids: Sequence[str] | None = None,
                    item_ids: Sequence[str] | None = None) -> Embeddings:
    r"""Import final user and item embeddings computed elsewhere, ready for
    :func:`edgerec.compile`.

    The compiled model ranks items by :math:`\mathbf{u}_u \cdot \mathbf{v}_i` (lookup mode). With
    ``history_item`` :math:`\mathbf{H}` it also serves history mode, folding a user's history
    on the device: :math:`\mathbf{u} = n^{-1/2} \sum_{i \in \text{hist}(u)} \mathbf{H}_i`
    (LightGCN's last hop).

    .. code-block:: python

        emb = edgerec.from_embeddings("user.npy", "item.npy", interactions=train_pairs)
        edgerec.export(edgerec.compile(emb), "art", target="tflite")

    Args:
        user (np.ndarray or PathLike): ``[U, d]`` user table, or the path of a ``.npy`` file
            (memory-mapped, float32).
        item (np.ndarray or PathLike): ``[I, d]`` item table, same forms.
        history_item (np.ndarray or PathLike, optional): ``[I, d]`` per-item history vectors;
            enables history mode and needs ``interactions`` (the histories).
            (default: :obj:`None`, lookup mode only)
        interactions (np.ndarray or torch.Tensor, optional): ``[2, E]`` training
            ``(user, item)`` row-index pairs: each user's seen items (excluded from lookup
            recommendations) and the popularity order of the fallback for unknown users.
            Without them nothing is excluded and the fallback is the item order, as the IR's
            metrics and the manifest say.
            (default: :obj:`None`)
        valid (np.ndarray or torch.Tensor, optional): ``[2, V]`` held-out ``(user, item)``
            pairs for the accuracy guard's Recall@20; without them the guard holds top-20
            agreement with the float tables instead. (default: :obj:`None`)
        user_ids (sequence of str, optional): external user ids by row.
            (default: the row numbers as decimal strings)
        item_ids (sequence of str, optional): external item ids by row.
            (default: the row numbers as decimal strings)
    """
    tables, sources = {}, {}
    for name, value in (("user", user), ("item", item), ("history_item", history_item)):
        if value is not None:
            tables[name], sources[name] = _table(value, name)
    d = tables["user"].shape[1]
    for name, t in tables.items():
        if t.shape[1] != d:
            raise FrontendError(f"{name} has {t.shape[1]} columns, user has {d}: the tables must "
                                "share one width")
    U, I = tables["user"].shape[0], tables["item"].shape[0]
    if "history_item" in tables:
        if tables["history_item"].shape[0] != I:
            raise FrontendError(f"history_item has {tables['history_item'].shape[0]} rows, item "
                                f"has {I}: one history vector per item")
        if interactions is None:
            raise FrontendError("history_item needs interactions: history mode folds each "
                                "user's training items, and the guard measures it on them")
    for name, t in tables.items():
        row = first_non_finite(t)
        if row is not None:
            raise FrontendError(f"{name} has NaN or Inf (row {row})")
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    return Embeddings(
        tables=tables, user_ids=_ids(user_ids, U, "user_ids"), item_ids=_ids(item_ids, I, "item_ids"),
        train=empty if interactions is None else _pairs(interactions, "interactions", U, I),
        valid=empty if valid is None else _pairs(valid, "valid", U, I), sources=sources)


def _table(value: Any, name: str) -> tuple[np.ndarray, str]:
    """A 2-D float32 table: a path is memory-mapped; an in-memory float array is converted, a
    mapped one must already be float32 (converting would read it whole)."""
    source = "array"
    if isinstance(value, str | os.PathLike):
        path = Path(value)
        try:
            value = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise FrontendError(f"cannot read {name} table {path}: {e}".splitlines()[0]) from None
        if not isinstance(value, np.ndarray):
            raise FrontendError(f"{name}: {path} is not a .npy array file")
        source = str(path)
    elif isinstance(value, np.memmap) and value.filename:
        source = str(value.filename)
    elif not isinstance(value, np.ndarray):
        raise FrontendError(f"{name} must be a numpy array or the path of a .npy file, not "
                            f"{type(value).__name__}")
    if value.ndim != 2 or 0 in value.shape:
        raise FrontendError(f"{name} must be a non-empty [rows, dim] table, got shape "
                            f"{list(value.shape)}")
    if not np.issubdtype(value.dtype, np.floating):
        raise FrontendError(f"{name} must hold floats, got {value.dtype}")
    if isinstance(value, np.memmap):
        if value.dtype != np.float32:
            raise FrontendError(f"{name} is a memory-mapped {value.dtype} table; mapped tables "
                                "must be float32 (converting would read it whole)")
        if not value.flags.c_contiguous:
            raise FrontendError(f"{name} is a non-contiguous view of a memory map; pass the "
                                "whole mapped table")
        return value, source
    return np.ascontiguousarray(value, dtype=np.float32), source


def _pairs(value: Any, name: str, U: int, I: int) -> tuple[np.ndarray, np.ndarray]:
    users, items = as_index(value, name)  # (user, item) rows, not from_pyg's node layout
    for what, idx, n in (("user", users, U), ("item", items, I)):
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = int(idx.min() if idx.min() < 0 else idx.max())
            raise FrontendError(f"{name} has {what} {bad}, outside 0..{n - 1} (the rows of the "
                                f"{what} table)")
    return users, items
