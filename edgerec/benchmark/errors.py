"""The one error of workstation benchmarking."""

from __future__ import annotations

from edgerec.errors import EdgerecError


class BenchError(EdgerecError):
    """The benchmark could not run (bad arguments, ssh failure, device_bench refused)."""
