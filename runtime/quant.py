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


def dequantize_rows(values: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
    """Float32 rows of a table (``q * scale`` per row for int8)."""
    out = values.astype(np.float32)
    if scale is not None:
        out *= scale.astype(np.float32)[..., None]
    return out


def quantize_int8_symmetric(x: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """TFLite ``SymmetricQuantizeFloats``: ``q = round(x * (127 / max|x|))``."""
    x = np.asarray(x, dtype=np.float32)
    rng = np.float32(np.max(np.abs(x))) if x.size else np.float32(0)
    if rng == 0:
        return np.zeros(x.shape, np.int8), np.float32(1.0)
    inv = np.float32(127.0) / rng
    q = np.clip(np.round(x * inv), -127, 127).astype(np.int8)
    return q, np.float32(rng / np.float32(127.0))


def quantize_int8_asymmetric(x: np.ndarray) -> tuple[np.ndarray, np.float32, np.int32]:
    """TFLite ``AsymmetricQuantizeFloats`` (range widened to include 0, int8 with zero point)."""
    x = np.asarray(x, dtype=np.float32)
    rmin = np.float32(min(float(x.min()), 0.0))
    rmax = np.float32(max(float(x.max()), 0.0))
    if rmin == rmax:
        return np.zeros(x.shape, np.int8), np.float32(1.0), np.int32(0)
    qmin, qmax = np.float64(-128), np.float64(127)
    scale = (np.float64(rmax) - np.float64(rmin)) / (qmax - qmin)
    zp_from_min = qmin - np.float64(rmin) / scale
    zp_from_max = qmax - np.float64(rmax) / scale
    zp_min_err = abs(qmin) + abs(np.float64(rmin) / scale)
    zp_max_err = abs(qmax) + abs(np.float64(rmax) / scale)
    zp_d = zp_from_min if zp_min_err < zp_max_err else zp_from_max
    zp = np.int32(np.clip(np.round(zp_d), qmin, qmax))
    scale32 = np.float32(scale)
    inv = np.float32(1.0) / scale32
    q = np.clip(zp + np.round(x * inv), -128, 127).astype(np.int8)
    return q, scale32, zp


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
    (int8 only).
    """
    u = np.asarray(u, dtype=np.float32)
    if activations not in ACTIVATIONS:
        raise ValueError(f"unknown activation scheme {activations!r}")
    if values.dtype != np.int8 or activations == "float":
        return (dequantize_rows(values, None) @ u if scale is None
                else (values.astype(np.float32) @ u) * scale.astype(np.float32))
    wi = values.astype(np.int32)
    if activations == "dynamic-int8-symmetric":
        q, s = quantize_int8_symmetric(u)
        acc = wi @ q.astype(np.int32)
        return acc.astype(np.float32) * (np.float32(s) * scale.astype(np.float32))
    if activations == "dynamic-int8-asymmetric":
        q, s, zp = quantize_int8_asymmetric(u)
        acc = wi @ q.astype(np.int32) - zp * wi.sum(axis=1)
        return acc.astype(np.float32) * (np.float32(s) * scale.astype(np.float32))
    q, s, zp = quantize_uint8_asymmetric(u)
    acc = wi @ (q.astype(np.int32) - np.int32(zp))
    return acc.astype(np.float32) * (np.float32(s) * scale.astype(np.float32))
