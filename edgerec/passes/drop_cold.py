"""Drop cold items: items with too few training interactions leave every per-item table.

A dropped item can no longer be recommended; in a history the runtime ignores it. Every table
with one row per item is sliced alike (``item``, ``history_item``, gat's ``history_logit``, the
MLP head's ``mlp_item``), as are the popularity order and the seen lists.
"""

from __future__ import annotations

import numpy as np

from edgerec.ir import IR, PassReport, Table
from edgerec.passes.base import Pass, logged

PER_ITEM_TABLES = ("item", "history_item", "history_logit", "mlp_item")


def drop_cold_items(ir: IR, min_count: int, train_counts: np.ndarray) -> tuple[IR, PassReport]:
    """Remove items with fewer than ``min_count`` training interactions from every table.

    Dropped items can no longer be recommended; in a history they are ignored by the runtime.
    """
    keep = np.flatnonzero(train_counts >= min_count)
    if keep.size == 0:
        raise ValueError(f"a minimum of {min_count} training interactions would drop every item")
    remap = np.full(ir.num_items, -1, np.int64)
    remap[keep] = np.arange(keep.size)
    tables = {n: (Table(t.values[keep], None if t.scale is None else t.scale[keep])
                  if n in PER_ITEM_TABLES else t) for n, t in ir.tables.items()}
    new_idx = remap[ir.seen_indices]
    counts = np.add.reduceat((new_idx >= 0).astype(np.int64), ir.seen_indptr[:-1]) \
        if ir.seen_indices.size else np.zeros(ir.num_users, np.int64)
    counts[np.diff(ir.seen_indptr) == 0] = 0
    indptr = np.zeros(ir.num_users + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    popular = remap[ir.popular]
    new = ir.replace(
        num_items=int(keep.size), tables=tables, item_ids=[ir.item_ids[i] for i in keep],
        popular=popular[popular >= 0].astype(np.int32), seen_indptr=indptr,
        seen_indices=new_idx[new_idx >= 0].astype(np.int32))
    return logged(ir, new, "drop_cold_items", {"min_count": min_count},
                  [f"dropped {ir.num_items - keep.size} of {ir.num_items} items"])


class DropColdItems(Pass):
    """Drop items with fewer than ``min_count`` training interactions (see
    :func:`drop_cold_items`).

    Args:
        min_count (int): the fewest training interactions an item keeps its place with.
        train_counts (np.ndarray): training interactions per item, ``[num_items]``.
    """

    name = "drop_cold_items"
    measured = False  # the float reference is taken after it: it is part of the model served

    def __init__(self, min_count: int, train_counts: np.ndarray) -> None:
        self.min_count, self.train_counts = min_count, train_counts

    def __call__(self, ir: IR) -> tuple[IR, PassReport]:
        return drop_cold_items(ir, self.min_count, self.train_counts)
