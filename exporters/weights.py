"""How an IR's serving tables are stored in a model file, as the manifest's
``quantization.weights`` names it, and the int4 packing the TFLite and ONNX files share."""

from __future__ import annotations

import numpy as np

from edgerec.errors import ExportError
from edgerec.ir import IR
from runtime.artifact import GATHERED

BY_DTYPE = {"int8": "int8-per-row", "float16": "float16", "float32": "float32"}
INT4_ITEM = "int8-per-row+int4-item"  # the item table (the scoring matmul) in int4, the rest int8
INT4 = "int4-per-row"  # every table in int4
INT4_PQ = "int4-per-row+pq-gathered"  # the item table in int4, the gathered tables product-coded
INT4_WEIGHTS = (INT4_ITEM, INT4, INT4_PQ)


def weights_kind(ir: IR) -> str:
    """The ``quantization.weights`` of ``ir``'s serving tables: one dtype for all, and int4
    either for the item table alone or for every table (dot scorer only), or the int4 item table
    with product-coded gathered tables."""
    coded = [n for n in ir.serving_tables() if ir.tables[n].codebook is not None]
    if coded:
        rest = [n for n in ir.serving_tables() if n not in coded]
        if ir.scorer.get("kind") != "dot" or any(ir.tables[n].bits != 4 for n in rest):
            raise ExportError(f"product-coded tables {coded} are exported beside int4 tables of a dot "
                              "scorer only (quantize with int4-pq)")
        return INT4_PQ
    kinds = {ir.tables[n].dtype for n in ir.serving_tables()}
    if len(kinds) != 1:
        raise ExportError(f"tables of mixed dtypes {sorted(kinds)} are not supported; "
                          "quantize all serving tables with one scheme")
    kind = BY_DTYPE[kinds.pop()]
    if kind != "int8-per-row":
        return kind
    bits = {n: ir.tables[n].bits for n in ir.serving_tables()}
    if ir.scorer.get("kind") == "mlp":
        if 4 in bits.values():
            raise ExportError("int4 tables are exported for the dot scorer only; this model scores "
                              "with an MLP head (quantize it with int8)")
        return kind
    gathered = [bits[n] == 4 for n in GATHERED if n in bits]
    if bits["item"] == 4 and all(gathered):
        return INT4
    if bits["item"] == 4 and not any(gathered):
        return INT4_ITEM
    if 4 in bits.values():
        raise ExportError(f"tables of mixed widths {bits}: int4 is stored for the item table "
                          "alone (int4-item) or for every table (int4)")
    return kind


def pack_int4(q: np.ndarray) -> bytes:
    """Values in [-8, 7], flattened row-major, two a byte, the first in the low nibble (the
    layout of TFLite's and ONNX's INT4 tensors; the parity checks would catch any other)."""
    flat = np.asarray(q).ravel()
    if flat.size and (flat.min() < -8 or flat.max() > 7):
        raise ExportError(f"int4 values must lie in [-8, 7], got [{flat.min()}, {flat.max()}]")
    flat = flat.astype(np.int8)
    if flat.size % 2:
        flat = np.concatenate([flat, np.zeros(1, np.int8)])
    nib = (flat.astype(np.uint8) & 0x0F)
    return (nib[0::2] | (nib[1::2] << 4)).astype(np.uint8).tobytes()


def unpack_int4(data: bytes, count: int) -> np.ndarray:
    """The ``count`` signed values of a packed INT4 buffer (low nibble first), as int8."""
    raw = np.frombuffer(data, np.uint8)
    nib = np.empty(raw.size * 2, np.int16)
    nib[0::2], nib[1::2] = raw & 0x0F, raw >> 4
    return np.where(nib > 7, nib - 16, nib)[:count].astype(np.int8)
