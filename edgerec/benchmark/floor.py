r"""The physical floor of a lookup request: the scored table read once.

A top-k over a dot-product scorer reads every item vector once per request, so no
implementation answers faster than

.. math::
    t_{\min} = \frac{\text{bytes of the item table}}{\text{read bandwidth at that size}}

on one core. The bandwidth is measured here, on this machine, by a reduction over a buffer of
the table's size (one thread, best of several passes): a table that fits the caches stays
there between requests and is read at cache speed, a larger one streams from memory. The
report also gives the memory bandwidth proper (a buffer far larger than the caches).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from runtime.weights import BY_NAME

SCALE_BYTES = 4  # a per-row scale as the interpreter reads it: float32 (a file's float16
# scales are widened once, at load)


def item_table_bytes(manifest: Mapping[str, Any]) -> int | None:
    """Bytes of an artifact's item table as the model file stores it (int4 packed two a byte,
    plus a scale per row, as the interpreter holds it, when quantized); None for a scheme this
    does not know.

    Args:
        manifest: the artifact's ``manifest.json`` (or device_bench's artifact description:
            ``num_items``, ``dim`` and ``quantization``).
    """
    q = manifest.get("quantization") or {}
    storage = BY_NAME.get(q.get("weights") if isinstance(q, Mapping) else q)
    n, d = manifest.get("num_items"), manifest.get("dim")
    if storage is None or not isinstance(n, int) or not isinstance(d, int):
        return None
    per_row = -(-d * storage.item_bits // 8) + (SCALE_BYTES if storage.integer else 0)
    return n * per_row


def read_bandwidth(nbytes: int = 256 << 20, passes: int | None = None) -> dict[str, Any]:
    """Read bandwidth of one core over a buffer of ``nbytes``: the best of ``passes`` reductions.

    Args:
        nbytes: buffer size (the default is far larger than the last-level cache).
        passes: timed passes; the best counts (the others met other processes or cold caches).
            Default: enough to read about 1 GB, at least 5 and at most 2,000.
    """
    import numpy as np

    a = np.ones(max(1, nbytes // 8), np.float64)  # written once: every page is resident
    passes = passes or max(5, min(2000, (1 << 30) // max(1, a.nbytes)))
    best = float("inf")
    for _ in range(passes):
        t0 = time.perf_counter()
        np.maximum.reduce(a)
        best = min(best, time.perf_counter() - t0)
    return {"bytes_per_s": a.nbytes / best, "buffer_bytes": int(a.nbytes), "passes": passes,
            "method": "numpy max over a float64 buffer, one thread, best pass"}


def measure_bandwidth(table_bytes: Iterable[int | None], memory_bytes: int = 256 << 20
                      ) -> dict[str, Any]:
    """This machine's memory bandwidth, and its read rate at each table size given.

    Args:
        table_bytes: the item-table sizes whose floor is wanted (None entries are skipped).
        memory_bytes: the buffer that measures the memory bandwidth (beyond the caches).
    """
    sizes = sorted({int(n) for n in table_bytes if n})
    return {"memory": read_bandwidth(memory_bytes),
            "by_bytes": {str(n): read_bandwidth(n)["bytes_per_s"] for n in sizes}}


def floor_ms(table_bytes: int | None, bandwidth: Mapping[str, Any] | None) -> float | None:
    """Milliseconds to read ``table_bytes`` at the rate measured for that size (else the memory
    bandwidth); None when either is unknown.

    Args:
        table_bytes: bytes of the item table.
        bandwidth: :func:`measure_bandwidth`'s result.
    """
    if not table_bytes or not bandwidth:
        return None
    rate = (bandwidth.get("by_bytes") or {}).get(str(table_bytes)) \
        or (bandwidth.get("memory") or {}).get("bytes_per_s")
    return table_bytes / rate * 1e3 if rate else None
