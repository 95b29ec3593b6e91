"""ONNX Runtime (``onnxruntime``), CPU provider: ``pip install onnxruntime``.

One ``InferenceSession`` per mode file, loaded by path (no Python copy of the model bytes); the
tables are external data in the artifact's ``tables.bin`` (the signature's ``external_data``),
which ONNX Runtime reads beside the model file: the manifest hashed it with every other file,
and the model check refuses a model reading any file the manifest does not name.
``InferenceSession.run`` is documented as thread-safe, so one session serves every thread.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.artifact import Artifact, check_model_io
from runtime.backends import _model_check
from runtime.errors import ArtifactError, BackendUnavailable

_TYPES = {"tensor(int32)": "int32", "tensor(float)": "float32", "tensor(int64)": "int64",
          "tensor(float16)": "float16", "tensor(uint8)": "uint8", "tensor(int8)": "int8"}


def check_available() -> None:
    try:
        import onnxruntime  # noqa: F401
    except Exception as e:
        raise BackendUnavailable(f"onnx: onnxruntime is not installed ({e.__class__.__name__}: "
                                 f"{' '.join(str(e).split())[:200]}); pip install 'edgerec[runtime-onnx]'") from None


class OnnxBackend:
    name = "onnx"
    thread_safe = True

    def __init__(self, artifact: Artifact, num_threads: int | None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = num_threads or 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        m = artifact.manifest
        self._sessions: dict[str, Any] = {}
        for mode in m["modes"]:
            path = artifact.path(m["signatures"][mode]["file"])
            _model_check.check_onnx(m, path)  # before the session: the manifest must be true
            try:
                sess = ort.InferenceSession(str(path), sess_options=opts,
                                            providers=["CPUExecutionProvider"])
            except Exception as e:
                raise ArtifactError(f"{path}: onnxruntime refused the model: {_line(e)}") from None
            check_model_io(m, mode, {"inputs": _io(sess.get_inputs()),
                                     "outputs": _io(sess.get_outputs())}, str(path))
            self._sessions[mode] = sess

    def session(self, mode: str) -> Any:
        """The bare session (for benchmarks measuring the runtime's own overhead)."""
        return self._sessions[mode]

    def lookup(self, user: np.ndarray, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._run("lookup", {"user": user, "exclude": exclude})

    def history(self, items: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._run("history", {"history": items, "length": length})

    def _run(self, mode: str, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        try:
            scores, items = self._sessions[mode].run(["scores", "items"], feeds)
        except Exception as e:
            raise ArtifactError(f"onnxruntime failed on {mode!r}: {_line(e)}") from None
        return scores, items


def _io(args: list[Any]) -> dict[str, tuple[str, tuple[Any, ...]]]:
    return {a.name: (_TYPES.get(a.type, a.type), tuple(a.shape)) for a in args}


def _line(e: BaseException) -> str:
    return f"{e.__class__.__name__}: {' '.join(str(e).split())[:300]}"


def create(artifact: Artifact, num_threads: int | None) -> OnnxBackend:
    check_available()
    return OnnxBackend(artifact, num_threads)
