"""Interpreter backends: one small module per interpreter, imported only when chosen.

A backend module exposes ``check_available()`` (raises :class:`BackendUnavailable` with one line
saying why) and ``create(artifact, num_threads, **options) -> Backend``. Nothing here imports an
interpreter: ``import runtime`` stays numpy-only, so a device needs just the one it uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from runtime.errors import BackendUnavailable, InvalidArgumentError

BACKENDS = ("litert", "tflite", "onnx", "reference")
# Which backends can run which artifact target, in the order ``auto`` tries them.
FOR_TARGET = {"tflite": ("litert", "tflite"), "onnx": ("onnx",), "numpy": ("reference",)}


class Backend(Protocol):
    """One loaded model. ``thread_safe`` says whether one instance may serve many threads."""

    name: str
    thread_safe: bool

    def lookup(self, user: np.ndarray, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``user`` int32[1], ``exclude`` int32[E] -> (scores float32[k], items int32[k])."""
        ...

    def history(self, items: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``items`` int32[C] (the ``history`` input), ``length`` int32[1] -> (scores float32[k], items int32[k])."""
        ...


def _module(name: str) -> Any:
    return importlib.import_module(f"runtime.backends.{name}")


def resolve(name: str, target: str) -> str:
    """The concrete backend for ``name`` ("auto" or a backend) on an artifact of ``target``."""
    if name == "auto":
        reasons = []
        for cand in FOR_TARGET[target]:
            try:
                _module(cand).check_available()
                return cand
            except BackendUnavailable as e:
                reasons.append(str(e))
        raise BackendUnavailable(f"no interpreter for a {target!r} artifact: " + "; ".join(reasons))
    if name not in BACKENDS:
        raise InvalidArgumentError(f"unknown backend {name!r}; choose 'auto' or one of {list(BACKENDS)}")
    if name not in FOR_TARGET[target]:
        raise InvalidArgumentError(f"backend {name!r} cannot run a {target!r} artifact "
                                   f"(use one of {list(FOR_TARGET[target])} or 'auto')")
    _module(name).check_available()
    return name


def factory(name: str, artifact: Any, num_threads: int | None, **options: Any) -> Callable[[], Backend]:
    """A zero-argument constructor of ``name`` backends for ``artifact`` (one per thread if needed)."""
    mod = _module(name)
    return lambda: mod.create(artifact, num_threads, **options)
