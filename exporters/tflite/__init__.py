"""TFLite target: one ``.tflite`` file with a ``lookup`` and/or ``history`` signature, builtin ops
only.

Modules by job: :mod:`~exporters.tflite.layout` (how each table dtype is stored),
:mod:`~exporters.tflite.graph` (the TensorFlow program), :mod:`~exporters.tflite.convert`
(conversion), :mod:`~exporters.tflite.flatbuffer` (rewrites of the converted file: signature
key, INT4 tables) and :mod:`~exporters.tflite.check` (checks on the file, and the interpreter
run the parity check compares).
"""

from __future__ import annotations

from edgerec.ir import IR
from exporters.target import Built, Target
from exporters.tflite.check import TFLiteModel, runner
from exporters.tflite.convert import convert
from exporters.tflite.flatbuffer import list_ops
from exporters.tflite.layout import BLOCK, padded_scores, uses_block_top_k
from exporters.weights import pack_int4, unpack_int4

__all__ = ["BLOCK", "TARGET", "TFLiteModel", "convert", "list_ops", "pack_int4", "padded_scores",
           "runner", "unpack_int4", "uses_block_top_k"]


def build_target(ir: IR, *, k: int, history_capacity: int, exclude_capacity: int) -> Built:
    """Convert and check ``ir``'s model; the parity check runs the builtin kernels, and how a
    default LiteRT interpreter (XNNPACK) agrees is recorded as ``default_delegates``."""
    model = convert(ir, k=k, history_capacity=history_capacity, exclude_capacity=exclude_capacity)
    return Built(files={"model.tflite": model.data}, weights=model.weights,
                 activations=model.activations, runner=lambda root: runner(model.data),
                 informative={"default_delegates": lambda: runner(model.data, default_delegates=True)})


TARGET = Target(name="tflite", toolkit=("tensorflow", "ai-edge-litert"), build=build_target)
