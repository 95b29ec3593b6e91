r"""The physical floor of a lookup request: the scored table read once from memory.

A top-k over a dot-product scorer reads every item vector once per request, so no
implementation answers faster than

.. math::
    t_{\min} = \frac{\text{bytes of the item table}}{\text{memory read bandwidth}}

on one core. The bandwidth is measured here, on this machine, by streaming a buffer far larger
than the caches through a reduction (one thread, best of several passes); a table small enough
to stay in cache can be read faster, so the floor is a floor for tables larger than the cache
and an indication for smaller ones.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

# bits per value of the item table (the scoring matmul's weights) for each manifest scheme,
# and whether it carries a float32 scale per row
ITEM_TABLE_BITS = {"float32": (32, False), "float16": (16, False), "int8-per-row": (8, True),
                   "int8-per-row+int4-item": (4, True), "int4-per-row": (4, True)}


def item_table_bytes(manifest: Mapping[str, Any]) -> int | None:
    """Bytes of an artifact's item table as the model file stores it (int4 packed two a byte,
    plus a float32 scale per row when quantized); None for a scheme this does not know.

    Args:
        manifest: the artifact's ``manifest.json`` (or device_bench's artifact description:
            ``num_items``, ``dim`` and ``quantization``).
    """
    q = manifest.get("quantization") or {}
    bits = ITEM_TABLE_BITS.get(q.get("weights") if isinstance(q, Mapping) else q)
    n, d = manifest.get("num_items"), manifest.get("dim")
    if bits is None or not isinstance(n, int) or not isinstance(d, int):
        return None
    per_row = -(-d * bits[0] // 8) + (4 if bits[1] else 0)
    return n * per_row


def read_bandwidth(nbytes: int = 256 << 20, passes: int = 5) -> dict[str, Any]:
    """Memory read bandwidth of one core: the best of ``passes`` reductions over ``nbytes``.

    Args:
        nbytes: buffer size; far larger than the last-level cache.
        passes: timed passes (the best one counts: the others met other processes).
    """
    import numpy as np

    a = np.ones(max(1, nbytes // 8), np.float64)  # written once: every page is resident
    best = float("inf")
    for _ in range(passes):
        t0 = time.perf_counter()
        np.maximum.reduce(a)
        best = min(best, time.perf_counter() - t0)
    return {"bytes_per_s": a.nbytes / best, "buffer_bytes": int(a.nbytes), "passes": passes,
            "method": "numpy max over a float64 buffer, one thread, best pass"}


def floor_ms(table_bytes: int | None, bytes_per_s: float | None) -> float | None:
    """Milliseconds to read ``table_bytes`` at ``bytes_per_s`` (None when either is unknown)."""
    if not table_bytes or not bytes_per_s:
        return None
    return table_bytes / bytes_per_s * 1e3
