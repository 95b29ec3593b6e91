"""LiteRT (``ai-edge-litert``), the maintained TFLite interpreter: ``pip install ai-edge-litert``."""

from __future__ import annotations

from runtime.artifact import Artifact
from runtime.backends._tflite_common import TFLiteBackend
from runtime.errors import BackendUnavailable


def check_available() -> None:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError as e:
        raise BackendUnavailable(f"litert: ai-edge-litert is not installed ({e}); "
                                 "pip install 'edgerec[runtime]'") from None


def create(artifact: Artifact, num_threads: int | None, exact: bool = False) -> TFLiteBackend:
    check_available()
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if exact else OpResolverType.AUTO
    return TFLiteBackend("litert", Interpreter, resolver, artifact, num_threads, repacks=not exact)
