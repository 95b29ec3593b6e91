"""What machine a report was measured on: CPU, cores, memory, OS, Python and library versions."""

from __future__ import annotations

import os
import platform
import socket
import sys
from importlib import metadata
from typing import Any

import numpy as np

# Interpreter modules the runtime may use, and the distribution that ships each one.
INTERPRETERS = {
    "ai_edge_litert": "ai-edge-litert",
    "tflite_runtime": "tflite-runtime",
    "tensorflow": "tensorflow",
    "onnxruntime": "onnxruntime",
}


def _cpuinfo_model() -> str | None:
    """CPU model from /proc/cpuinfo ("model name" on x86, "Model"/"Hardware" on ARM boards)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    found: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and value.strip() and key not in found:
            found[key] = value.strip()
    for key in ("model name", "model", "hardware", "cpu model", "processor"):
        if key in found and not found[key].isdigit():
            return found[key]
    return None


def _mem_total() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil  # optional
    except ImportError:
        return None
    return int(psutil.virtual_memory().total)


def version_of(module: str) -> str | None:
    """Installed version of an interpreter's distribution, without importing it."""
    dist = INTERPRETERS.get(module.split(".")[0])
    names = [dist] if dist else []
    if module.startswith("tensorflow"):
        names.append("tensorflow-cpu")
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    mod = sys.modules.get(module.split(".")[0])
    return getattr(mod, "__version__", None)


def machine_info() -> dict[str, Any]:
    """A JSON-ready description of this machine."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {
        "hostname": socket.gethostname(),
        "cpu": _cpuinfo_model() or platform.processor() or platform.machine() or None,
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_bytes": _mem_total(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "numpy": np.__version__,
        "interpreters": {m: v for m in INTERPRETERS if (v := version_of(m)) is not None},
    }
