"""Structured pruning of embedding dimensions (and, optionally, of cold items).

Scores are inner products ``s = u · i``, so what must survive is the score matrix ``S = U Iᵀ``,
not any single column. The ``svd`` method rotates both sides so that ``S``'s energy sits in the
leading dimensions, then truncates: with ``U = Q_u R_u`` and ``I = Q_i R_i`` (thin QR),
``R_u R_iᵀ = A Σ Bᵀ`` gives ``S = (Q_u A)Σ(Q_i B)ᵀ``; keeping ``r`` singular values is the best
rank-``r`` approximation of ``S`` (Eckart–Young), computed from ``d × d`` matrices only.
The user-side map ``M_u = R_u⁻¹ A_r Σ_r^½`` is linear, so it is applied to every table that
feeds a user vector (``user``, ``history_item``, ``user_base``: the history fold stays exact);
the item table gets ``M_i = R_i⁻¹ B_r Σ_r^½``. The ``columns`` method (keep the ``r`` columns of
largest ``‖U_c‖·‖I_c‖``) is the naive baseline the report compares against.
"""

from __future__ import annotations

import numpy as np

from edgerec.ir import IR, PassReport, Table
from edgerec.passes.base import Pass, logged

METHODS = ("svd", "columns")
USER_SIDE = ("user", "history_item", "user_base")


def _spectrum(U: np.ndarray, I: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    Ru = np.linalg.qr(U.astype(np.float64), mode="r")
    Ri = np.linalg.qr(I.astype(np.float64), mode="r")
    A, s, Bt = np.linalg.svd(Ru @ Ri.T)
    return Ru, Ri, A, s, Bt.T


def energy_dims(ir: IR, energy: float) -> int:
    """Smallest width whose leading singular values keep ``energy`` of ``‖U Iᵀ‖²``."""
    if not 0 < energy <= 1:
        raise ValueError("energy must be in (0, 1]")
    _, _, _, s, _ = _spectrum(ir.tables["user"].dequantize(), ir.tables["item"].dequantize())
    cum = np.cumsum(s ** 2) / np.sum(s ** 2)
    return int(min(np.searchsorted(cum, energy - 1e-12) + 1, s.size))


def prune(ir: IR, dims: int, method: str = "svd") -> tuple[IR, PassReport]:
    """Reduce every table to ``dims`` dimensions with ``method`` (``svd`` or ``columns``)."""
    if method not in METHODS:
        raise ValueError(f"unknown pruning method {method!r}; choose one of {METHODS}")
    d = ir.dim
    if not 1 <= dims <= d:
        raise ValueError(f"dims must be between 1 and the current width {d}, got {dims}")
    U = ir.tables["user"].dequantize()
    I = ir.tables["item"].dequantize()
    notes = []
    if method == "svd":
        Ru, Ri, A, s, B = _spectrum(U, I)
        r = min(dims, s.size)  # fewer users or items than dims: the score matrix has rank < dims
        root = np.sqrt(s[:r])
        Mu = np.linalg.lstsq(Ru, A[:, :r] * root, rcond=None)[0]
        Mi = np.linalg.lstsq(Ri, B[:, :r] * root, rcond=None)[0]
        if r < dims:  # the remaining dimensions carry no score energy: zero columns
            Mu, Mi = (np.pad(M, ((0, 0), (0, dims - r))) for M in (Mu, Mi))
        kept = float(np.sum(s[:dims] ** 2) / np.sum(s ** 2))
        notes.append(f"score-matrix energy kept: {kept:.4f}")

        def user_map(x: np.ndarray) -> np.ndarray:
            return (x.astype(np.float64) @ Mu).astype(np.float32)

        def item_map(x: np.ndarray) -> np.ndarray:
            return (x.astype(np.float64) @ Mi).astype(np.float32)
    else:
        importance = np.linalg.norm(U, axis=0) * np.linalg.norm(I, axis=0)
        cols = np.sort(np.argsort(-importance)[:dims])

        def user_map(x: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(x[:, cols])

        item_map = user_map
    tables = {}
    for name, t in ir.tables.items():
        f = item_map if name == "item" else user_map
        tables[name] = Table(np.ascontiguousarray(f(t.dequantize()), np.float32))
    new = ir.replace(tables=tables)
    return logged(ir, new, "prune", {"dims": dims, "method": method, "from_dims": d}, notes)


class PruneDims(Pass):
    """Narrow every table to ``dims`` dimensions (see :func:`prune`).

    Args:
        dims (int): the width kept.
        method (str, optional): ``"svd"`` (rotate, then truncate) or ``"columns"``.
            (default: ``"svd"``)
    """

    name = "prune"

    def __init__(self, dims: int, method: str = "svd") -> None:
        self.dims, self.method = dims, method

    def __call__(self, ir: IR) -> tuple[IR, PassReport]:
        return prune(ir, self.dims, self.method)
