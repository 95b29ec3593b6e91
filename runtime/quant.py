"""Numeric definitions of the quantized scoring arithmetic, in numpy.

An int8 artifact scores items as ``scores = (q_items @ u) * item_scale``. The targets do not run
that product in float: TFLite's dynamic-range FULLY_CONNECTED and ONNX Runtime's
``DynamicQuantizeLinear`` + ``MatMulInteger`` quantize the float user vector ``u`` on the fly,
multiply in integers, then rescale. These functions reproduce each scheme exactly, so the numpy
reference backend and the exporters' parity check can demand identical top-k indices rather
than "close" scores.

``activations`` names the scheme (the manifest's ``quantization.activations``):
- ``"float"``: no activation quantization; ``(q.astype(f32) @ u) * scale`` in float32.
- ``"dynamic-int8-symmetric"``: TFLite hybrid kernel, symmetric per-tensor int8 input.
- ``"dynamic-int8-asymmetric"``: TFLite hybrid kernel with ``asymmetric_quantize_inputs``.
- ``"dynamic-uint8-asymmetric"``: ONNX ``DynamicQuantizeLinear`` (uint8, zero point).
"""

from __future__ import annotations

import numpy as np

ACTIVATIONS = (
    "float",
    "dynamic-int8-symmetric",
    "dynamic-int8-asymmetric",
    "dynamic-uint8-asymmetric",
)


# Per-row scales are stored as float16 where that is lossless: every scale a normal float16
# (subnormals would lose relative precision) that converts back to the same float32. The quantize
# pass rounds scales to such values, so a file stores 2 bytes a row instead of 4 and the graph
# widens them to float32 exactly (TFLite DEQUANTIZE, ONNX Cast) once, when it is loaded.
HALF_MIN_NORMAL = float(np.finfo(np.float16).tiny)
HALF_MAX = float(np.finfo(np.float16).max)


def half_scale(scale: np.ndarray) -> np.ndarray | None:
    """``scale`` (float32) as float16 when that is exact and every non-zero value normal (the
    0 a model file stores at ``pad_index`` is exact too), else None."""
    s = np.asarray(scale)
    if s.dtype != np.float32 or not s.size or not np.all(np.isfinite(s)):
        return None
    a = np.abs(s[s != 0])
    if a.size and (float(a.min()) < HALF_MIN_NORMAL or float(a.max()) > HALF_MAX):
        return None
    half = s.astype(np.float16)
    return half if np.array_equal(half.astype(np.float32), s) else None


def half_codebook(codebook: np.ndarray) -> np.ndarray | None:
    """A product codebook (float32) as float16 when every value converts back exactly. Unlike
    a scale, a centroid coordinate may be a float16 subnormal: it is a copied value, not a
    multiplier, and the calibration rounds it to float16 (subnormals included) already."""
    c = np.asarray(codebook)
    if c.dtype != np.float32 or not c.size or not np.all(np.isfinite(c)):
        return None
    half = c.astype(np.float16)
    return half if np.array_equal(half.astype(np.float32), c) else None


def round_scale_to_half(scale: np.ndarray) -> np.ndarray:
    """Float32 scales rounded to the nearest float16 where they are within float16's normal
    range (the others unchanged), so that :func:`half_scale` stores them exactly."""
    s = np.asarray(scale, dtype=np.float32)
    inside = (s >= HALF_MIN_NORMAL) & (s <= HALF_MAX)
    return np.where(inside, s.astype(np.float16).astype(np.float32), s).astype(np.float32)


# Product-quantized tables (``int4-pq``'s gathered tables, docs/compression.md): each row is cut
# into M subspaces of consecutive coordinates (the first ``width % M`` one wider), each stored
# as a one-byte index into that subspace's 256 centroids, times a per-row scale. The codebook is
# [M, 256, S] float32 (S the widest subspace; narrower ones zero-padded), its values exact in
# float16 so a file stores 2 bytes each. Decoding copies centroids, then multiplies by the
# scale: the graphs do the same, so the rows are identical everywhere.
CENTROIDS = 256


def pq_sizes(width: int, subspaces: int) -> list[int]:
    """The widths of ``subspaces`` consecutive subspaces covering ``width`` coordinates."""
    base, extra = divmod(width, subspaces)
    return [base + 1] * extra + [base] * (subspaces - extra)


def pq_codebook_shape(width: int, subspaces: int) -> tuple[int, int, int] | None:
    """The [M, 256, S] shape of the codebook of ``subspaces`` codes of a ``width``-wide row (S the
    widest subspace), or None when no such codes exist (M outside 1..width)."""
    if not 0 < subspaces <= width:
        return None
    return (subspaces, CENTROIDS, -(-width // subspaces))


def pq_columns(width: int, subspaces: int, widest: int) -> np.ndarray:
    """For each of the ``width`` coordinates, its column in the decoded [M * S] centroid rows."""
    return np.concatenate([m * widest + np.arange(size) for m, size in
                           enumerate(pq_sizes(width, subspaces))]).astype(np.int32)


def pq_decode(codes: np.ndarray, codebook: np.ndarray, width: int) -> np.ndarray:
    """Float32 rows [..., width] of uint8 ``codes`` [..., M] (before the per-row scale)."""
    m, k, s = codebook.shape
    flat = codebook.reshape(m * k, s)
    rows = flat[codes.astype(np.int64) + np.arange(m, dtype=np.int64) * k]  # [..., M, S]
    rows = rows.reshape(*codes.shape[:-1], m * s)
    return np.ascontiguousarray(rows[..., pq_columns(width, m, s)], dtype=np.float32)


class ProductCodes:
    """A product-quantized table's codes with what decodes them: indexing (an int array, an
    int or a slice of rows) returns the decoded float32 rows, so the reference backend treats
    it as it treats an array of values."""

    def __init__(self, codes: np.ndarray, codebook: np.ndarray, width: int) -> None:
        self.codes, self.codebook, self.width = codes, codebook, int(width)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.codes.shape[0]), self.width)

    def head(self, rows: int) -> ProductCodes:
        """The first ``rows`` rows, still coded."""
        return ProductCodes(self.codes[:rows], self.codebook, self.width)

    def __getitem__(self, idx: object) -> np.ndarray:
        codes = self.codes[idx]  # type: ignore[index]
        return pq_decode(codes, self.codebook, self.width)


def dequantize_rows(values: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
    """Float32 rows of a table (``q * scale`` per row for int8; for product codes ``values`` is
    ``ProductCodes[idx]``, the decoded rows)."""
    out = values.astype(np.float32)
    if scale is not None:
        out *= scale.astype(np.float32)[..., None]
    return out


def quantize_int8_symmetric(x: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """TFLite ``SymmetricQuantizeFloats``: ``q = round(x * (127 / max|x|))``, halves away."""
    x = np.asarray(x, dtype=np.float32)
    rng = np.float32(np.max(np.abs(x))) if x.size else np.float32(0)
    if rng == 0:
        return np.zeros(x.shape, np.int8), np.float32(1.0)
    inv = np.float32(127.0) / rng
    q = np.clip(_round_half_away(x * inv), -127, 127).astype(np.int8)
    return q, np.float32(rng / np.float32(127.0))


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """C ``round``/``TfLiteRound``: halves go away from zero (numpy rounds them to even)."""
    x = np.asarray(x)
    t = np.trunc(x)
    return t + np.sign(x) * (np.abs(x - t) >= 0.5)


def quantize_int8_asymmetric(x: np.ndarray) -> tuple[np.ndarray, np.float32, np.int32]:
    """TFLite ``AsymmetricQuantizeFloats`` exactly as ai-edge-litert 2.3's builtin kernel does it.

    Range ``[rmin, rmax]`` widened to include 0, in float32. Scale in double from a *float32*
    subtraction: ``(double)(rmax - rmin) / 255``; the zero point, in double, from whichever end
    loses less, nudged into [-128, 127] and rounded half away from zero. The kernel stores the
    scale as float32 and computes ``q = zp + round(x * (1 / scale))`` (halves away from zero),
    clamped to int8. Each choice was pinned down against the interpreter; tests/test_quant.py
    checks hundreds of full score vectors bit for bit.
    """
    f = np.float32
    x = np.asarray(x, dtype=f)
    if x.size == 0:
        return np.zeros(x.shape, np.int8), f(1.0), np.int32(0)
    rmin, rmax = min(f(x.min()), f(0)), max(f(x.max()), f(0))
    if rmin == rmax:
        return np.zeros(x.shape, np.int8), f(1.0), np.int32(0)
    sd = float(f(rmax - rmin)) / 255.0  # float subtraction, double division, as the C++
    scale = f(sd)
    zp_from_min, zp_from_max = -128.0 - float(rmin) / sd, 127.0 - float(rmax) / sd
    zp_min_err = 128.0 + abs(float(rmin) / sd)
    zp_max_err = 127.0 + abs(float(rmax) / sd)
    zp_d = zp_from_min if zp_min_err < zp_max_err else zp_from_max
    zp = -128 if zp_d <= -128 else 127 if zp_d >= 127 else int(_round_half_away(np.float64(zp_d)))
    q = np.clip(zp + _round_half_away(x * (f(1.0) / scale)), -128, 127).astype(np.int8)
    return q, f(scale), np.int32(zp)


def quantize_uint8_asymmetric(x: np.ndarray) -> tuple[np.ndarray, np.float32, np.uint8]:
    """ONNX ``DynamicQuantizeLinear``: uint8, range widened to include 0, round half to even."""
    x = np.asarray(x, dtype=np.float32)
    rmin = np.float32(min(float(x.min()), 0.0))
    rmax = np.float32(max(float(x.max()), 0.0))
    scale = np.float32((rmax - rmin) / np.float32(255.0))
    if scale == 0:
        return np.zeros(x.shape, np.uint8), np.float32(0.0), np.uint8(0)
    zp = np.uint8(np.clip(np.round(np.float32(0.0) - rmin / scale), 0, 255))
    q = np.clip(np.round(x / scale) + np.float32(zp), 0, 255).astype(np.uint8)
    return q, scale, zp


def score_items(u: np.ndarray, values: np.ndarray, scale: np.ndarray | None,
                activations: str = "float") -> np.ndarray:
    """Scores of every item for one user vector ``u`` (float32 [d]) -> float32 [I].

    ``values`` is the item table ([I, d], int8/float16/float32), ``scale`` its per-row scale
    (int8 only). For int8 the order of the float operations is the exporters' graphs':
    ``(float(acc) * input_scale) * item_scale`` (the item weights are stored with a per-tensor
    scale of exactly 1 and the per-row scale is a separate multiply), so the result is
    bit-identical to the TFLite builtin hybrid FULLY_CONNECTED kernel and to ONNX Runtime's
    ``DynamicQuantizeLinear`` + ``MatMulInteger`` graph.
    """
    u = np.asarray(u, dtype=np.float32)
    if activations not in ACTIVATIONS:
        raise ValueError(f"unknown activation scheme {activations!r}")
    if scale is None:
        return values.astype(np.float32) @ u
    item_scale = scale.astype(np.float32)
    if values.dtype != np.int8 or activations == "float":
        return (values.astype(np.float32) @ u) * item_scale
    wi = values.astype(np.int32)
    if activations == "dynamic-int8-symmetric":
        q, s = quantize_int8_symmetric(u)
        acc = wi @ q.astype(np.int32)
    elif activations == "dynamic-int8-asymmetric":
        q, s, zp = quantize_int8_asymmetric(u)
        acc = wi @ q.astype(np.int32) - zp * wi.sum(axis=1)
    else:
        q, s, zp = quantize_uint8_asymmetric(u)
        acc = wi @ (q.astype(np.int32) - np.int32(zp))
    return (acc.astype(np.float32) * np.float32(s)) * item_scale
