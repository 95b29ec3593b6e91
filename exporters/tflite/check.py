"""Checks on a converted TFLite file, and the interpreter run the parity check compares.

After conversion: builtin ops only, one copy of each table, the item weights (and int4 gathered
tables) equal the IR's integers, and no table or scale was re-quantized (the only DEQUANTIZEs an
integer model holds widen float16 scales). TFLite runs the parity
check with the builtin kernels and no default delegate (XNNPACK quantizes activations with its
own rounding; see docs/export_notes.md), single-threaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgerec.errors import ExportError
from edgerec.ir import IR
from exporters.target import Runner
from exporters.tflite.flatbuffer import list_ops, op_name
from exporters.tflite.layout import INTEGER_WEIGHTS, codebooks, item_rows, padded, stored_rows
from exporters.weights import GATHERED, INT4, INT4_PQ, INT4_WEIGHTS, unpack_int4
from runtime.artifact import MASKED_SCORE


@dataclass
class TFLiteModel:
    """A converted model plus what the checks found in it."""

    data: bytes
    activations: str
    weights: str
    ops: dict[str, list[str]] = field(default_factory=dict)


def check_model(data: bytes, ir: IR, weights: str) -> TFLiteModel:
    """Verify the converted file; returns it with the activation scheme it actually uses."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    ops = list_ops(data)
    if sorted(ops) != sorted(ir.modes):
        raise ExportError(f"converted model has signatures {sorted(ops)}, expected {sorted(ir.modes)}")
    bad = sorted({o for names in ops.values() for o in names if o.startswith(("CUSTOM", "UNKNOWN"))})
    if bad:
        raise ExportError(f"converted model uses non-builtin ops: {', '.join(bad)}")
    if ir.scorer.get("kind") == "mlp":
        return _check_mlp(model, schema, data, ops, ir, weights)
    want = item_rows(ir)
    activations = "float"
    int4_weights = False
    fc_buffers = set()
    for sig in model.signatureDefs:
        sg = model.subgraphs[sig.subgraphIndex]
        fcs = [op for op in sg.operators
               if op_name(model, op.opcodeIndex, schema) == "FULLY_CONNECTED"]
        if len(fcs) != 1:
            raise ExportError(f"signature {sig.signatureKey.decode()}: expected one FULLY_CONNECTED")
        fc = fcs[0]
        wt = sg.tensors[fc.inputs[1]]
        producer = [op for op in sg.operators if fc.inputs[1] in list(op.outputs)]
        if producer and op_name(model, producer[0].opcodeIndex, schema) == "DEQUANTIZE":
            fc_buffers.add(sg.tensors[producer[0].inputs[0]].buffer)  # float16 storage
        else:
            fc_buffers.add(wt.buffer)
        if weights in INT4_WEIGHTS and wt.type == schema.TensorType.INT4:
            stored = bytes(model.buffers[wt.buffer].data)
            scales = list(wt.quantization.scale) if wt.quantization else []
            if scales != [1.0] or len(stored) != (want.size + 1) // 2 or not np.array_equal(
                    unpack_int4(stored, want.size), want.ravel()):
                raise ExportError("converted int4 item weights differ from the IR's integers")
            int4_weights = True
        elif weights in INTEGER_WEIGHTS and wt.type == schema.TensorType.FLOAT32:
            # Below 1024 weights the converter leaves the matmul in float: the IR's integers
            # are then float32 constants and the scheme is plain float (exact all the same).
            q = np.frombuffer(bytes(model.buffers[wt.buffer].data), np.float32)
            if not np.array_equal(q, want.astype(np.float32).ravel()):
                raise ExportError("converted float item weights differ from the IR's integers")
        elif weights in INTEGER_WEIGHTS:
            if wt.type != schema.TensorType.INT8:
                raise ExportError(f"the converter stored the item weights as type {wt.type}")
            q = np.frombuffer(bytes(model.buffers[wt.buffer].data), np.int8)
            scales = list(wt.quantization.scale) if wt.quantization else []
            if scales != [1.0] or not np.array_equal(q, want.ravel()):
                raise ExportError("converted int8 item weights differ from the IR's integers")
            activations = ("dynamic-int8-asymmetric" if fc.builtinOptions.asymmetricQuantizeInputs
                           else "dynamic-int8-symmetric")
        if weights in INTEGER_WEIGHTS and _requantized(model, schema, sg):
            raise ExportError("the converter re-quantized a float32 table scale (DEQUANTIZE found)")
    if len(fc_buffers) != 1:
        raise ExportError(f"the item table is stored {len(fc_buffers)} times in the model file")
    if weights == INT4:
        _check_gathered_int4(model, schema, ir)
    if weights == INT4_PQ:
        _check_gathered_codes(model, schema, ir)
    if int4_weights:  # one probe for the file: both signatures share the weights and kernel
        activations = _int4_input_scheme(data, ir)
    return TFLiteModel(data=data, activations=activations, weights=weights, ops=ops)


def _requantized(model: Any, schema: Any, sg: Any) -> bool:
    """Whether a DEQUANTIZE in subgraph ``sg`` reads anything but a float16 constant: the
    converter re-quantized a float32 table or scale (the only DEQUANTIZEs an integer model may
    hold widen float16 scales, :func:`exporters.tflite.flatbuffer.store_half_scales`)."""
    return any(op_name(model, op.opcodeIndex, schema) == "DEQUANTIZE"
               and sg.tensors[op.inputs[0]].type != schema.TensorType.FLOAT16
               for op in sg.operators)


def _gathered_constants(model: Any, schema: Any) -> Iterator[tuple[Any, bytes]]:
    """(tensor, stored bytes) of every constant a GATHER reads rows from (the top-k's gathers
    read computed operands, which are skipped)."""
    for sg in model.subgraphs:
        for op in sg.operators:
            if op_name(model, op.opcodeIndex, schema) != "GATHER":
                continue
            t = sg.tensors[op.inputs[0]]
            buf = model.buffers[t.buffer].data
            if buf is not None and len(buf):
                yield t, np.asarray(buf, np.uint8).tobytes()


def _once_each(found: dict[str, set[int]], want: dict[str, np.ndarray], what: str) -> None:
    if set(found) != set(want) or any(len(b) != 1 for b in found.values()):
        raise ExportError(f"{what}: expected {sorted(want)} once each, found "
                          f"{ {n: len(b) for n, b in found.items()} }")


def _check_gathered_int4(model: Any, schema: Any, ir: IR) -> None:
    """An ``int4-per-row`` model gathers ``user`` / ``history_item`` from INT4 tensors holding the
    IR's integers (unpacked independently of the packer), one buffer each, and from no int8 or
    float constant."""
    want = {n: stored_rows(ir.tables[n]) for n in GATHERED if n in ir.serving_tables()}
    found: dict[str, set[int]] = {}
    for t, stored in _gathered_constants(model, schema):
        if t.type != schema.TensorType.INT4:
            raise ExportError(f"an int4 model gathers rows from a constant of type {t.type}")
        match = [n for n, v in want.items() if list(t.shape) == list(v.shape)
                 and len(stored) == (v.size + 1) // 2
                 and np.array_equal(unpack_int4(stored, v.size), v.ravel())]
        if not match:
            raise ExportError("an int4 gathered table differs from the IR's integers")
        for name in match:  # byte-identical tables share one buffer
            found.setdefault(name, set()).add(t.buffer)
    _once_each(found, want, "int4 gathered tables")


def _check_gathered_codes(model: Any, schema: Any, ir: IR) -> None:
    """An ``int4-per-row+pq-gathered`` model gathers ``user`` / ``history_item`` codes from UINT8
    constants holding the IR's codes (with the ``pad_index`` row), one buffer each."""
    want = {n: padded(ir.tables[n].values) for n in GATHERED if n in ir.serving_tables()}
    books = {c.tobytes() for c in codebooks(ir)}
    found: dict[str, set[int]] = {}
    for t, stored in _gathered_constants(model, schema):
        if t.type == schema.TensorType.FLOAT32 and stored in books:
            continue  # a codebook float16 cannot hold exactly
        if t.type != schema.TensorType.UINT8:
            raise ExportError(f"a product-coded model gathers rows from a constant of type {t.type}")
        match = [n for n, v in want.items() if list(t.shape) == list(v.shape) and stored == v.tobytes()]
        if not match:
            raise ExportError("a product-coded table in the model differs from the IR's codes")
        for name in match:
            found.setdefault(name, set()).add(t.buffer)
    _once_each(found, want, "product-coded tables")


def _check_mlp(model: Any, schema: Any, data: bytes, ops: dict[str, list[str]], ir: IR,
               weights: str) -> TFLiteModel:
    """An MLP head: every FULLY_CONNECTED stays float (no dynamic quantization), no table was
    re-quantized (no DEQUANTIZE in int8), and ``mlp_item`` is stored once, as the IR holds it."""
    t = ir.tables["mlp_item"]
    want = {"int8": schema.TensorType.INT8, "float32": schema.TensorType.FLOAT32,
            "float16": schema.TensorType.FLOAT16}[t.dtype]
    buffers = set()
    for sig in model.signatureDefs:
        key = sig.signatureKey.decode()
        sg = model.subgraphs[sig.subgraphIndex]
        for op in sg.operators:
            if op_name(model, op.opcodeIndex, schema) == "FULLY_CONNECTED" and \
                    sg.tensors[op.inputs[1]].type != schema.TensorType.FLOAT32:
                raise ExportError(f"signature {key}: the converter quantized a dense MLP weight")
        if weights == "int8-per-row" and _requantized(model, schema, sg):
            raise ExportError("the converter re-quantized a float32 table or scale (DEQUANTIZE found)")
        for tensor in sg.tensors:
            buf = model.buffers[tensor.buffer]
            if list(tensor.shape) == list(t.shape) and buf.data is not None and len(buf.data) \
                    and tensor.type == want:
                buffers.add(tensor.buffer)
    if len(buffers) != 1:
        raise ExportError(f"the MLP item table is stored {len(buffers)} times in the model file")
    stored = bytes(model.buffers[buffers.pop()].data)
    if t.dtype != "float16" and stored != np.ascontiguousarray(
            t.values.astype(np.float32) if t.dtype == "float32" else t.values).tobytes():
        raise ExportError("the MLP item table in the model differs from the IR's values")
    return TFLiteModel(data=data, activations="float", weights=weights, ops=ops)


def _int4_input_scheme(data: bytes, ir: IR) -> str:
    """How the builtin kernels quantize the FULLY_CONNECTED input when the weights are INT4:
    measured on the model, because it depends on the shape, not on the converter's flag. With
    LiteRT 2.3, below 32 input channels or with a width that is not a multiple of 8 the hybrid
    kernel quantizes asymmetrically (bit-exact with ``runtime.quant``); otherwise its optimized
    4-bit path quantizes symmetrically (within 3e-7 relative). Lookup vectors are probed (an
    int8 user row); without lookup mode the observed rule is used. The parity check that
    follows holds the exported model to whichever scheme is named here."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from exporters.parity import input_names
    from runtime import quant

    schemes = ("dynamic-int8-asymmetric", "dynamic-int8-symmetric")
    if "lookup" not in ir.modes:
        return schemes[1] if ir.dim >= 32 and ir.dim % 8 == 0 else schemes[0]
    run = Interpreter(model_content=data, num_threads=1,
                      experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
                      ).get_signature_runner("lookup")
    item, user = ir.tables["item"], ir.tables["user"]
    a, b = input_names("lookup")
    exclude = np.full(int(run.get_input_details()[b]["shape"][0]), ir.num_items, np.int32)
    errors = dict.fromkeys(schemes, 0.0)
    probes = np.linspace(0, ir.num_users - 1, min(ir.num_users, 8)).astype(np.int32)
    for u, vector in zip(probes, user.take(probes), strict=True):
        out = run(**{a: np.array([u], np.int32), b: exclude})
        ok = out["scores"] > MASKED_SCORE
        for scheme in schemes:
            want = quant.score_items(vector, item.values, item.scale, scheme)
            errors[scheme] = max(errors[scheme], float(np.abs(
                want[out["items"][ok]] - out["scores"][ok]).max(initial=0.0)))
    return min(schemes, key=errors.__getitem__)


def runner(data: bytes, default_delegates: bool = False) -> Runner:
    """Signature runners on ``data``; builtin kernels only unless ``default_delegates``
    (LiteRT's default, XNNPACK, whose dynamic quantization rounds differently)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = (OpResolverType.AUTO if default_delegates
                else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp = Interpreter(model_content=data, num_threads=1, experimental_op_resolver_type=resolver)
    runners: dict[str, Any] = {}

    def run(mode: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if mode not in runners:
            runners[mode] = interp.get_signature_runner(mode)
        return runners[mode](**feeds)

    return run
