"""ONNX target: ``lookup.onnx`` and/or ``history.onnx``, built with ``onnx.helper`` from the IR.

int8 tables stay int8 initializers. Gathered tables: Gather + Cast + Mul by the gathered
per-row scale. Scoring: ``DynamicQuantizeLinear(u)`` + ``MatMulInteger(u_q, item_T, u_zp)``,
then ``(float(acc) * u_scale + mask) * item_scale`` -- the order ``runtime/quant.py`` emulates
(``dynamic-uint8-asymmetric``). float16 tables are stored as float16 and Cast to float32 (ONNX
Runtime folds the Cast of an initializer once, at session creation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgerec.errors import ExportError
from edgerec.ir import IR, Table

OPSET = 17
MASK = np.float32(-1e9)


@dataclass
class OnnxModels:
    files: dict[str, bytes]  # file name -> serialized model
    activations: str
    weights: str


def _padded(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a, np.zeros((1, *a.shape[1:]), a.dtype)])


class _Graph:
    """A tiny builder: named nodes and initializers, deterministic names."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []
        self._n = 0

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, **attrs: object) -> list[str]:
        from onnx import helper

        self._n += 1
        outs = [f"{op_type.lower()}_{self._n}_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=f"{op_type}_{self._n}",
                                           **attrs))
        return outs

    def one(self, op_type: str, inputs: list[str], **attrs: object) -> str:
        return self.op(op_type, inputs, **attrs)[0]


def _gather_rows(g: _Graph, name: str, table: Table, idx: str) -> str:
    if table.dtype == "int8":
        q = g.const(f"{name}_q", _padded(table.values))
        s = g.const(f"{name}_scale", _padded(table.scale.astype(np.float32)))
        rows = g.one("Cast", [g.one("Gather", [q, idx], axis=0)], to=1)
        scale = g.one("Unsqueeze", [g.one("Gather", [s, idx], axis=0), g.const(f"{name}_ax1", np.array([1], np.int64))])
        return g.one("Mul", [rows, scale])
    values = g.const(f"{name}_values", _padded(table.values))
    rows = g.one("Gather", [values, idx], axis=0)
    return g.one("Cast", [rows], to=1) if table.dtype == "float16" else rows


def _score(g: _Graph, ir: IR, u: str, exclude: str, k: int) -> tuple[str, str]:
    item = ir.tables["item"]
    n = ir.num_items
    if item.dtype == "int8":
        # uint8 weights with zero point 128 (= the IR's int8 + 128, exact): ONNX Runtime's
        # U8S8 kernel on AVX2 without VNNI sums pairs of u8*s8 products in saturating int16.
        w = g.const("item_u8_t", np.ascontiguousarray((item.values.T.astype(np.int16) + 128).astype(np.uint8)))
        wzp = g.const("item_zero_point", np.array(128, np.uint8))
        uq, us, uzp = g.op("DynamicQuantizeLinear", [u], n_out=3)
        acc = g.one("MatMulInteger", [uq, w, uzp, wzp])
        s = g.one("Mul", [g.one("Cast", [acc], to=1), us])
        mask_value = max(MASK / np.float32(item.scale.min()), np.float32(-3e38))
    else:
        w = g.const("item_t", np.ascontiguousarray(item.values.T))
        if item.dtype == "float16":
            w = g.one("Cast", [w], to=1)
        s = g.one("MatMul", [u, w])
        mask_value = MASK
    s = g.one("Reshape", [s, g.const("shape_items", np.array([n], np.int64))])
    zeros = g.const("mask_zeros", np.zeros(n + 1, np.float32))
    fill = g.one("Expand", [g.const("mask_value", np.array([mask_value], np.float32)),
                            g.one("Shape", [exclude])])
    penalty = g.one("ScatterElements", [zeros, exclude, fill], axis=0)
    penalty = g.one("Slice", [penalty, g.const("zero_1", np.array([0], np.int64)),
                              g.const("n_1", np.array([n], np.int64))])
    s = g.one("Add", [s, penalty])
    if item.dtype == "int8":
        s = g.one("Mul", [s, g.const("item_scale", item.scale.astype(np.float32))])
    values, indices = g.op("TopK", [s, g.const("k", np.array([k], np.int64))], n_out=2,
                           axis=0, largest=1, sorted=1)
    g.nodes.append(_identity(values, "scores"))
    g.nodes.append(_identity(g.one("Cast", [indices], to=6), "items"))
    return "scores", "items"


def _identity(src: str, dst: str) -> object:
    from onnx import helper

    return helper.make_node("Identity", [src], [dst], name=f"out_{dst}")


def _model(g: _Graph, name: str, inputs: dict[str, int], k: int) -> bytes:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        g.nodes, name,
        [helper.make_tensor_value_info(n, TensorProto.INT32, [size]) for n, size in inputs.items()],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [k]),
         helper.make_tensor_value_info("items", TensorProto.INT32, [k])],
        initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="edgerec")
    model.ir_version = 8
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"ONNX model {name} failed the checker: {str(e).splitlines()[0]}") from None
    return model.SerializeToString(deterministic=True)


def build(ir: IR, *, k: int, history_capacity: int, exclude_capacity: int) -> OnnxModels:
    """Build one ONNX model per mode of ``ir``."""
    try:
        import onnx  # noqa: F401
    except ImportError as e:  # pragma: no cover
        raise ExportError("the onnx target needs onnx (pip install edgerec[compiler])") from e
    dtypes = {ir.tables[n].dtype for n in ir.serving_tables()}
    if len(dtypes) != 1:
        raise ExportError(f"tables of mixed dtypes {sorted(dtypes)} are not supported")
    dtype = dtypes.pop()
    from exporters.parity import input_names

    files: dict[str, bytes] = {}
    for mode in ir.modes:
        a, b = input_names(mode)
        if {a, b} & {"scores", "items"}:
            raise ExportError(
                f"the artifact contract names a {mode} input {a if a in ('scores', 'items') else b!r}"
                ", like an output: ONNX graphs need distinct input and output names "
                "(see docs/architecture.md, history input renamed to 'history')")
    if "lookup" in ir.modes:
        g = _Graph()
        a, b = input_names("lookup")
        u = _gather_rows(g, "user", ir.tables["user"], a)
        _score(g, ir, u, b, k)
        files["lookup.onnx"] = _model(g, "lookup", {a: 1, b: exclude_capacity}, k)
    if "history" in ir.modes:
        g = _Graph()
        a, b = input_names("history")
        rows = _gather_rows(g, "history_item", ir.tables["history_item"], a)
        total = g.one("ReduceSum", [rows, g.const("axis0", np.array([0], np.int64))], keepdims=1)
        norm = g.one("Reciprocal", [g.one("Sqrt", [g.one("Cast", [b], to=1)])])
        u = g.one("Mul", [total, norm])
        _score(g, ir, u, a, k)
        files["history.onnx"] = _model(g, "history", {a: history_capacity, b: 1}, k)
    return OnnxModels(
        files=files,
        activations="dynamic-uint8-asymmetric" if dtype == "int8" else "float",
        weights={"int8": "int8-per-row", "float16": "float16", "float32": "float32"}[dtype])
