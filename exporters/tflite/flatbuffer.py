"""Rewrites of the converted flatbuffer: the lone signature's key, int4 tables stored as INT4
tensors (the converter writes int8 only), and per-row scales stored as float16 (the converter
would fold any float16 -> float32 cast into a float32 constant)."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgerec.errors import ExportError
from edgerec.ir import IR
from exporters.tflite.layout import codebooks, item_rows, scale_vectors, stored_rows
from exporters.weights import GATHERED, INT4, pack_int4
from runtime.quant import CENTROIDS, half_codebook, half_scale

DEQUANTIZE_FLOAT16_VERSION = 3  # the DEQUANTIZE version that reads float16 (TFLite op_version.cc)


def op_name(model: Any, code_index: int, schema: Any) -> str:
    oc = model.operatorCodes[code_index]
    code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
    if code == schema.BuiltinOperator.CUSTOM:
        return f"CUSTOM:{(oc.customCode or b'?').decode()}"
    names = {v: n for n, v in vars(schema.BuiltinOperator).items() if not n.startswith("_")}
    return names.get(code, f"UNKNOWN_{code}")


def list_ops(data: bytes) -> dict[str, list[str]]:
    """Operator names of each signature (``FlexXxx``/custom ops show as ``CUSTOM:<name>``)."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    out: dict[str, list[str]] = {}
    for sig in model.signatureDefs or []:
        sg = model.subgraphs[sig.subgraphIndex]
        out[sig.signatureKey.decode()] = [op_name(model, op.opcodeIndex, schema)
                                          for op in sg.operators]
    return out


def pack_model(model: Any, size_hint: int) -> bytes:
    """A rewritten flatbuffer model (``schema.ModelT``) serialized again."""
    import flatbuffers

    builder = flatbuffers.Builder(size_hint)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def rename_signature(data: bytes, key: str) -> bytes:
    """The model's one signature, keyed ``key`` (the mode) as the manifest and runtime expect."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    if len(model.signatureDefs) != 1:
        raise ExportError(f"expected one signature, the converter wrote {len(model.signatureDefs)}")
    model.signatureDefs[0].signatureKey = key.encode()
    return pack_model(model, len(data))


def store_int4(data: bytes, ir: IR, weights: str) -> bytes:
    """Rewrite the int4 tables of the converted model as INT4 tensors (the converter writes int8
    only): the FULLY_CONNECTED item weights (per-tensor scale 1, the IR's integers in [-7, 7]
    packed two a byte; the per-row scale stays the float32 MUL after the mask, as for int8) and,
    for ``int4-per-row``, the GATHER operands ``user`` / ``history_item`` (no quantization
    parameters: GATHER hands the integers to the CAST, the per-row scale is gathered as for
    int8). Every table keeps one buffer, shared by the signatures that read it."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    item_buffers, float_item = set(), False
    padded = {n: stored_rows(ir.tables[n]) for n in GATHERED
              if weights == INT4 and n in ir.serving_tables()}
    raw = {n: np.ascontiguousarray(v).tobytes() for n, v in padded.items()}
    gathered: dict[str, set[int]] = {n: set() for n in padded}
    for sg in model.subgraphs:
        for op in sg.operators:
            name = op_name(model, op.opcodeIndex, schema)
            if name == "FULLY_CONNECTED":
                t = sg.tensors[op.inputs[1]]
                if t.type == schema.TensorType.FLOAT32:
                    float_item = True  # < 1024 weights: the converter kept the matmul float (exact)
                    continue
                if t.type != schema.TensorType.INT8:
                    raise ExportError(f"the converter stored the item weights as type {t.type}")
                t.type = schema.TensorType.INT4
                quant = schema.QuantizationParametersT()
                quant.scale, quant.zeroPoint, quant.quantizedDimension = [1.0], [0], 0
                t.quantization = quant
                item_buffers.add(t.buffer)
            elif name == "GATHER" and padded:
                t = sg.tensors[op.inputs[0]]
                buf = model.buffers[t.buffer].data
                if t.type != schema.TensorType.INT8 or buf is None or not len(buf):
                    continue  # not a constant int8 table (the top-k's score and id gathers)
                stored = np.asarray(buf, np.uint8).tobytes()
                tables = [n for n, b in raw.items() if stored == b]
                if not tables:
                    raise ExportError("an int8 GATHER operand matches no IR table")
                t.type = schema.TensorType.INT4
                for table in tables:  # byte-identical tables share one buffer
                    gathered[table].add(t.buffer)
    if not float_item and len(item_buffers) != 1:
        raise ExportError(f"expected one item weight buffer, found {len(item_buffers)}")
    if item_buffers:
        model.buffers[item_buffers.pop()].data = np.frombuffer(pack_int4(item_rows(ir)), np.uint8)
    for table, bufs in gathered.items():
        if len(bufs) != 1:
            raise ExportError(f"expected one {table!r} table buffer, found {len(bufs)}")
        model.buffers[next(iter(bufs))].data = np.frombuffer(pack_int4(padded[table]), np.uint8)
    return pack_model(model, len(data))


def store_half_scales(data: bytes, ir: IR) -> bytes:
    """Store every per-row scale vector of the converted model whose values are exact in float16
    (:func:`runtime.quant.half_scale`), and every product codebook
    (:func:`runtime.quant.half_codebook`), as a FLOAT16 constant widened by one DEQUANTIZE per
    signature (the builtin kernel widens a constant input once, when the interpreter prepares
    it). The scale tensors are found by their bytes (:func:`~exporters.tflite.layout.
    scale_vectors`); a vector shared by the signatures keeps one buffer."""
    from ai_edge_litert import schema_py_generated as schema

    halves = {}
    for vector, half in [(v, half_scale(v)) for v in scale_vectors(ir)] + [
            (c, half_codebook(c)) for c in codebooks(ir)]:
        if half is not None:
            halves[np.ascontiguousarray(vector, np.float32).tobytes()] = half
    if not halves:
        return data
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    matches = []  # (subgraph, tensor index, float16 values): found before any buffer changes
    for sg in model.subgraphs:
        for i, t in enumerate(sg.tensors):
            buf = model.buffers[t.buffer].data
            if t.type == schema.TensorType.FLOAT32 and buf is not None and len(buf):
                half = halves.get(np.asarray(buf, np.uint8).tobytes())
                if half is not None:
                    matches.append((sg, i, half))
    if not matches:
        return data
    deq = _opcode(model, schema, schema.BuiltinOperator.DEQUANTIZE, DEQUANTIZE_FLOAT16_VERSION)
    widen: dict[int, list] = {}
    for sg, i, half in matches:
        t = sg.tensors[i]
        model.buffers[t.buffer].data = np.frombuffer(half.tobytes(), np.uint8)
        stored = schema.TensorT()
        stored.shape, stored.type, stored.buffer = list(t.shape), schema.TensorType.FLOAT16, t.buffer
        stored.name = (t.name or b"scale") + b"_float16"
        sg.tensors.append(stored)
        model.buffers.append(schema.BufferT())  # the float32 tensor is now computed, not stored
        t.buffer = len(model.buffers) - 1
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = deq, [len(sg.tensors) - 1], [i]
        widen.setdefault(id(sg), []).append(op)
    for sg in model.subgraphs:
        sg.operators = widen.get(id(sg), []) + list(sg.operators)
    return pack_model(model, len(data))


def gather_codebooks(data: bytes, ir: IR) -> bytes:
    """Turn each GATHER_ND of a product codebook ([M * 256, S] by flattened code indices [n * M,
    1]) into one GATHER by the [n, M] indices themselves (axis 0; the centroids come out [n, M,
    S], which the RESHAPE that follows reads as before). The graph is written with GATHER_ND
    because the converter's dynamic-range quantization would turn a float32 GATHER operand of
    >= 1024 elements into int8; after conversion nothing re-quantizes, and GATHER copies the same
    rows faster (no index reshape, no per-index depth loop). The codebooks are found by their
    bytes (:func:`~exporters.tflite.layout.codebook_rows`)."""
    from ai_edge_litert import schema_py_generated as schema

    books = {c.tobytes(): c.shape for c in codebooks(ir)}  # [M * 256, S]
    if not books:
        return data
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    gather = _opcode(model, schema, schema.BuiltinOperator.GATHER, 1)
    rewritten = 0
    for sg in model.subgraphs:
        producer = {out: op for op in sg.operators for out in op.outputs}
        readers: dict[int, int] = {}
        for op in sg.operators:
            for i in op.inputs:
                readers[i] = readers.get(i, 0) + 1
        dropped = []
        for op in sg.operators:
            if op_name(model, op.opcodeIndex, schema) != "GATHER_ND":
                continue
            params = sg.tensors[op.inputs[0]]
            buf = model.buffers[params.buffer].data
            if params.type != schema.TensorType.FLOAT32 or buf is None or not len(buf):
                continue
            shape = books.get(np.asarray(buf, np.uint8).tobytes())
            if shape is None:
                continue  # a per-row scale (GATHER_ND of a vector)
            m, s = shape[0] // CENTROIDS, shape[1]
            reshape = producer.get(op.inputs[1])
            if reshape is None or op_name(model, reshape.opcodeIndex, schema) != "RESHAPE":
                raise ExportError("a codebook GATHER_ND does not read reshaped code indices")
            codes = reshape.inputs[0]
            if list(sg.tensors[codes].shape)[-1:] != [m]:
                raise ExportError("a codebook GATHER_ND's indices are not [n, M] code indices")
            options = schema.GatherOptionsT()
            options.axis, options.batchDims = 0, 0
            op.opcodeIndex, op.inputs = gather, [op.inputs[0], codes]
            op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.GatherOptions, options
            out = sg.tensors[op.outputs[0]]
            out.shape = [*sg.tensors[codes].shape, s]
            out.shapeSignature = None
            if readers.get(reshape.outputs[0]) == 1:
                dropped.append(reshape)
            rewritten += 1
        sg.operators = [op for op in sg.operators if not any(op is d for d in dropped)]
    if not rewritten:
        raise ExportError("no codebook GATHER_ND found to rewrite")
    return pack_model(model, len(data))


def _opcode(model: Any, schema: Any, code: int, version: int) -> int:
    """Index of ``model``'s operator code for builtin ``code`` at ``version`` (added if absent)."""
    for i, oc in enumerate(model.operatorCodes):
        if max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode)) == code and oc.version == version:
            return i
    oc = schema.OperatorCodeT()
    oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), version
    model.operatorCodes.append(oc)
    return len(model.operatorCodes) - 1
