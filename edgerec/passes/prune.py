"""Structured pruning of embedding dimensions (and, optionally, of cold items).

Scores are inner products ``s = u · i``, so what must survive is the score matrix ``S = U Iᵀ``,
not any single column. The ``svd`` method rotates both sides so that ``S``'s energy sits in the
leading dimensions, then truncates: with ``U = Q_u R_u`` and ``I = Q_i R_i`` (thin QR),
``R_u R_iᵀ = A Σ Bᵀ`` gives ``S = (Q_u A)Σ(Q_i B)ᵀ``; keeping ``r`` singular values is the best
rank-``r`` approximation of ``S`` (Eckart–Young), computed from ``d × d`` matrices only; the
``R`` factors are accumulated over row blocks, and the maps applied block by block, so a table
is never copied whole (:mod:`edgerec.blocks`).
The user-side map ``M_u = R_u⁻¹ A_r Σ_r^½`` is linear, so it is applied to every table that
feeds a user vector (``user``, ``history_item``, ``user_base``: the history fold stays exact);
the item table gets ``M_i = R_i⁻¹ B_r Σ_r^½``. The ``columns`` method (keep the ``r`` columns of
largest ``‖U_c‖·‖I_c‖``) is the naive baseline the report compares against.

After the truncation both maps are multiplied by one seeded random orthogonal ``r × r`` matrix
``Q`` (scores are unchanged: ``(x M_u Q)(y M_i Q)ᵀ = x M_u M_iᵀ yᵀ``). The SVD basis puts most of
a row's energy in its first coordinates, and a per-row scale sized for those leaves 4-bit
levels too coarse for the rest; ``Q`` spreads the energy evenly over the coordinates, as
incoherence processing does for LLM weights (QuIP, QuaRot), so the same bits keep more of the
scores (docs/compression.md).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgerec.blocks import block_rows, output_table, row_blocks
from edgerec.ir import IR, PassReport, Table
from edgerec.passes.base import Pass, logged

METHODS = ("svd", "columns")
USER_SIDE = ("user", "history_item", "user_base")


def r_factor(table: Table) -> np.ndarray:
    """The ``R`` of the thin QR of ``table`` (float64), accumulated over row blocks (TSQR: the
    ``R`` of ``[R_prev; block]`` at each step), so a table larger than RAM never exists as one
    float64 copy. One block is exactly ``qr(table, mode="r")``."""
    R: np.ndarray | None = None
    for _, _, block in table.blocks():
        x = block.astype(np.float64)
        R = np.linalg.qr(x if R is None else np.vstack([R, x]), mode="r")
    assert R is not None, "a table has at least one row"
    return R


def column_norms(table: Table) -> np.ndarray:
    """Euclidean norm of each column, over row blocks (one block: ``np.linalg.norm(axis=0)``)."""
    norms = [np.linalg.norm(block, axis=0) for _, _, block in table.blocks()]
    return norms[0] if len(norms) == 1 else np.sqrt(np.sum(np.square(norms, dtype=np.float64), axis=0))


def map_rows(table: Table, fn: Callable[[np.ndarray], np.ndarray], width: int) -> Table:
    """A float32 table of ``fn`` applied to each row block, written into one preallocated
    output (mapped to a temporary file when the input is mapped: :func:`output_table`)."""
    out = output_table((table.shape[0], width), np.float32, table.values)
    rows = block_rows(table.values)
    for (_, _, block), (_, _, dest) in zip(table.blocks(rows), row_blocks(out, rows), strict=True):
        dest[...] = fn(block)
    return Table(out)


def _spectrum(user: Table, item: Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    Ru = r_factor(user)
    Ri = r_factor(item)
    A, s, Bt = np.linalg.svd(Ru @ Ri.T)
    return Ru, Ri, A, s, Bt.T


def energy_dims(ir: IR, energy: float) -> int:
    """Smallest width whose leading singular values keep ``energy`` of ``‖U Iᵀ‖²``."""
    if not 0 < energy <= 1:
        raise ValueError("energy must be in (0, 1]")
    _, _, _, s, _ = _spectrum(ir.tables["user"], ir.tables["item"])
    cum = np.cumsum(s ** 2) / np.sum(s ** 2)
    return int(min(np.searchsorted(cum, energy - 1e-12) + 1, s.size))


def spreading_rotation(dims: int, seed: int = 0) -> np.ndarray:
    """A random orthogonal ``dims × dims`` matrix (float64), the same for the same arguments:
    the Q of the QR of a seeded Gaussian matrix, signs fixed so that the draw is uniform."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((dims, dims)))
    return q * np.sign(np.diag(r))


def prune(ir: IR, dims: int, method: str = "svd", spread: bool = True) -> tuple[IR, PassReport]:
    """Reduce every table to ``dims`` dimensions with ``method`` (``svd`` or ``columns``);
    ``spread``: after ``svd``, rotate the kept space so that no coordinate dominates a row."""
    if method not in METHODS:
        raise ValueError(f"unknown pruning method {method!r}; choose one of {METHODS}")
    d = ir.dim
    if not 1 <= dims <= d:
        raise ValueError(f"dims must be between 1 and the current width {d}, got {dims}")
    notes = []
    if method == "svd":
        Ru, Ri, A, s, B = _spectrum(ir.tables["user"], ir.tables["item"])
        r = min(dims, s.size)  # fewer users or items than dims: the score matrix has rank < dims
        root = np.sqrt(s[:r])
        Mu = np.linalg.lstsq(Ru, A[:, :r] * root, rcond=None)[0]
        Mi = np.linalg.lstsq(Ri, B[:, :r] * root, rcond=None)[0]
        if r < dims:  # the remaining dimensions carry no score energy: zero columns
            Mu, Mi = (np.pad(M, ((0, 0), (0, dims - r))) for M in (Mu, Mi))
        if spread:
            Q = spreading_rotation(dims)
            Mu, Mi = Mu @ Q, Mi @ Q
        kept = float(np.sum(s[:dims] ** 2) / np.sum(s ** 2))
        notes.append(f"score-matrix energy kept: {kept:.4f}")

        def user_map(x: np.ndarray) -> np.ndarray:
            return (x.astype(np.float64) @ Mu).astype(np.float32)

        def item_map(x: np.ndarray) -> np.ndarray:
            return (x.astype(np.float64) @ Mi).astype(np.float32)
    else:
        importance = column_norms(ir.tables["user"]) * column_norms(ir.tables["item"])
        cols = np.sort(np.argsort(-importance)[:dims])

        def user_map(x: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(x[:, cols])

        item_map = user_map
    tables = {}
    for name, t in ir.tables.items():
        f = item_map if name == "item" else user_map
        tables[name] = map_rows(t, f, dims)
    new = ir.replace(tables=tables)
    params = {"dims": dims, "method": method, "from_dims": d}
    if method == "svd":
        params["spread"] = spread
    return logged(ir, new, "prune", params, notes)


class PruneDims(Pass):
    """Narrow every table to ``dims`` dimensions (see :func:`prune`).

    Args:
        dims (int): the width kept.
        method (str, optional): ``"svd"`` (rotate, then truncate) or ``"columns"``.
            (default: ``"svd"``)
        spread (bool, optional): ``svd``: rotate the kept space by a seeded random orthogonal
            matrix so that low-bit formats keep more of the scores. (default: :obj:`True`)
    """

    name = "prune"

    def __init__(self, dims: int, method: str = "svd", spread: bool = True) -> None:
        self.dims, self.method, self.spread = dims, method, spread

    def __call__(self, ir: IR) -> tuple[IR, PassReport]:
        return prune(ir, self.dims, self.method, self.spread)
