"""edgerec's on-device runtime: numpy plus one interpreter, nothing else.

    import runtime
    rec = runtime.load("artifacts/lastfm-tflite")
    rec.recommend("user-42", k=10)              # known user (lookup mode)
    rec.recommend_from_history(["a", "b"], k=10)  # anonymous user (history mode)

``import runtime`` imports numpy only; the interpreter is imported inside the chosen backend.
Every failure the runtime reports on purpose is a :class:`RuntimeErrorBase` with a one-line
message. See ``docs/embedding.md``.
"""

from __future__ import annotations

import os
from typing import Any

from runtime import backends as _backends
from runtime.artifact import Artifact, load_artifact
from runtime.errors import (
    ArtifactError,
    BackendUnavailable,
    ChecksumError,
    InvalidArgumentError,
    RuntimeErrorBase,
    UnknownIdError,
)
from runtime.recommender import Recommender, Session

__version__ = "0.1.0"

# Interpreter threads per call. The interpreters start one OS thread per requested thread
# (LiteRT's XNNPACK pool, each ONNX Runtime session), so an absurd count exhausts the process
# (100,000 made LiteRT segfault at teardown and ONNX Runtime hang): far above any device's cores.
MAX_THREADS = 256


def load(path: str | os.PathLike[str], backend: str = "auto", num_threads: int | None = None,
         activations: str | None = None, exact: bool = False) -> Recommender:
    """Validate the artifact at ``path`` and return a :class:`Recommender` on it.

    ``backend``: ``"auto"`` (the installed interpreter for the artifact's target: LiteRT then
    tflite_runtime for tflite, onnxruntime for onnx, numpy for numpy), or one of ``"litert"``,
    ``"tflite"``, ``"onnx"``, ``"reference"``. ``num_threads``: interpreter threads per call
    (default: LiteRT's default, 1 for ONNX Runtime). ``activations``: reference backend only,
    overrides the artifact's ``quantization.activations`` so a numpy artifact reproduces a
    TFLite (``"dynamic-int8-symmetric"``) or ONNX (``"dynamic-uint8-asymmetric"``) build exactly.
    ``exact``: TFLite only: run the builtin kernels without the default XNNPACK delegate, so the
    arithmetic is bit for bit what the manifest describes (and what the numpy reference
    reproduces); the default delegate is about 3x faster and rounds the user vector its own way.
    """
    if not isinstance(backend, str):
        raise InvalidArgumentError(f"backend must be a string, got {type(backend).__name__}")
    if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                    or not 1 <= num_threads <= MAX_THREADS):
        raise InvalidArgumentError(f"num_threads must be an integer in 1..{MAX_THREADS} or None, "
                                   f"got {num_threads!r}")
    if not isinstance(path, str | os.PathLike):
        raise InvalidArgumentError(f"path must be a directory path, got {type(path).__name__}")
    artifact = load_artifact(path)
    name = _backends.resolve(backend, artifact.target)
    options: dict[str, Any] = {}
    if activations is not None:
        if name != "reference":
            raise InvalidArgumentError("activations= applies to the reference backend only "
                                       f"(the {name} interpreter's arithmetic is fixed by its model)")
        options["activations"] = activations
    if not isinstance(exact, bool):
        raise InvalidArgumentError(f"exact must be True or False, got {exact!r}")
    if exact and name in ("litert", "tflite"):
        options["exact"] = True
    return Recommender(artifact, _backends.factory(name, artifact, num_threads, **options))


__all__ = [
    "Artifact",
    "ArtifactError",
    "BackendUnavailable",
    "ChecksumError",
    "InvalidArgumentError",
    "Recommender",
    "RuntimeErrorBase",
    "Session",
    "UnknownIdError",
    "load",
]
