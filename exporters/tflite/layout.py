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
  signature* (24 B/item/signature); this layout stores 2 B/item once (a float16
  scale where exact, see below).
- dot scorer: the item table has zero rows appended up to a multiple of ``BLOCK`` above
  ``pad_index``; those slots are always in the exclusion scatter with twice the mask (and the
  largest row scale), so they rank after every item, masked ones included: the score vector
  needs no slice, splits evenly into blocks, and a top-k never returns a padding slot.
- int4 (``int4-item``: the item table; ``int4``: every table): converted as int8, then the
  flatbuffer is rewritten (:mod:`exporters.tflite.flatbuffer`): the item weights become an INT4
  FULLY_CONNECTED weight (per-tensor scale 1) and, for ``int4``, the gathered tables INT4 GATHER
  operands (odd widths padded with a zero column, sliced off after the CAST).
- ``int4-pq``: the item table as int4; the gathered tables as uint8 codes [rows + 1, M] (GATHER,
  CAST, plus each subspace's offset) into a [M * 256, S] codebook (GATHER_ND), then the real
  columns and the per-row scale (``runtime.quant.pq_decode``).
- per-row scales (int8 and int4) and codebooks: converted as float32 constants, then stored as
  float16 when that is exact (:func:`exporters.tflite.flatbuffer.store_half_scales`), each widened by a
  DEQUANTIZE of a constant, which the interpreter runs once.
"""

from __future__ import annotations

import numpy as np

from edgerec.ir import IR, Table
from exporters.weights import GATHERED, INT4_WEIGHTS

INTEGER_WEIGHTS = ("int8-per-row", *INT4_WEIGHTS)  # the converter's dynamic-range quantization
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


def padded_item_scale(ir: IR) -> np.ndarray:
    """The dot scorer's per-row item scale as the model holds it: the IR's scales, then the
    largest one for ``pad_index`` and the block padding (with twice the mask, below every
    item)."""
    scale = ir.tables["item"].scale
    out = np.full(padded_scores(ir.num_items), scale.max(), np.float32)
    out[: ir.num_items] = scale
    return out


def padded_row_scale(table: Table) -> np.ndarray:
    """A gathered table's per-row scale as the model holds it: float32, with the 0 of
    ``pad_index`` (the GATHER_ND operand of :mod:`exporters.tflite.graph`)."""
    return padded(table.scale.astype(np.float32))


def codebook_rows(table: Table) -> np.ndarray:
    """A product-coded table's codebook as the model holds it: [M * 256, S] float32 (the
    GATHER_ND operand of :mod:`exporters.tflite.graph`)."""
    m, k, s = table.codebook.shape
    return np.ascontiguousarray(table.codebook.reshape(m * k, s), np.float32)


def scale_vectors(ir: IR) -> list[np.ndarray]:
    """Every per-row scale vector a model of ``ir`` holds, as float32 in the model's layout."""
    if ir.scorer.get("kind") == "mlp":
        t = ir.tables.get("mlp_item")
        return [] if t is None or t.scale is None else [t.scale.astype(np.float32)]
    out = [padded_item_scale(ir)] if ir.tables["item"].scale is not None else []
    return out + [padded_row_scale(t) for t in _gathered(ir) if t.scale is not None]


def codebooks(ir: IR) -> list[np.ndarray]:
    """Every product codebook a model of ``ir`` holds, as float32 in the model's layout."""
    return [codebook_rows(t) for t in _gathered(ir) if t.codebook is not None]


def _gathered(ir: IR) -> list[Table]:
    return [ir.tables[n] for n in GATHERED if n in ir.serving_tables()]


def item_rows(ir: IR) -> np.ndarray:
    """The dot scorer's item table as the model holds it: the IR's values, then all-zero rows up
    to ``padded_scores`` (``pad_index`` and the block padding)."""
    a = ir.tables["item"].values
    rows = padded_scores(ir.num_items)
    return np.concatenate([a, np.zeros((rows - a.shape[0], *a.shape[1:]), a.dtype)])
