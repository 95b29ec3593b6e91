"""Run ``python -m device_bench`` on this machine and read back its validated report.

``device_bench`` (which imports only ``runtime``) does the measuring, each target in its own
process, on the machine that serves; this module and :mod:`edgerec.benchmark.ssh` only start it.
The helpers below are shared by both launchers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import device_bench
import runtime
from device_bench.report import ReportError, validate_report
from edgerec.benchmark.errors import BenchError


def package_root(pkg: Any) -> Path:
    """The directory of an imported package (what is put on ``PYTHONPATH`` or copied)."""
    return Path(pkg.__file__).resolve().parent


def device_bench_args(requests: int, batch: int, threads: int, warmup: int,
                      exact: bool = False) -> list[str]:
    """device_bench's command-line options for these settings."""
    return ["--requests", str(requests), "--batch", str(batch), "--threads", str(threads),
            "--warmup", str(warmup), *(["--exact"] if exact else [])]


def check_result(proc: subprocess.CompletedProcess[str], where: str) -> None:
    """Refuse a device_bench exit other than 0 (all ok) or 1 (report written, a target failed)."""
    if proc.returncode not in (0, 1):
        lines = [ln for ln in (proc.stderr or "").splitlines() if ln.strip()]
        tail = lines[-1].strip() if lines else f"exit status {proc.returncode}"
        raise BenchError(f"device_bench on {where} failed: {tail}")


def load_report(text: str, where: str) -> dict[str, Any]:
    """Parse and schema-check a device_bench report sent back as text."""
    try:
        report = json.loads(text)
        validate_report(report)
    except json.JSONDecodeError as e:
        raise BenchError(f"device_bench on {where} returned unreadable JSON ({e})") from None
    except ReportError as e:
        raise BenchError(f"device_bench on {where} returned a malformed report: {e}") from None
    return report


def run_local(artifacts: Sequence[Path], *, requests: int, batch: int, threads: int,
              warmup: int, eval_file: Path | None = None, timeout: float = 3600,
              exact: bool = False) -> dict[str, Any]:
    """``python -m device_bench`` on this machine; its validated report.

    Args:
        artifacts: artifact directories.
        requests: timed requests per mode.
        batch: batch size of the throughput figure.
        threads: interpreter and BLAS threads.
        warmup: untimed requests before timing.
        eval_file: evaluation file for every target (default: each artifact's own).
        timeout: seconds allowed for the whole run.
        exact: TFLite targets on the builtin kernels instead of XNNPACK.
    """
    env = dict(os.environ)
    roots = [str(package_root(runtime).parent), str(package_root(device_bench).parent)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(
        roots + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])))
    with tempfile.TemporaryDirectory(prefix="edgerec-bench-") as tmp:
        out = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "device_bench", *map(str, artifacts),
               *device_bench_args(requests, batch, threads, warmup, exact), "--out", str(out)]
        if eval_file:
            cmd += ["--eval", str(eval_file)]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise BenchError(f"device_bench timed out after {timeout:g} s") from None
        check_result(proc, "this machine")
        try:
            text = out.read_text(encoding="utf-8")
        except OSError:
            raise BenchError("device_bench on this machine wrote no report") from None
        return load_report(text, "this machine")
