"""Latency of a callable on the workstation, in the shape device_bench reports per mode."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from device_bench.measure import measure_calls
from edgerec.benchmark.errors import BenchError


def measure_callable(fn: Callable[..., object], requests: int, warmup: int) -> dict[str, Any]:
    """Latency of any callable, in the same shape device_bench reports per mode.

    ``fn`` is called ``1 + warmup + requests`` times, with the call index if it takes one
    argument (so the caller can vary inputs), else with none.

    Args:
        fn: the request to time; ``fn(i)`` or ``fn()``.
        requests: timed calls (at least 1).
        warmup: untimed calls after the first one.

    Returns:
        ``{"first_ms", "warmup": {"count", "mean_ms"}, "latency": {"count", "mean_ms",
        "std_ms", "min_ms", "p5_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms"}}``.
    """
    try:
        takes_index = len(inspect.signature(fn).parameters) >= 1
    except (TypeError, ValueError):
        takes_index = False
    call = fn if takes_index else (lambda _i: fn())
    try:
        return measure_calls(call, requests, warmup)
    except ValueError as e:
        raise BenchError(str(e)) from None
