"""Run a baseline's measurement in a fresh Python process and read back its JSON.

A fresh process, as device_bench measures every target: memory figures are then comparable
(in a process that has trained, torch reuses freed memory) and thread settings stay local.
A baseline module's ``main`` prints one JSON line: its result, or ``{"error": message}``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edgerec.benchmark.errors import BenchError
from edgerec.errors import EdgerecError


def run_child(module: str, args: Sequence[str], what: str, timeout: float = 3600) -> Any:
    """``python -m module args`` with this checkout importable; its last stdout line, decoded.

    Args:
        module: the baseline module (its ``main`` prints the JSON line).
        args: its command-line arguments.
        what: the baseline's name, for error messages.
        timeout: seconds allowed.
    """
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[3])  # edgerec importable without an install
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.run([sys.executable, "-m", module, *map(str, args)],
                              capture_output=True, text=True, env=env, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        raise BenchError(f"the {what} baseline timed out after {timeout:g} s") from None
    lines = proc.stdout.strip().splitlines()
    try:
        out = json.loads(lines[-1]) if proc.returncode == 0 and lines else None
    except ValueError:
        out = None
    if out is None:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"the {what} baseline failed (exit {proc.returncode}): {tail[:300]}")
    if isinstance(out, dict) and "error" in out:
        raise BenchError(str(out["error"]))
    return out


def child_main(measure: Callable[[list[str]], Any]) -> None:
    """The ``main`` of a baseline module: print ``measure(argv)`` or its one-line error as JSON."""
    try:
        out = measure(sys.argv[1:])
    except EdgerecError as e:
        out = {"error": str(e)}
    print(json.dumps(out, allow_nan=False))
