"""Timing statistics and process memory, with nothing beyond the standard library and numpy.

Figures follow TensorFlow Lite's ``benchmark_model``: latency in milliseconds over the requests
after the warm-up, peak resident set size of the whole process.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

# numpy.ma: np.percentile imports it lazily (1.3 MiB RSS) inside a worker's measurement window;
# imported here it is in the baseline process too, not in a target's memory
import numpy as np
import numpy.ma  # noqa: F401

LATENCY_KEYS = ("count", "mean_ms", "std_ms", "min_ms", "p5_ms", "p50_ms", "p95_ms", "p99_ms",
                "max_ms")


def latency_summary(samples_ns: Sequence[int]) -> dict[str, Any]:
    """Mean, spread and percentiles (ms) of per-request wall-clock times in nanoseconds."""
    if len(samples_ns) == 0:
        raise ValueError("latency_summary: no samples")
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    p5, p50, p95, p99 = np.percentile(ms, [5, 50, 95, 99])
    return {"count": int(ms.size), "mean_ms": float(ms.mean()), "std_ms": float(ms.std()),
            "min_ms": float(ms.min()), "p5_ms": float(p5), "p50_ms": float(p50),
            "p95_ms": float(p95), "p99_ms": float(p99), "max_ms": float(ms.max())}


def time_calls(fn: Callable[[int], object], start: int, count: int) -> list[int]:
    """Wall-clock nanoseconds of ``fn(i)`` for ``i`` in ``start .. start+count-1``."""
    clock = time.perf_counter_ns
    out = []
    for i in range(start, start + count):
        t0 = clock()
        fn(i)
        out.append(clock() - t0)
    return out


def measure_calls(fn: Callable[[int], object], requests: int, warmup: int) -> dict[str, Any]:
    """First call, warm-up average, then the latency summary of ``requests`` further calls.

    ``fn`` receives the call index (0 = first call), so callers can vary the input per request.
    """
    if requests < 1 or warmup < 0:
        raise ValueError(f"requests must be >= 1 and warmup >= 0, got {requests}, {warmup}")
    first = time_calls(fn, 0, 1)[0]
    warm = time_calls(fn, 1, warmup)
    timed = time_calls(fn, 1 + warmup, requests)
    return {"first_ms": first / 1e6,
            "warmup": {"count": warmup, "mean_ms": (sum(warm) / len(warm) / 1e6) if warm else None},
            "latency": latency_summary(timed)}


def _status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (Linux only)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss() -> tuple[int | None, str]:
    """Peak resident set size of this process in bytes, and where the figure came from."""
    hwm = _status_kib("VmHWM")
    if hwm is not None:
        return hwm * 1024, "VmHWM"
    try:
        import resource
    except ImportError:  # Windows
        return None, "unavailable"
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return (maxrss if sys.platform == "darwin" else maxrss * 1024), "ru_maxrss"


def current_rss() -> int | None:
    """Current resident set size in bytes (``VmRSS``), or None where unavailable."""
    rss = _status_kib("VmRSS")
    if rss is not None:
        return rss * 1024
    try:
        import psutil  # optional
    except ImportError:
        return None
    return int(psutil.Process(os.getpid()).memory_info().rss)
