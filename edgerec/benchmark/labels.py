"""What each artifact's report rows are called: what it is (target, number format, width), not
the folder it sits in, which is often just ``tflite`` or ``onnx`` for every export."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

NUMPY_REFERENCE = "float32-numpy-reference"  # the directory name of the reference artifact
_TARGETS = {"tflite": "TFLite", "onnx": "ONNX", "numpy": "numpy"}
_FORMATS = {"int8-per-row": "int8", "int8-per-row+int4-item": "int4-item", "int4-per-row": "int4"}


def describe(manifest: dict) -> str | None:
    """``"TFLite int4-item, 24 dims"`` for a manifest; None when it lacks the fields."""
    target, dim = manifest.get("target"), manifest.get("dim")
    weights = (manifest.get("quantization") or {}).get("weights")
    if not isinstance(target, str) or not isinstance(weights, str) or not isinstance(dim, int):
        return None
    return f"{_TARGETS.get(target, target)} {_FORMATS.get(weights, weights)}, {dim} dims"


def artifact_labels(artifacts: Sequence[Path]) -> dict[Path, str]:
    """A unique row name per artifact directory: :func:`describe` of its manifest, followed by
    the parent folder's name where two artifacts describe alike; the folder name where the
    manifest cannot be read (device_bench then reports why) and for the float32 reference."""
    base: dict[Path, str] = {}
    for a in artifacts:
        a = Path(a)
        try:
            label = None if a.name == NUMPY_REFERENCE else describe(
                json.loads((a / "manifest.json").read_text(encoding="utf-8")))
        except (OSError, ValueError, AttributeError):
            label = None
        base[a] = label or a.name
    counts = Counter(base.values())
    return {a: f"{label} ({a.parent.name})" if counts[label] > 1 and a.name != NUMPY_REFERENCE
            else label for a, label in base.items()}
