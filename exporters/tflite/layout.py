"""How the IR's tables are laid out in a TFLite file (shared by the graph, the rewrite and the check).

- float32: plain constants; float16: the converter's float16 mode (fp16 constants in the file,
  one DEQUANTIZE each, expanded to float32 once when the interpreter prepares).
- int8, gathered tables (``user``, ``history_item``): int8 constants, GATHER + CAST, times the
  gathered per-row scale. The scale vector is gathered with GATHER_ND because the dynamic-range
  quantizer would otherwise turn a >= 1024-element float32 GATHER operand into int8 (lossy).
- int8, item table (the scoring matmul): the *integers* ``q`` are given to the converter as a
  float32 constant with dynamic-range quantization on and per-channel quantization off. Every
  non-zero row of a per-row-symmetric table holds a ±127, so the per-tensor scale is exactly 1
  and the converter re-derives ``q`` bit for bit (checked after conversion). The per-row scale
  is applied after the mask as a float32 MUL, so the optimizer cannot fold it into the weights.
  Per-channel weights would store a float32 scale *and an int64 zero point per item in every
  signature* (24 B/item/signature); this layout stores 4 B/item once.
- dot scorer: the item table has zero rows appended up to a multiple of ``BLOCK`` above
  ``pad_index``; those slots are always in the exclusion scatter with twice the mask (and the
  largest row scale), so they rank after every item, masked ones included: the score vector
  needs no slice, splits evenly into blocks, and a top-k never returns a padding slot.
- int4 (``int4-item``: the item table; ``int4``: every table): converted as int8, then the
  flatbuffer is rewritten (:mod:`exporters.tflite.flatbuffer`): the item weights become an INT4
  FULLY_CONNECTED weight (per-tensor scale 1) and, for ``int4``, the gathered tables INT4 GATHER
  operands (odd widths padded with a zero column, sliced off after the CAST).
"""

from __future__ import annotations

import numpy as np

from edgerec.errors import ExportError
from edgerec.ir import IR, Table

MASK = np.float32(-1e9)
INT4_ITEM = "int8-per-row+int4-item"  # the item matmul's weights in int4, gathered tables int8
INT4 = "int4-per-row"  # every table in int4: the matmul's weights and the gathered tables
INT4_WEIGHTS = (INT4_ITEM, INT4)  # the item matmul stored as an INT4 tensor
INTEGER_WEIGHTS = ("int8-per-row", *INT4_WEIGHTS)  # the converter's dynamic-range quantization
GATHERED = ("user", "history_item")  # the row-gathered tables a dot-scorer model stores whole
BLOCK = 64  # scores per block of the two-stage top-k; the item table is padded to a multiple
BLOCKS_PER_K = 4  # the two-stage top-k is used from k * BLOCKS_PER_K blocks up


def padded_scores(num_items: int) -> int:
    """Length of a dot scorer's score vector: the items, ``pad_index``, then zero rows up to a
    multiple of ``BLOCK``."""
    return -(-(num_items + 1) // BLOCK) * BLOCK


def uses_block_top_k(num_items: int, k: int) -> bool:
    return padded_scores(num_items) // BLOCK >= BLOCKS_PER_K * k


def padded(a: np.ndarray) -> np.ndarray:
    """``a`` with one extra all-zero row (or 0 entry) at ``pad_index``."""
    return np.concatenate([a, np.zeros((1, *a.shape[1:]), a.dtype)])


def stored_rows(table: Table) -> np.ndarray:
    """A gathered integer table as the model stores it: the IR's rows, the all-zero row at
    ``pad_index``, and for int4 an even width (a zero column the graph slices off again:
    LiteRT's GATHER reads INT4 rows as whole bytes, so an odd row would start mid-byte)."""
    v = padded(table.values)
    if table.bits == 4 and v.shape[1] % 2:
        v = np.concatenate([v, np.zeros((v.shape[0], 1), v.dtype)], axis=1)
    return v


def item_rows(ir: IR) -> np.ndarray:
    """The dot scorer's item table as the model holds it: the IR's values, then all-zero rows up
    to ``padded_scores`` (``pad_index`` and the block padding)."""
    a = ir.tables["item"].values
    rows = padded_scores(ir.num_items)
    return np.concatenate([a, np.zeros((rows - a.shape[0], *a.shape[1:]), a.dtype)])


def weights_kind(ir: IR) -> str:
    kinds = {ir.tables[n].dtype for n in ir.serving_tables()}
    if len(kinds) != 1:
        raise ExportError(f"tables of mixed dtypes {sorted(kinds)} are not supported; "
                          "quantize all serving tables with one scheme")
    kind = {"int8": "int8-per-row", "float16": "float16", "float32": "float32"}[kinds.pop()]
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
        raise ExportError(f"tables of mixed widths {bits}: TFLite stores int4 for the item table "
                          "alone (int4-item) or for every table (int4)")
    return kind


def pack_int4(q: np.ndarray) -> bytes:
    """Values in [-8, 7], flattened row-major, two a byte, the first in the low nibble (the
    layout TFLite's INT4 tensors use; the parity check would catch any other)."""
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
