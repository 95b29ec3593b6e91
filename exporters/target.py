"""The one interface every target implements: IR -> model files, what they compute, a runner.

A target is a :class:`Target` value in its own module (``TARGET``), listed in
:mod:`exporters.registry`. ``export_ir`` (``exporters/export.py``) does the rest for every target
alike: it writes the files with the id maps and seen items, runs the parity check through the
target's runner against the numpy reference of the target's own arithmetic, and writes the
manifest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

Runner = Callable[[str, dict[str, np.ndarray]], dict[str, np.ndarray]]
"""Runs one query ``(mode, {input name: array})`` -> ``{"scores", "items"}`` on the model."""


@dataclass(frozen=True)
class Built:
    """What a target built for one IR.

    Args:
        files: Model files by their path in the artifact (e.g. ``model.tflite``), as bytes.
        weights: The manifest's ``quantization.weights`` (how the tables are stored).
        activations: The manifest's ``quantization.activations`` (``runtime.quant`` scheme the
            model's arithmetic follows, which the parity check emulates).
        runner: Given the artifact directory (files and a manifest already written), the
            interpreter run that the parity check compares with the numpy reference.
        tables: The manifest's ``tables`` block (the numpy target), else ``None``.
        informative: Other runs whose agreement is recorded in the parity report but does not
            decide the export (e.g. TFLite under its default delegate), by report key.
        data: The file of ``files`` the model files read their tables from (ONNX external
            data, shared by the modes), named in every signature of the manifest; else ``None``.
    """

    files: dict[str, bytes]
    weights: str
    activations: str
    runner: Callable[[Path], Runner]
    tables: dict[str, dict[str, str | None]] | None = None
    informative: dict[str, Callable[[], Runner]] = field(default_factory=dict)
    data: str | None = None


@dataclass(frozen=True)
class Target:
    """One export target.

    Args:
        name: The manifest's ``target`` and the CLI's ``--target`` value.
        toolkit: Distributions whose versions the manifest records (besides edgerec and numpy).
        build: ``build(ir, k=, history_capacity=, exclude_capacity=) -> Built``; raises
            ``ExportError`` when the IR cannot be exported soundly.
    """

    name: str
    toolkit: tuple[str, ...]
    build: Callable[..., Built]
