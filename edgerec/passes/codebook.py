r"""Product quantization of a gathered table: calibration (the codebook) apart from encoding.

A row :math:`x` is stored as its direction, product-quantized, times a per-row scale:

.. math::
    \hat x = s \, [c^{(1)}_{k_1}, \dots, c^{(M)}_{k_M}], \qquad
    k_m = \arg\min_k \lVert x^{(m)}/\lVert x \rVert - c^{(m)}_k \rVert, \qquad
    s = \frac{x \cdot \hat d}{\hat d \cdot \hat d}

where :math:`x^{(m)}` is the :math:`m`-th block of consecutive coordinates
(``runtime.quant.pq_sizes``), :math:`c^{(m)}` its 256 centroids (k-means on the unit rows) and
:math:`\hat d` the decoded direction. Unit rows, because shared centroids trained on raw rows
follow the long (popular) rows and flatten the short ones; the per-row scale keeps each row's
length, as int4's per-row scale does (docs/compression.md, "Below 4 bits": plain PQ lost 3 to 18
points where this lost none).

The k-means is plain Lloyd in numpy with a seeded start, on at most ``SAMPLE`` rows, distances
summed coordinate by coordinate (no BLAS), so the codes are the same on every machine; the rows
are then encoded block by block, so a memory-mapped table is never read whole. The
centroids and the scales are rounded to float16 before the rows are encoded, so a file stores
them in 2 bytes exactly (``runtime.quant.half_scale``, ``half_codebook``).
"""

from __future__ import annotations

import numpy as np

from edgerec.ir import Table
from runtime.quant import CENTROIDS, pq_codebook_shape, pq_decode, pq_sizes, round_scale_to_half

SAMPLE = 16384  # rows the centroids are fitted on: 64 per centroid
ITERATIONS = 20
_BLOCK = 8192  # rows encoded at a time (a [rows, 256] distance block)


def _nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid for each row of ``x`` [n, s] (ties: the lowest index)."""
    out = np.empty(x.shape[0], np.int64)
    for start in range(0, x.shape[0], _BLOCK):
        part = x[start:start + _BLOCK]
        dist = np.zeros((part.shape[0], centroids.shape[0]), np.float32)
        for j in range(x.shape[1]):
            dist += (part[:, j:j + 1] - centroids[None, :, j]) ** 2
        out[start:start + _BLOCK] = dist.argmin(axis=1)
    return out


def kmeans(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``CENTROIDS`` centroids [256, s] of the rows ``x`` [n, s], started from distinct rows
    drawn with ``rng`` (fewer distinct rows than centroids: the rows themselves, the rest
    repeating the first)."""
    distinct = np.unique(x, axis=0)
    if distinct.shape[0] <= CENTROIDS:
        pad = np.repeat(distinct[:1], CENTROIDS - distinct.shape[0], axis=0)
        return np.concatenate([distinct, pad]).astype(np.float32)
    c = distinct[np.sort(rng.choice(distinct.shape[0], CENTROIDS, replace=False))].astype(np.float32)
    for _ in range(ITERATIONS):
        assign = _nearest(x, c)
        counts = np.bincount(assign, minlength=CENTROIDS)
        sums = np.zeros_like(c)
        np.add.at(sums, assign, x)
        empty = counts == 0
        c = np.where(empty[:, None], c, sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
    return c


def calibrate(table: Table, subspaces: int, seed: int = 0) -> np.ndarray:
    """The codebook [M, 256, S] of ``table`` [rows, d]: k-means per subspace on the unit rows (at
    most ``SAMPLE`` of them, drawn per subspace), narrower subspaces zero-padded to the widest,
    rounded to float16."""
    rows, width = table.shape
    shape = pq_codebook_shape(width, subspaces)
    if shape is None:
        raise ValueError(f"{subspaces} codes cannot cover a {width}-wide row")
    whole = _unit(table.dequantize()) if rows <= SAMPLE else None
    book = np.zeros(shape, np.float32)
    col = 0
    for m, size in enumerate(pq_sizes(width, subspaces)):
        rng = np.random.default_rng(seed + m)
        unit = whole if whole is not None else _unit(
            table.take(np.sort(rng.choice(rows, SAMPLE, replace=False))))
        book[m, :, :size] = kmeans(np.ascontiguousarray(unit[:, col:col + size]), rng)
        col += size
    return book.astype(np.float16).astype(np.float32)


def encode(table: Table, codebook: np.ndarray) -> Table:
    """``table`` as codes of ``codebook`` with the least-squares per-row scale, block by block
    (a memory-mapped table is never read whole)."""
    rows, width = table.shape
    m = codebook.shape[0]
    codes = np.empty((rows, m), np.uint8)
    scale = np.empty(rows, np.float32)
    for start, stop, v in table.blocks():
        unit = _unit(v)
        col = 0
        for j, size in enumerate(pq_sizes(width, m)):
            codes[start:stop, j] = _nearest(np.ascontiguousarray(unit[:, col:col + size]),
                                            codebook[j, :, :size])
            col += size
        d = pq_decode(codes[start:stop], codebook, width)
        fit = (v * d).sum(axis=1) / np.maximum((d * d).sum(axis=1), np.float32(1e-30))
        scale[start:stop] = round_scale_to_half(np.maximum(fit, 0))
    return Table(codes, scale, codebook=codebook, width=width)


def quantize_rows_pq(table: Table, subspaces: int, seed: int = 0) -> Table:
    """Calibrate a codebook on ``table`` and encode it with it."""
    return encode(table, calibrate(table, subspaces, seed))


def _unit(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, np.float32)
    length = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.where(length > 0, length, 1)).astype(np.float32)
