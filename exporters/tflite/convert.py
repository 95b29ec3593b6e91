"""Conversion: the TensorFlow program to one builtin-ops ``.tflite`` file, then the rewrites and
the checks (the three steps of :func:`convert`)."""

from __future__ import annotations

import contextlib
import io
import os
from typing import Any

from edgerec.errors import ExportError
from edgerec.ir import IR
from exporters.tflite.check import TFLiteModel, check_model
from exporters.tflite.flatbuffer import (
    gather_codebooks,
    rename_signature,
    store_half_scales,
    store_int4,
)
from exporters.tflite.graph import build_module
from exporters.tflite.layout import INTEGER_WEIGHTS
from exporters.weights import INT4_PQ, INT4_WEIGHTS, weights_kind


@contextlib.contextmanager
def _quiet() -> Any:
    """Silence the converter's C++ logging on fd 2 (it prints a dozen lines per conversion)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def convert(ir: IR, *, k: int, history_capacity: int, exclude_capacity: int) -> TFLiteModel:
    """Build, convert and check the TFLite model for ``ir``; raise ExportError if unsound."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    weights = weights_kind(ir)
    with _quiet():  # TensorFlow logs (oneDNN, absl) while it builds the graph, whatever the level
        try:
            import tensorflow as tf
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ExportError("the tflite target needs tensorflow (pip install edgerec[compiler])") from e
        module = build_module(ir, k, history_capacity, exclude_capacity)
        fns = [getattr(module, m).get_concrete_function() for m in ("lookup", "history")
               if m in ir.modes]
    conv = tf.lite.TFLiteConverter.from_concrete_functions(fns, module)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if weights in INTEGER_WEIGHTS:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv._experimental_disable_per_channel = True
    elif weights == "float16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    try:
        with _quiet():
            data = conv.convert()
    except Exception as e:
        msg = str(e).strip().splitlines()
        raise ExportError(f"TFLite conversion failed: {msg[-1] if msg else type(e).__name__}") from None
    if len(fns) == 1:  # the converter names a lone function "serving_default"
        data = rename_signature(bytes(data), ir.modes[0])
    if weights in INT4_WEIGHTS:
        data = store_int4(bytes(data), ir, weights)
    if weights == INT4_PQ:
        data = gather_codebooks(bytes(data), ir)
    if weights in INTEGER_WEIGHTS:
        data = store_half_scales(bytes(data), ir)
    return check_model(bytes(data), ir, weights)
