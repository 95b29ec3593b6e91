"""Post-training quantization of the embedding tables.

int8 is symmetric per row: each row gets ``scale = max|row| / 127`` and ``q = round(v / scale)``.
Per-row is the natural granularity here: a row is one item (or user), the item table is the
weight matrix of the scoring matmul with one output channel per item, and a gather returns
whole rows, so every consumer sees exactly one scale per row. The largest element of each row
maps to ±127 exactly, which is what lets a converter that re-derives per-channel scales (the
TFLite dynamic-range quantizer) reproduce our integers bit for bit.
"""

from __future__ import annotations

import numpy as np

from edgerec.ir import IR, PassReport, Table

SCHEMES = ("int8", "float16", "none")


def quantize_rows_int8(values: np.ndarray) -> Table:
    """Symmetric per-row int8; an all-zero row gets scale 1."""
    v = np.asarray(values, dtype=np.float32)
    amax = np.abs(v).max(axis=1)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(v / scale[:, None]), -127, 127).astype(np.int8)
    return Table(q, scale)


def quantize_table(table: Table, scheme: str) -> Table:
    values = table.dequantize()
    if scheme == "int8":
        return quantize_rows_int8(values)
    if scheme == "float16":
        return Table(values.astype(np.float16))
    if scheme == "none":
        return Table(values)
    raise ValueError(f"unknown quantization scheme {scheme!r}; choose one of {SCHEMES}")


def quantize(ir: IR, scheme: str = "int8") -> tuple[IR, PassReport]:
    """Quantize every table of ``ir`` with ``scheme`` (``int8``, ``float16`` or ``none``)."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown quantization scheme {scheme!r}; choose one of {SCHEMES}")
    tables = {name: quantize_table(t, scheme) for name, t in ir.tables.items()}
    new = ir.replace(tables=tables)
    report = PassReport(name="quantize", params={"scheme": scheme},
                        bytes_before=ir.nbytes, bytes_after=new.nbytes)
    return new.with_pass(report), report
