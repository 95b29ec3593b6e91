"""ONNX target: ``lookup.onnx`` and/or ``history.onnx``, built with ``onnx.helper`` from the IR.

int8 tables stay int8 initializers. Gathered tables: Gather + Cast + Mul by the gathered
per-row scale. Scoring: ``DynamicQuantizeLinear(u)`` + ``MatMulInteger(u_q, item_T, u_zp)``,
then ``(float(acc) * u_scale + mask) * item_scale`` -- the order ``runtime/quant.py`` emulates
(``dynamic-uint8-asymmetric``). float16 tables are stored as float16 and Cast to float32 (ONNX
Runtime folds the Cast of an initializer once, at session creation).

int4 tables (``int4-item``: the item table; ``int4``: every table) are INT4 initializers (opset
21), two values a byte, Cast to int8 (exact), which ONNX Runtime folds once at session creation:
the file holds the packed table, memory the int8 one, and the graph from there on is int8's --
Gather + Cast + Mul for gathered tables, ``DynamicQuantizeLinear`` + ``MatMulInteger`` for the
item table (int8 weights, zero point 0: with values in [-7, 7] no pair of u8 * s8 products nears
the int16 saturation that makes int8 tables go through uint8), so the arithmetic is integer and
the parity check exact, as for int8. Not DequantizeLinear: ONNX Runtime fuses DequantizeLinear +
MatMul into MatMulNBits, whose arithmetic is neither exact nor reproducible (docs/compression.md).
A float MatMul over the table Cast to float32 (before 2026-12-05) held a float32 copy in memory
and ran at float32's speed (docs/benchmarks.md).

Per-row scales are float16 initializers Cast to float32 when float16 holds them exactly (the
quantize pass rounds them so), float32 otherwise.

sage / gcn / gat history programs and the MLP head follow the TFLite graphs op for op (dense
weights float32; ``mlp_item`` int8 is Cast + Mul by its row scale); see docs/export_notes.md.

Every table is stored once: the mode graphs keep their initializers of at least
``EXTERNAL_MIN`` bytes as ONNX external data in one shared file, ``tables.bin``
(``external_data`` ``location``/``offset``/``length``, ``data_location = EXTERNAL``), and
initializers with the same bytes (the item table and its scales, which both modes score with)
point at the same range. Offsets are aligned (``_align``: 4,096 bytes for a tensor of at least
64 KiB, so ONNX Runtime may map it from the file; 64 bytes otherwise). The artifact's two mode
files then hold the graphs and small constants only, and the whole is about the size of
``model.tflite``. The manifest names the file in each signature (``external_data``), so every
runtime fetches and hashes it before an interpreter reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgerec.errors import ExportError
from edgerec.ir import IR, Table
from exporters.target import Built, Runner, Target
from exporters.weights import pack_int4, weights_kind
from runtime.artifact import MASK
from runtime.quant import half_codebook, half_scale, pq_columns
from runtime.weights import BY_NAME

OPSET = 17
OPSET_INT4 = 21  # INT4 tensors and their Cast
IR_VERSION = {OPSET: 8, OPSET_INT4: 10}  # the ONNX IR version each opset needs
DATA_FILE = "tables.bin"  # the external data every mode file reads its tables from
TENSOR_INT64 = 7  # onnx.TensorProto.INT64 (onnx itself is imported where a graph is built)
EXTERNAL_MIN = 1024  # bytes: smaller initializers (shapes, axes, scalars) stay in the graph
PAGE, PAGE_MIN, ALIGN = 4096, 64 << 10, 64


@dataclass
class OnnxModels:
    files: dict[str, bytes]  # file name -> serialized model or the shared external data
    activations: str
    weights: str
    data: str | None = None  # the external-data file (``DATA_FILE``), if any initializer moved


def _align(offset: int, nbytes: int) -> int:
    """The first offset at or after ``offset`` a tensor of ``nbytes`` is stored at."""
    a = PAGE if nbytes >= PAGE_MIN else ALIGN
    return -(-offset // a) * a


def _externalize(models: dict[str, object]) -> bytes:
    """Move every initializer of at least ``EXTERNAL_MIN`` bytes of ``models`` (file name ->
    checked ModelProto, changed in place) into one blob, each distinct byte string once, and
    return the blob (deterministic: the order of ``models`` and of their initializers)."""
    from onnx import TensorProto

    blob = bytearray()
    offsets: dict[bytes, int] = {}
    for model in models.values():
        for init in model.graph.initializer:  # type: ignore[attr-defined]
            data = init.raw_data
            if len(data) < EXTERNAL_MIN:
                continue
            if data not in offsets:
                start = _align(len(blob), len(data))
                blob += bytes(start - len(blob)) + data
                offsets[data] = start
            init.ClearField("raw_data")
            init.data_location = TensorProto.EXTERNAL
            del init.external_data[:]
            for key, value in (("location", DATA_FILE), ("offset", str(offsets[data])),
                               ("length", str(len(data)))):
                entry = init.external_data.add()
                entry.key, entry.value = key, value
    return bytes(blob)


def _padded(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a, np.zeros((1, *a.shape[1:]), a.dtype)])


class _Graph:
    """A tiny builder: named nodes and initializers, deterministic names."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []
        self._n = 0
        self.opset = OPSET

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def int4(self, name: str, values: np.ndarray) -> str:
        """``values`` (integers in [-8, 7]) as an INT4 initializer Cast to int8 (exact; folded
        once at session creation)."""
        from onnx import TensorProto, helper

        self.inits.append(helper.make_tensor(name, TensorProto.INT4, values.shape,
                                             pack_int4(values), raw=True))
        self.opset = OPSET_INT4
        return self.one("Cast", [name], to=TensorProto.INT8)

    def scale(self, name: str, scale: np.ndarray, *, pad: bool = False,
              shape: tuple[int, ...] | None = None) -> str:
        """A per-row scale as float32, stored as a float16 initializer Cast to float32 when that
        is exact (``runtime.quant.half_scale``; folded once at session creation, like a float16
        table), else as float32. ``pad`` appends the 0 of ``pad_index``."""
        value = _padded(scale.astype(np.float32)) if pad else scale.astype(np.float32)
        return self.half(name, value if shape is None else value.reshape(shape), half_scale)

    def half(self, name: str, value: np.ndarray, exact: Callable[[np.ndarray], np.ndarray | None]) -> str:
        """``value`` (float32) as a float16 initializer Cast to float32 where ``exact`` gives its
        float16 copy, else as float32."""
        half = exact(value)
        if half is None:
            return self.const(name, value)
        return self.one("Cast", [self.const(f"{name}_float16", half)], to=1)

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
    if table.codebook is not None:
        return _real_columns(g, name, table, _decoded_rows(g, name, table, idx))
    if table.dtype == "int8":
        # int4: Gather reads no INT4, so the int8 table folded from it is gathered
        q = (g.int4(f"{name}_q4", _padded(table.values)) if table.bits == 4
             else g.const(f"{name}_q", _padded(table.values)))
        s = g.scale(f"{name}_scale", table.scale, pad=True)
        rows = g.one("Cast", [g.one("Gather", [q, idx], axis=0)], to=1)
        scale = g.one("Unsqueeze", [g.one("Gather", [s, idx], axis=0), g.const(f"{name}_ax1", np.array([1], np.int64))])
        return g.one("Mul", [rows, scale])
    values = g.const(f"{name}_values", _padded(table.values))
    rows = g.one("Gather", [values, idx], axis=0)
    return g.one("Cast", [rows], to=1) if table.dtype == "float16" else rows


def _decoded_rows(g: _Graph, name: str, table: Table, idx: str) -> str:
    """Rows ``idx`` of a product-coded table as [n, M * S], times the row scale, in the op order of
    the TFLite graph and ``runtime.quant.pq_decode``: Gather the uint8 codes, Cast, add each
    subspace's offset into the [M * 256, S] codebook (float16 Cast to float32 where exact),
    Gather the centroids, Reshape, Mul."""
    m, k, s = table.codebook.shape
    codes = g.one("Gather", [g.const(f"{name}_codes", _padded(table.values)), idx], axis=0)
    flat = g.one("Add", [g.one("Cast", [codes], to=TENSOR_INT64),
                         g.const(f"{name}_code_offsets", np.arange(m, dtype=np.int64) * k)])
    flat = g.one("Reshape", [flat, g.const(f"{name}_flat", np.array([-1], np.int64))])
    book = g.half(f"{name}_codebook", table.codebook.reshape(m * k, s), half_codebook)
    rows = g.one("Reshape", [g.one("Gather", [book, flat], axis=0),
                             g.const(f"{name}_row_shape", np.array([-1, m * s], np.int64))])
    scale = g.scale(f"{name}_scale", table.scale, pad=True)
    scale = g.one("Unsqueeze", [g.one("Gather", [scale, idx], axis=0),
                                g.const(f"{name}_ax1", np.array([1], np.int64))])
    return g.one("Mul", [rows, scale])


def _real_columns(g: _Graph, name: str, table: Table, rows: str) -> str:
    """The ``width`` real columns of decoded rows [n, M * S]: a copy, so a history sum runs first."""
    m, _, s = table.codebook.shape
    columns = pq_columns(int(table.width), m, s)
    if columns.size == m * s:
        return rows
    return g.one("Gather", [rows, g.const(f"{name}_columns", columns.astype(np.int64))], axis=1)


def _dense(g: _Graph, name: str, table: Table, shape: tuple[int, ...] | None = None) -> str:
    """A small dense weight (MLP head, biases, defaults) as a float32 initializer."""
    v = table.dequantize().astype(np.float32)
    return g.const(name, v if shape is None else v.reshape(shape))


def _mlp_scores(g: _Graph, ir: IR, u: str) -> str:
    """``relu([u, 1] [W1_user; b1] + T_i) . w2 + b2`` -> [I], the op order of the TFLite graph
    and of ``runtime.backends.reference.mlp_scores``; int8 ``T``: Cast + Mul by the row scale."""
    t = ir.tables["mlp_item"]
    d, h = ir.tables["mlp_w1_user"].shape
    w1b = np.concatenate([ir.tables["mlp_w1_user"].dequantize(), ir.tables["mlp_b1"].dequantize()])
    u1 = g.one("Concat", [g.one("Reshape", [u, g.const("shape_d1", np.array([d, 1], np.int64))]),
                          g.const("one_11", np.ones((1, 1), np.float32))], axis=0)
    hu = g.one("ReduceSum", [g.one("Mul", [u1, g.const("mlp_w1b", w1b.astype(np.float32))]),
                             g.const("mlp_axis0", np.array([0], np.int64))], keepdims=1)
    if t.dtype == "int8":
        table = g.one("Mul", [g.one("Cast", [g.const("mlp_item_q", t.values)], to=1),
                              g.scale("mlp_item_scale", t.scale, shape=(-1, 1))])
    else:
        table = g.const("mlp_item_values", t.values)
        if t.dtype == "float16":
            table = g.one("Cast", [table], to=1)
    hidden = g.one("Relu", [g.one("Add", [table, hu])])
    s = g.one("MatMul", [hidden, _dense(g, "mlp_w2", ir.tables["mlp_w2"])])
    s = g.one("Reshape", [s, g.const("shape_items", np.array([ir.num_items], np.int64))])
    return g.one("Add", [s, _dense(g, "mlp_b2", ir.tables["mlp_b2"], (1,))])


def _mask_topk(g: _Graph, ir: IR, s: str, exclude: str, k: int, mask_value: float,
               row_scale: str | None = None) -> tuple[str, str]:
    from onnx import TensorProto, helper

    n = ir.num_items
    # zeros made in the graph, not stored: a [n + 1] float32 constant is 4 bytes an item
    zeros = g.one("ConstantOfShape", [g.const("mask_len", np.array([n + 1], np.int64))],
                  value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))
    fill = g.one("Expand", [g.const("mask_value", np.array([mask_value], np.float32)),
                            g.one("Shape", [exclude])])
    penalty = g.one("ScatterElements", [zeros, exclude, fill], axis=0)
    penalty = g.one("Slice", [penalty, g.const("zero_1", np.array([0], np.int64)),
                              g.const("n_1", np.array([n], np.int64))])
    s = g.one("Add", [s, penalty])
    if row_scale is not None:
        s = g.one("Mul", [s, row_scale])
    values, indices = g.op("TopK", [s, g.const("k", np.array([k], np.int64))], n_out=2,
                           axis=0, largest=1, sorted=1)
    g.nodes.append(_identity(values, "scores"))
    g.nodes.append(_identity(g.one("Cast", [indices], to=6), "items"))
    return "scores", "items"


def _gnn_history(g: _Graph, ir: IR, rows: str, items: str, length: str, capacity: int) -> str:
    """The sage / gcn / gat last layer of a new user over the gathered rows [C, d] (padding
    rows are zero; gat masks the padding slots by position before the softmax)."""
    kind = ir.history_kind
    n = g.one("Cast", [length], to=1)
    if kind in ("sage", "gcn"):
        total = g.one("ReduceSum", [rows, g.const("axis0", np.array([0], np.int64))], keepdims=1)
        if kind == "sage":
            u = g.one("Div", [total, n])
        else:
            norm = g.one("Reciprocal", [g.one("Sqrt", [g.one("Add", [n, g.const("one_f", np.ones(1, np.float32))])])])
            u = g.one("Mul", [total, norm])
        return g.one("Add", [u, _dense(g, "user_default", ir.tables["user_default"])])
    logits = g.const("history_logit", _padded(ir.tables["history_logit"].dequantize()[:, 0]))
    s = g.one("LeakyRelu", [g.one("Gather", [logits, items], axis=0)],
              alpha=float(ir.history.get("negative_slope", 0.2)))
    valid = g.one("Less", [g.const("slots", np.arange(capacity, dtype=np.int32)), length])
    s = g.one("Where", [valid, s, g.const("masked_logit", np.array([-1e30], np.float32))])
    w = g.one("Unsqueeze", [g.one("Softmax", [s], axis=0), g.const("w_ax1", np.array([1], np.int64))])
    u = g.one("ReduceSum", [g.one("Mul", [rows, w]), g.const("axis0", np.array([0], np.int64))], keepdims=1)
    return g.one("Add", [u, _dense(g, "history_bias", ir.tables["history_bias"])])


def _score(g: _Graph, ir: IR, u: str, exclude: str, k: int) -> tuple[str, str]:
    if ir.scorer.get("kind") == "mlp":
        return _mask_topk(g, ir, _mlp_scores(g, ir, u), exclude, k, float(MASK))
    item = ir.tables["item"]
    n = ir.num_items
    if item.dtype == "int8":
        uq, us, uzp = g.op("DynamicQuantizeLinear", [u], n_out=3)
        if item.bits == 4:  # int8 weights (zero point 0) folded from INT4: far from saturating
            acc = g.one("MatMulInteger", [uq, g.int4("item_q4_t", np.ascontiguousarray(item.values.T)),
                                          uzp])
        else:
            # uint8 weights with zero point 128 (= the IR's int8 + 128, exact): ONNX Runtime's
            # U8S8 kernel on AVX2 without VNNI sums pairs of u8*s8 products in saturating int16.
            w = g.const("item_u8_t", np.ascontiguousarray((item.values.T.astype(np.int16) + 128).astype(np.uint8)))
            acc = g.one("MatMulInteger", [uq, w, uzp, g.const("item_zero_point", np.array(128, np.uint8))])
        s = g.one("Mul", [g.one("Cast", [acc], to=1), us])
        mask_value = max(MASK / np.float32(item.scale.min()), np.float32(-3e38))
    else:
        w = g.const("item_t", np.ascontiguousarray(item.values.T))
        if item.dtype == "float16":
            w = g.one("Cast", [w], to=1)
        s = g.one("MatMul", [u, w])
        mask_value = MASK
    s = g.one("Reshape", [s, g.const("shape_items", np.array([n], np.int64))])
    scale = g.scale("item_scale", item.scale) if item.dtype == "int8" else None
    return _mask_topk(g, ir, s, exclude, k, float(mask_value), scale)


def _identity(src: str, dst: str) -> object:
    from onnx import helper

    return helper.make_node("Identity", [src], [dst], name=f"out_{dst}")


def _model(g: _Graph, name: str, inputs: dict[str, int], k: int) -> object:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        g.nodes, name,
        [helper.make_tensor_value_info(n, TensorProto.INT32, [size]) for n, size in inputs.items()],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [k]),
         helper.make_tensor_value_info("items", TensorProto.INT32, [k])],
        initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", g.opset)],
                              producer_name="edgerec")
    model.ir_version = IR_VERSION[g.opset]
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"ONNX model {name} failed the checker: {str(e).splitlines()[0]}") from None
    return model


def build(ir: IR, *, k: int, history_capacity: int, exclude_capacity: int) -> OnnxModels:
    """Build one ONNX model per mode of ``ir`` over one shared file of tables (module doc)."""
    try:
        import onnx  # noqa: F401
    except ImportError as e:  # pragma: no cover
        raise ExportError("the onnx target needs onnx (pip install edgerec[compiler])") from e
    weights = weights_kind(ir)
    from exporters.parity import input_names

    models: dict[str, object] = {}
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
        models["lookup.onnx"] = _model(g, "lookup", {a: 1, b: exclude_capacity}, k)
    if "history" in ir.modes:
        g = _Graph()
        a, b = input_names("history")
        hist = ir.tables["history_item"]
        if ir.history_kind == "lightgcn":
            if hist.codebook is not None:  # sum the decoded rows, then take the real columns
                total = _real_columns(g, "history_item", hist, g.one("ReduceSum", [
                    _decoded_rows(g, "history_item", hist, a), g.const("axis0", np.array([0], np.int64))],
                    keepdims=1))
            else:
                total = g.one("ReduceSum", [_gather_rows(g, "history_item", hist, a),
                                            g.const("axis0", np.array([0], np.int64))], keepdims=1)
            norm = g.one("Reciprocal", [g.one("Sqrt", [g.one("Cast", [b], to=1)])])
            u = g.one("Mul", [total, norm])
        else:
            u = _gnn_history(g, ir, _gather_rows(g, "history_item", hist, a), a, b, history_capacity)
        _score(g, ir, u, a, k)
        models["history.onnx"] = _model(g, "history", {a: history_capacity, b: 1}, k)
    blob = _externalize(models)
    files = {name: model.SerializeToString(deterministic=True)  # type: ignore[attr-defined]
             for name, model in models.items()}
    if blob:
        files[DATA_FILE] = blob
    return OnnxModels(
        files=files, data=DATA_FILE if blob else None,
        activations="dynamic-uint8-asymmetric" if BY_NAME[weights].integer
        and ir.scorer.get("kind") != "mlp" else "float",
        weights=weights)


def runner(files: dict[str, bytes]) -> Runner:
    """One single-threaded CPU session per mode file of ``files`` (what :func:`build` returns),
    from memory: the shared external data is handed to ONNX Runtime by file name, as the browser
    runtime does (``externalData``)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    data = {name: np.frombuffer(b, np.uint8) for name, b in files.items() if not name.endswith(".onnx")}
    if data:
        opts.add_external_initializers_from_files_in_memory(list(data), list(data.values()),
                                                            [len(a) for a in data.values()])
    sessions = {name.removesuffix(".onnx"): ort.InferenceSession(b, opts, providers=["CPUExecutionProvider"])
                for name, b in files.items() if name.endswith(".onnx")}

    def run(mode: str, feeds: dict[str, np.ndarray], _data: object = data) -> dict[str, np.ndarray]:
        # (_data: the buffers ONNX Runtime was given live as long as the sessions)
        scores, items = sessions[mode].run(["scores", "items"], feeds)
        return {"scores": scores, "items": items}

    return run


def build_target(ir: IR, *, k: int, history_capacity: int, exclude_capacity: int) -> Built:
    """The ONNX files of ``ir``; the parity check runs them in ONNX Runtime (CPU, one thread)."""
    models = build(ir, k=k, history_capacity=history_capacity, exclude_capacity=exclude_capacity)
    return Built(files=models.files, weights=models.weights, activations=models.activations,
                 runner=lambda root: runner(models.files), data=models.data)


TARGET = Target(name="onnx", toolkit=("onnx", "onnxruntime"), build=build_target)
