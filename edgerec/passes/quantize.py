"""Post-training quantization of the embedding tables.

int8 is symmetric per row: each row gets ``scale = max|row| / 127`` and ``q = round(v / scale)``.
Per-row is the natural granularity here: a row is one item (or user), the item table is the
weight matrix of the scoring matmul with one output channel per item, and a gather returns
whole rows, so every consumer sees exactly one scale per row. The largest element of each row
maps to ±127 exactly, which is what lets a converter that re-derives per-channel scales (the
TFLite dynamic-range quantizer) reproduce our integers bit for bit.

Scales are rounded to float16 (within its normal range) before the integers are computed from
them, so the model files store 2 bytes a row and widen them exactly (``runtime.quant.half_scale``);
the rounding moves a scale by at most 2^-11 of itself, well inside one int4 or int8 step, and
the largest element of an int8 row still rounds to ±127.
"""

from __future__ import annotations

import numpy as np

from edgerec.ir import IR, PassReport, Table
from edgerec.passes.base import Pass, logged
from edgerec.passes.codebook import quantize_rows_pq
from edgerec.schemes import DOT_SCORER_ONLY, SCHEMES
from runtime.quant import half_scale, round_scale_to_half

INT4_MAX = 7
# int4-pq: bits a coordinate of each gathered table takes in product codes (one byte per 8 / bits
# coordinates; int4 takes 4). 3 bits for both: on Gowalla, 2 bits
# for history rows cost history mode 1.0-1.4% where 3 bits cost 0.3-0.5% (docs/compression.md).
PQ_CODE_BITS = {"user": 3, "history_item": 3}
# Clipping ratios tried per row by the int4 quantizer (1.0 = no clipping, the int8 rule).
_INT4_CLIP = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6)


def quantize_rows_int8(values: np.ndarray) -> Table:
    """Symmetric per-row int8; an all-zero row gets scale 1."""
    v = np.asarray(values, dtype=np.float32)
    amax = np.abs(v).max(axis=1)
    scale = round_scale_to_half(np.where(amax > 0, amax / 127.0, 1.0))
    q = np.clip(np.rint(v / scale[:, None]), -127, 127).astype(np.int8)
    return Table(q, scale)


def _int4_scales(v: np.ndarray) -> np.ndarray:
    """Per-row (or per-group: ``v`` is [..., n]) scale minimising the squared error over a few
    clipping ratios: with 15 levels, clipping the largest value usually beats covering it."""
    amax = np.abs(v).max(axis=-1)
    best = round_scale_to_half(np.where(amax > 0, amax / INT4_MAX, 1.0))
    best_err = np.full(amax.shape, np.inf)
    for c in _INT4_CLIP:
        scale = round_scale_to_half(np.where(amax > 0, c * amax / INT4_MAX, 1.0))
        q = np.clip(np.rint(v / scale[..., None]), -INT4_MAX, INT4_MAX)
        err = ((q * scale[..., None] - v) ** 2).sum(axis=-1)
        better = err < best_err
        best = np.where(better, scale, best)
        best_err = np.where(better, err, best_err)
    return best


def quantize_rows_int4(values: np.ndarray) -> Table:
    """Symmetric per-row int4: values in [-7, 7] held as int8, ``bits=4`` so that byte counts are
    those of the packed table (two values per byte) plus one float32 scale per row."""
    v = np.asarray(values, dtype=np.float32)
    scale = _int4_scales(v)
    q = np.clip(np.rint(v / scale[:, None]), -INT4_MAX, INT4_MAX).astype(np.int8)
    return Table(q, scale, bits=4)


def int4_groups_roundtrip(values: np.ndarray, group: int) -> tuple[np.ndarray, int]:
    """Per-group int4 (``group`` consecutive columns share a scale, as ONNX Runtime's
    ``GatherBlockQuantized``/``MatMulNBits`` blocks do): the dequantized values and the packed
    byte count (a scale in float16 where exact, as per-row scales are stored). A measurement
    helper; the IR stores int4 per row only."""
    v = np.asarray(values, dtype=np.float32)
    if group < 1:
        raise ValueError(f"group must be >= 1, got {group}")
    rows, cols = v.shape
    blocks = -(-cols // group)
    padded = np.zeros((rows, blocks * group), np.float32)
    padded[:, :cols] = v
    g = padded.reshape(rows, blocks, group)
    scale = _int4_scales(g)
    q = np.clip(np.rint(g / scale[..., None]), -INT4_MAX, INT4_MAX)
    out = (q * scale[..., None]).reshape(rows, -1)[:, :cols].astype(np.float32)
    scale_bytes = 2 if half_scale(scale.ravel()) is not None else 4
    return out, rows * ((cols + 1) // 2) + rows * blocks * scale_bytes


def pq_subspaces(name: str, width: int) -> int:
    """How many one-byte codes ``int4-pq`` stores a ``width``-wide row of table ``name`` in."""
    return max(1, min(width, round(width * PQ_CODE_BITS[name] / 8)))


def quantize_table(table: Table, scheme: str) -> Table:
    """``table`` in ``scheme``, written block by block into a preallocated output (every
    scheme is per row, so blocks give the same values as the whole table at once). A read-only
    memory-mapped float32 table stays mapped under ``"none"``: nothing would change."""
    if scheme not in ("int8", "int4", "float16", "none"):
        raise ValueError(f"unknown quantization scheme {scheme!r}; choose one of {SCHEMES}")
    values = table.values
    if (scheme == "none" and isinstance(values, np.memmap) and not values.flags.writeable
            and table.scale is None and values.dtype == np.float32):
        return table
    rows, cols = table.shape
    dtype = {"int8": np.int8, "int4": np.int8, "float16": np.float16, "none": np.float32}[scheme]
    out = np.empty((rows, cols), dtype)
    scale = np.empty(rows, np.float32) if scheme in ("int8", "int4") else None
    for start, stop, block in table.blocks():
        if scheme in ("int8", "int4"):
            part = (quantize_rows_int8 if scheme == "int8" else quantize_rows_int4)(block)
            out[start:stop], scale[start:stop] = part.values, part.scale  # type: ignore[index]
        else:
            out[start:stop] = block
    return Table(out, scale, bits=4 if scheme == "int4" else None)


def quantize(ir: IR, scheme: str = "int8") -> tuple[IR, PassReport]:
    """Quantize every table of ``ir`` with ``scheme`` (``int8``, ``float16``, ``none``, ``int4``,
    ``int4-item``: int4 for the dot scorer's ``item`` table, int8 for the rest, or ``int4-pq``:
    int4 for the rest and product codes for the gathered tables, see :mod:`~edgerec.passes.codebook`)."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown quantization scheme {scheme!r}; choose one of {SCHEMES}")
    if scheme in DOT_SCORER_ONLY and ir.scorer.get("kind") == "mlp":
        raise ValueError(f"{scheme} quantizes the dot scorer's tables; this IR scores with an MLP")
    if scheme == "int4-item":
        tables = {name: quantize_table(t, "int4" if name == "item" else "int8")
                  for name, t in ir.tables.items()}
    elif scheme == "int4-pq":
        tables = {name: quantize_rows_pq(t, pq_subspaces(name, t.shape[1]))
                  if name in PQ_CODE_BITS else quantize_table(t, "int4")
                  for name, t in ir.tables.items()}
    else:
        tables = {name: quantize_table(t, scheme) for name, t in ir.tables.items()}
    new = ir.replace(tables=tables)
    return logged(ir, new, "quantize", {"scheme": scheme})


class Quantize(Pass):
    """Quantize every table with ``scheme`` (see :func:`quantize`).

    Args:
        scheme (str): ``"int8"``, ``"int4-item"``, ``"int4"``, ``"int4-pq"``, ``"float16"`` or ``"none"``
            (float32).
    """

    name = "quantize"

    def __init__(self, scheme: str) -> None:
        self.scheme = scheme

    def __call__(self, ir: IR) -> tuple[IR, PassReport]:
        return quantize(ir, self.scheme)
