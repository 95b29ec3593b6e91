r"""The lowering of final embedding tables computed elsewhere (:func:`edgerec.from_embeddings`).

There is no model to run: the user and item tables *are* the lookup mode's tables, and an
optional ``history_item`` table :math:`\mathbf{H}` gives history mode LightGCN's fold
:math:`\mathbf{u} = n^{-1/2} \sum_{i \in \text{hist}(u)} \mathbf{H}_i`. The tables are kept as
they were handed in (memory maps stay mapped); every later pass reads them in row blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgerec.ir import IR, MODES, PassReport
from edgerec.lowering.assemble import assemble_tables

FALLBACK_BY_POPULARITY = "training popularity (most interacted items first)"
FALLBACK_BY_INDEX = "item index order: no training interactions were given"


@dataclass(frozen=True)
class Embeddings:
    """Final tables and what is known about their training data, checked by
    :func:`edgerec.from_embeddings`; :func:`edgerec.compile` takes it as its source.

    Args:
        tables (dict): ``user`` and ``item`` (and ``history_item``), float32 arrays or
            read-only memory maps sharing one width.
        user_ids (list of str): external user ids by row of ``user``.
        item_ids (list of str): external item ids by row of ``item``.
        train (tuple of np.ndarray): training ``(users, items)`` index pairs (may be empty).
        valid (tuple of np.ndarray): held-out ``(users, items)`` index pairs (may be empty).
        sources (dict): per table, the file it maps or ``"array"``.
    """

    tables: dict[str, np.ndarray]
    user_ids: list[str]
    item_ids: list[str]
    train: tuple[np.ndarray, np.ndarray]
    valid: tuple[np.ndarray, np.ndarray]
    sources: dict[str, str]

    @property
    def modes(self) -> tuple[str, ...]:
        """The serving modes the tables allow: history needs ``history_item``."""
        return MODES if "history_item" in self.tables else ("lookup",)

    @property
    def dim(self) -> int:
        return int(self.tables["item"].shape[1])

    @property
    def fallback(self) -> str:
        """The order in which items are recommended to an unknown user."""
        return FALLBACK_BY_POPULARITY if self.train[0].size else FALLBACK_BY_INDEX


def lower_embeddings(emb: Embeddings, modes: tuple[str, ...]) -> tuple[IR, PassReport]:
    """The float32 IR of ``emb`` in ``modes`` and the lowering's report."""
    tables: dict[str, Any] = {n: v for n, v in emb.tables.items()
                              if n != "history_item" or "history" in modes}
    nbytes = sum(int(v.nbytes) for v in tables.values())
    return assemble_tables(
        tables, modes=modes, user_ids=emb.user_ids, item_ids=emb.item_ids, train=emb.train,
        model={"kind": "embeddings", "dim": emb.dim}, params={"source": "from_embeddings"},
        bytes_before=nbytes, provenance={"source": "from_embeddings", "tables": emb.sources,
                                         "synthetic": False},
        notes=[f"fallback for unknown users: {emb.fallback}"],
        metrics={"fallback_order": emb.fallback})
