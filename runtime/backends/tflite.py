"""The legacy ``tflite_runtime`` interpreter, for devices that cannot install LiteRT.

Its last release (2.14) was built against numpy 1.x and has no Python 3.12 wheel; importing it
under numpy 2 fails deep inside the extension, so both conditions are checked first and
reported as one line instead.
"""

from __future__ import annotations

import sys

import numpy as np

from runtime.artifact import Artifact
from runtime.backends._tflite_common import TFLiteBackend
from runtime.errors import BackendUnavailable


def check_available() -> None:
    if sys.version_info >= (3, 12):
        raise BackendUnavailable("tflite: tflite_runtime has no wheel for Python "
                                 f"{sys.version_info.major}.{sys.version_info.minor}; use ai-edge-litert")
    if int(np.__version__.split(".")[0]) >= 2:
        raise BackendUnavailable(f"tflite: tflite_runtime 2.14 needs numpy<2 (found {np.__version__}); "
                                 "use ai-edge-litert")
    try:
        import tflite_runtime.interpreter  # noqa: F401
    except Exception as e:  # ImportError, or an ABI error from a mismatched build
        raise BackendUnavailable(f"tflite: tflite_runtime is not usable ({e.__class__.__name__}: "
                                 f"{' '.join(str(e).split())[:200]})") from None


def create(artifact: Artifact, num_threads: int | None, exact: bool = False) -> TFLiteBackend:
    check_available()
    from tflite_runtime.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if exact else OpResolverType.AUTO
    return TFLiteBackend("tflite", Interpreter, resolver, artifact, num_threads)
