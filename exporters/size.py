"""The bytes of the model file(s) a target would write for an IR, without writing an artifact
(what ``quantize="auto"`` ranks its candidates by)."""

from __future__ import annotations

from collections.abc import Sequence

from edgerec.ir import IR
from exporters.export import _check_args
from exporters.registry import REGISTRY


def model_bytes(ir: IR, targets: Sequence[str], *, k: int = 50, history_capacity: int = 50) -> int:
    """The largest, over ``targets``, of the bytes of the model files the target builds for
    ``ir`` (the same build :func:`exporters.export_ir` writes, so the same bytes).

    Args:
        ir (IR): the compiled model.
        targets (sequence of str): target names (``"tflite"``, ``"onnx"``, ``"numpy"``).
        k (int, optional): top-k the model returns. (default: ``50``)
        history_capacity (int, optional): history items the history signature reads.
            (default: ``50``)
    """
    sizes = []
    for target in targets:
        ecap = _check_args(ir, target, min(k, ir.num_items), history_capacity, None)
        built = REGISTRY[target].build(ir, k=min(k, ir.num_items), history_capacity=history_capacity,
                                       exclude_capacity=ecap)
        sizes.append(sum(len(data) for data in built.files.values()))
    return max(sizes)
