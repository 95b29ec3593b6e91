"""What each artifact's report rows are called: what it is (target, number format, width), not
the folder it sits in, which is often just ``tflite`` or ``onnx`` for every export."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from runtime.weights import BY_NAME

NUMPY_REFERENCE = "float32-numpy-reference"  # the directory name of the reference artifact
_TARGETS = {"tflite": "TFLite", "onnx": "ONNX", "numpy": "numpy"}


def describe(manifest: dict) -> str | None:
    """``"TFLite int4-item, 24 dims"`` for a manifest; None when it lacks the fields."""
    target, dim = manifest.get("target"), manifest.get("dim")
    weights = (manifest.get("quantization") or {}).get("weights")
    if not isinstance(target, str) or not isinstance(weights, str) or not isinstance(dim, int):
        return None
    storage = BY_NAME.get(weights)
    return f"{_TARGETS.get(target, target)} {storage.number_format if storage else weights}, {dim} dims"


def artifact_labels(artifacts: Sequence[Path]) -> dict[Path, str]:
    """A unique row name per artifact directory: :func:`describe` of its manifest, followed by
    as many of the parent folders' names as tell apart the artifacts that describe alike
    (``half/art-q0.95`` where two sit in ``art-q0.95``); the folder name where the manifest
    cannot be read (device_bench then reports why) and for the float32 reference."""
    base: dict[Path, str] = {}
    for a in artifacts:
        a = Path(a)
        try:
            label = None if a.name == NUMPY_REFERENCE else describe(
                json.loads((a / "manifest.json").read_text(encoding="utf-8")))
        except (OSError, ValueError, AttributeError):
            label = None
        base[a] = label or a.name
    groups: dict[str, list[Path]] = defaultdict(list)
    for a, label in base.items():
        groups[label].append(a)
    out = dict(base)
    for label, paths in groups.items():
        if len(paths) > 1 and label != NUMPY_REFERENCE:
            out.update({a: f"{label} ({where})" for a, where in _parents_apart(paths).items()})
    return out


def _parents_apart(paths: Sequence[Path]) -> dict[Path, str]:
    """The fewest trailing parent folder names that differ between ``paths``."""
    deepest = max(len(p.parent.parts) for p in paths)
    for depth in range(1, deepest + 1):
        names = {p: "/".join(p.parent.parts[-depth:]) for p in paths}
        if len(set(names.values())) == len(paths):
            return names
    return {p: str(p.parent) for p in paths}
