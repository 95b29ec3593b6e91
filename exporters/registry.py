"""The export targets by name. Adding a target: one module defining ``TARGET`` (see
:mod:`exporters.target`) and one line here (docs/architecture.md, "Adding a target")."""

from __future__ import annotations

from exporters import numpy_target, onnx, tflite
from exporters.target import Target

REGISTRY: dict[str, Target] = {
    "tflite": tflite.TARGET,
    "onnx": onnx.TARGET,
    "numpy": numpy_target.TARGET,
}
TARGETS = tuple(REGISTRY)
