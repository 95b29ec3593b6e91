"""TFLite target: one ``.tflite`` file with a ``lookup`` and/or ``history`` signature.

The graph is written in TensorFlow straight from the IR tables (no framework model in between)
and converted with builtin ops only. How each table dtype is laid out:

- float32: plain constants; float16: the converter's float16 mode (fp16 constants in the file,
  one DEQUANTIZE each, expanded to float32 once when the interpreter prepares).
- int8, gathered tables (``user``, ``history_item``): int8 constants, GATHER + CAST, times the
  gathered per-row scale. The scale vector is gathered with GATHER_ND because the dynamic-range
  quantizer would otherwise turn a >= 1024-element float32 GATHER operand into int8 (lossy).
- int8, item table (the scoring matmul): the *integers* ``q`` are given to the converter as a
  float32 constant with dynamic-range quantization on and per-channel quantization off. Every
  non-zero row of a per-row-symmetric table holds a ±127, so the per-tensor scale is exactly 1
  and the converter re-derives ``q`` bit for bit (checked after conversion). The per-row scale
  is applied after the mask as a float32 MUL, so the optimizer cannot fold it into the weights.
  Per-channel weights would store a float32 scale *and an int64 zero point per item in every
  signature* (24 B/item/signature); this layout stores 4 B/item once.
- dot scorer: the item table has zero rows appended up to a multiple of ``BLOCK`` above
  ``pad_index``; those slots are always in the exclusion scatter with twice the mask (and the
  largest row scale), so they rank after every item, masked ones included: the score vector
  needs no slice, splits evenly into blocks, and a top-k never returns a padding slot. Large
  catalogues take an exact two-stage top-k (``_block_top_k``: the best blocks by their maximum,
  then the best items inside them), about 40 us faster than one TOPK_V2 over 41k scores
  (docs/export_notes.md).

- int4 (``int4-item``: the item table; ``int4``: every table): converted as int8, then the
  flatbuffer is rewritten (``_store_int4``): the item weights become an INT4 FULLY_CONNECTED
  weight (per-tensor scale 1) and, for ``int4``, the gathered tables INT4 GATHER operands (odd
  widths padded with a zero column, sliced off after the CAST). Scales stay as for int8.

The file is checked after conversion: builtin ops only, one copy of each table, the item
weights (and int4 gathered tables) equal the IR's integers, and no table scale was
re-quantized.

sage / gcn / gat history programs (a new user's last layer, ``_gnn_history``) and the MLP head
(``_mlp_scores``) are written the same way; their small dense weights stay float32, so an MLP
model has no activation quantization at all (docs/export_notes.md, "GNN encoders").
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgerec.errors import ExportError
from edgerec.ir import IR, Table

MASK = np.float32(-1e9)
LOWEST = np.finfo(np.float32).min  # a floored top-k candidate: never selected (see _block_top_k)
INT4_ITEM = "int8-per-row+int4-item"  # the item matmul's weights in int4, gathered tables int8
INT4 = "int4-per-row"  # every table in int4: the matmul's weights and the gathered tables
INT4_WEIGHTS = (INT4_ITEM, INT4)  # the item matmul stored as an INT4 tensor
INTEGER_WEIGHTS = ("int8-per-row", *INT4_WEIGHTS)  # the converter's dynamic-range quantization
GATHERED = ("user", "history_item")  # the row-gathered tables a dot-scorer model stores whole
BLOCK = 64  # scores per block of the two-stage top-k; the item table is padded to a multiple
BLOCKS_PER_K = 4  # the two-stage top-k is used from k * BLOCKS_PER_K blocks up


def padded_scores(num_items: int) -> int:
    """Length of a dot scorer's score vector: the items, ``pad_index``, then zero rows up to a
    multiple of ``BLOCK``."""
    return -(-(num_items + 1) // BLOCK) * BLOCK


def uses_block_top_k(num_items: int, k: int) -> bool:
    return padded_scores(num_items) // BLOCK >= BLOCKS_PER_K * k


def _block_top_k(tf: Any, s: Any, k: int) -> tuple[Any, Any]:
    """Top-k of ``s`` [P], P a multiple of BLOCK, as one TOPK_V2 over the P / BLOCK block maxima
    and one over the k best blocks' k * BLOCK scores. Exact: every item scoring above the k-th
    best value sits in a block whose maximum beats every block holding none of the top k; the
    chosen blocks are taken in index order, so equal scores rank lowest index first as one
    TOPK_V2 ranks them (tests compare with a stable sort, ties included)."""
    nb = int(s.shape[0]) // BLOCK
    blocks = tf.reshape(s, [nb, BLOCK])
    maxima, best = tf.math.top_k(tf.reduce_max(blocks, axis=1), k=k)
    best = tf.sort(best)  # candidates in index order: equal scores rank lowest index first,
    # as one TOPK_V2 over all scores (and the numpy and ONNX backends) would rank them
    candidates = tf.reshape(tf.gather(blocks, best), [k * BLOCK])
    # the k-th best block maximum: k distinct scores reach it, so every top-k score does too.
    # Candidates below it are floored, which leaves the last TOPK_V2 about 2k real contenders
    # instead of k * BLOCK (fewer heap updates: about 5 us of 45 on Gowalla)
    floor = maxima[k - 1]
    candidates = tf.where(candidates >= floor, candidates, tf.constant(LOWEST))
    values, pos = tf.math.top_k(candidates, k=k, sorted=True)
    ids = tf.reshape(best, [k, 1]) * BLOCK + tf.reshape(tf.range(BLOCK, dtype=tf.int32), [1, BLOCK])
    return values, tf.gather(tf.reshape(ids, [k * BLOCK]), pos)


@dataclass
class TFLiteModel:
    """A converted model plus what the checks found in it."""

    data: bytes
    activations: str
    weights: str
    ops: dict[str, list[str]] = field(default_factory=dict)


def _padded(a: np.ndarray) -> np.ndarray:
    """``a`` with one extra all-zero row (or 0 entry) at ``pad_index``."""
    return np.concatenate([a, np.zeros((1, *a.shape[1:]), a.dtype)])


def _stored_rows(table: Table) -> np.ndarray:
    """A gathered integer table as the model stores it: the IR's rows, the all-zero row at
    ``pad_index``, and for int4 an even width (a zero column the graph slices off again:
    LiteRT's GATHER reads INT4 rows as whole bytes, so an odd row would start mid-byte)."""
    v = _padded(table.values)
    if table.bits == 4 and v.shape[1] % 2:
        v = np.concatenate([v, np.zeros((v.shape[0], 1), v.dtype)], axis=1)
    return v


def _item_rows(ir: IR) -> np.ndarray:
    """The dot scorer's item table as the model holds it: the IR's values, then all-zero rows up
    to ``padded_scores`` (``pad_index`` and the block padding)."""
    a = ir.tables["item"].values
    rows = padded_scores(ir.num_items)
    return np.concatenate([a, np.zeros((rows - a.shape[0], *a.shape[1:]), a.dtype)])


def _weights_kind(ir: IR) -> str:
    kinds = {ir.tables[n].dtype for n in ir.serving_tables()}
    if len(kinds) != 1:
        raise ExportError(f"tables of mixed dtypes {sorted(kinds)} are not supported; "
                          "quantize all serving tables with one scheme")
    kind = {"int8": "int8-per-row", "float16": "float16", "float32": "float32"}[kinds.pop()]
    if kind != "int8-per-row":
        return kind
    bits = {n: ir.tables[n].bits for n in ir.serving_tables()}
    if ir.scorer.get("kind") == "mlp":
        if 4 in bits.values():
            raise ExportError("int4 tables are exported for the dot scorer only; this model scores "
                              "with an MLP head (quantize it with int8)")
        return kind
    gathered = [bits[n] == 4 for n in GATHERED if n in bits]
    if bits["item"] == 4 and all(gathered):
        return INT4
    if bits["item"] == 4 and not any(gathered):
        return INT4_ITEM
    if 4 in bits.values():
        raise ExportError(f"tables of mixed widths {bits}: TFLite stores int4 for the item table "
                          "alone (int4-item) or for every table (int4)")
    return kind


def pack_int4(q: np.ndarray) -> bytes:
    """Values in [-8, 7], flattened row-major, two a byte, the first in the low nibble (the
    layout TFLite's INT4 tensors use; the parity check would catch any other)."""
    flat = np.asarray(q).ravel()
    if flat.size and (flat.min() < -8 or flat.max() > 7):
        raise ExportError(f"int4 values must lie in [-8, 7], got [{flat.min()}, {flat.max()}]")
    flat = flat.astype(np.int8)
    if flat.size % 2:
        flat = np.concatenate([flat, np.zeros(1, np.int8)])
    nib = (flat.astype(np.uint8) & 0x0F)
    return (nib[0::2] | (nib[1::2] << 4)).astype(np.uint8).tobytes()


def unpack_int4(data: bytes, count: int) -> np.ndarray:
    """The ``count`` signed values of a packed INT4 buffer (low nibble first), as int8."""
    raw = np.frombuffer(data, np.uint8)
    nib = np.empty(raw.size * 2, np.int16)
    nib[0::2], nib[1::2] = raw & 0x0F, raw >> 4
    return np.where(nib > 7, nib - 16, nib)[:count].astype(np.int8)


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
    for u, vector in zip(probes, Table(user.values[probes], user.scale[probes]).dequantize(),
                         strict=True):
        out = run(**{a: np.array([u], np.int32), b: exclude})
        ok = out["scores"] > -1e8
        for scheme in schemes:
            want = quant.score_items(vector, item.values, item.scale, scheme)
            errors[scheme] = max(errors[scheme], float(np.abs(
                want[out["items"][ok]] - out["scores"][ok]).max(initial=0.0)))
    return min(schemes, key=errors.__getitem__)


def _store_int4(data: bytes, ir: IR, weights: str) -> bytes:
    """Rewrite the int4 tables of the converted model as INT4 tensors (the converter writes int8
    only): the FULLY_CONNECTED item weights (per-tensor scale 1, the IR's integers in [-7, 7]
    packed two a byte; the per-row scale stays the float32 MUL after the mask, as for int8) and,
    for ``int4-per-row``, the GATHER operands ``user`` / ``history_item`` (no quantization
    parameters: GATHER hands the integers to the CAST, the per-row scale is gathered as for
    int8). Every table keeps one buffer, shared by the signatures that read it."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    item_buffers, float_item = set(), False
    padded = {n: _stored_rows(ir.tables[n]) for n in GATHERED
              if weights == INT4 and n in ir.serving_tables()}
    raw = {n: np.ascontiguousarray(v).tobytes() for n, v in padded.items()}
    gathered: dict[str, set[int]] = {n: set() for n in padded}
    for sg in model.subgraphs:
        for op in sg.operators:
            name = _op_name(model, op.opcodeIndex, schema)
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
        model.buffers[item_buffers.pop()].data = np.frombuffer(pack_int4(_item_rows(ir)), np.uint8)
    for table, bufs in gathered.items():
        if len(bufs) != 1:
            raise ExportError(f"expected one {table!r} table buffer, found {len(bufs)}")
        model.buffers[next(iter(bufs))].data = np.frombuffer(pack_int4(padded[table]), np.uint8)
    return _pack(model, len(data))


def _pack(model: Any, size_hint: int) -> bytes:
    """A rewritten flatbuffer model (``schema.ModelT``) serialized again."""
    import flatbuffers

    builder = flatbuffers.Builder(size_hint)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _dense(table: Table) -> np.ndarray:
    """A small dense weight (MLP head, biases, defaults) as float32: kept float in the model."""
    return table.dequantize().astype(np.float32)


def _build_module(ir: IR, k: int, history_capacity: int, exclude_capacity: int) -> Any:
    import tensorflow as tf

    from exporters.parity import input_names

    n_items = ir.num_items
    mlp = ir.scorer.get("kind") == "mlp"
    item = ir.tables["item"]
    w = item_scale = None
    mask_value = float(MASK)
    n_scores = n_items if mlp else padded_scores(n_items)
    pads = tf.constant(np.arange(n_items, n_scores, dtype=np.int32))
    if not mlp:
        # int8: the integers themselves (per-tensor scale exactly 1); the row scale comes after
        w = tf.constant(_item_rows(ir).astype(np.float32).T)
        if item.dtype == "int8":
            # padding rows take the largest row scale: with twice the mask (below) they rank
            # after every item, masked ones included, so a top-k never returns a padding slot
            scale = np.full(n_scores, item.scale.max(), np.float32)
            scale[:n_items] = item.scale
            item_scale = tf.constant(scale)
            # the mask is added before the row scale: keep masked items <= -1e9 after it
            mask_value = float(max(MASK / np.float32(item.scale.min()), np.float32(-3e38)))

    with np.errstate(over="ignore"):  # -inf when the mask is already near float32's limit
        pad_penalty = tf.constant(np.full(n_scores - n_items, 2 * np.float32(mask_value), np.float32))

    def gather_rows(table: Table, idx: Any) -> Any:
        if table.dtype == "int8":
            q = tf.constant(_stored_rows(table))
            s = tf.constant(_padded(table.scale.astype(np.float32)))
            rows = tf.cast(tf.gather(q, idx), tf.float32)
            if q.shape[1] != table.values.shape[1]:  # int4, odd width: drop the byte padding
                rows = rows[:, : table.values.shape[1]]
            return rows * tf.reshape(tf.gather_nd(s, tf.reshape(idx, [-1, 1])), [-1, 1])
        return tf.gather(tf.constant(_padded(table.values.astype(np.float32))), idx)

    def mask_and_topk(s: Any, exclude: Any, row_scale: Any = None) -> dict[str, Any]:
        if mlp:  # [n_items] scores: scatter into n_items + 1 slots (pad_index), then slice
            penalty = tf.scatter_nd(tf.reshape(exclude, [-1, 1]),
                                    tf.fill(tf.shape(exclude), tf.constant(mask_value, tf.float32)),
                                    [n_items + 1])[:n_items]
        else:  # [n_scores] scores: the padding slots always get twice the mask
            idx = tf.concat([exclude, pads], axis=0)
            fill = tf.concat([tf.fill(tf.shape(exclude), tf.constant(mask_value, tf.float32)),
                              pad_penalty], axis=0)
            penalty = tf.scatter_nd(tf.reshape(idx, [-1, 1]), fill, [n_scores])
        s = s + penalty
        if row_scale is not None:
            s = s * row_scale
        if not mlp and uses_block_top_k(n_items, k):
            values, indices = _block_top_k(tf, s, k)
        else:
            values, indices = tf.math.top_k(s, k=k, sorted=True)
        return {"scores": values, "items": indices}

    def score(u: Any, exclude: Any, runtime_input: Any) -> dict[str, Any]:
        if mlp:  # a runtime 0 (inputs are >= 0) that the converter cannot fold away
            zero = tf.minimum(tf.reshape(runtime_input, []), 0)
            return mask_and_topk(_mlp_scores(tf, ir, u, zero), exclude)
        return mask_and_topk(tf.reshape(tf.matmul(u, w), [n_scores]), exclude, item_scale)

    class Model(tf.Module):
        pass

    model = Model()
    if "lookup" in ir.modes:
        user = ir.tables["user"]
        a, b = input_names("lookup")

        @tf.function(input_signature=[tf.TensorSpec([1], tf.int32, name=a),
                                      tf.TensorSpec([exclude_capacity], tf.int32, name=b)])
        def lookup(user_idx: Any, exclude: Any) -> dict[str, Any]:
            return score(gather_rows(user, user_idx), exclude, user_idx)

        model.lookup = lookup
    if "history" in ir.modes:
        hist = ir.tables["history_item"]
        a, b = input_names("history")

        @tf.function(input_signature=[tf.TensorSpec([history_capacity], tf.int32, name=a),
                                      tf.TensorSpec([1], tf.int32, name=b)])
        def history(items: Any, length: Any) -> dict[str, Any]:
            rows = gather_rows(hist, items)
            if ir.history_kind == "lightgcn":
                total = tf.reduce_sum(rows, axis=0, keepdims=True)
                u = total * tf.math.rsqrt(tf.cast(length, tf.float32))
            else:
                u = _gnn_history(tf, ir, rows, items, length, history_capacity)
            return score(u, items, length)

        model.history = history
    return model


def _gnn_history(tf: Any, ir: IR, rows: Any, items: Any, length: Any, capacity: int) -> Any:
    """The sage / gcn / gat last layer for a new user over the gathered history rows [C, d]
    (padding rows are zero); the op order is the one ``runtime.backends.reference`` follows."""
    kind = ir.history_kind
    n = tf.cast(length, tf.float32)
    if kind in ("sage", "gcn"):
        total = tf.reduce_sum(rows, axis=0, keepdims=True)
        u = total / n if kind == "sage" else total * tf.math.rsqrt(n + 1.0)
        return u + tf.constant(_dense(ir.tables["user_default"]))
    # gat: softmax over the real slots only (padding masked by position, before the softmax);
    # the logit vector is gathered with GATHER_ND so the dynamic-range quantizer leaves it float
    logits = tf.constant(_padded(_dense(ir.tables["history_logit"])))  # [I+1, 1]
    s = tf.reshape(tf.gather_nd(logits, tf.reshape(items, [-1, 1])), [1, capacity])
    s = tf.nn.leaky_relu(s, alpha=float(ir.history.get("negative_slope", 0.2)))
    valid = tf.reshape(tf.range(capacity, dtype=tf.int32), [1, capacity]) < tf.reshape(length, [1, 1])
    s = tf.where(valid, s, tf.constant(-1e30, tf.float32))
    weights = tf.reshape(tf.nn.softmax(s, axis=-1), [capacity, 1])
    u = tf.reduce_sum(rows * weights, axis=0, keepdims=True)
    return u + tf.constant(_dense(ir.tables["history_bias"]))


def _mlp_scores(tf: Any, ir: IR, u: Any, zero: Any) -> Any:
    """``relu(u W1_user + b1 + T_i) . w2 + b2`` for every item -> [I].

    The dense weights stay float32: ``[u, 1] [W1_user; b1]`` is MUL + SUM (a FULLY_CONNECTED
    with a >= 1024-element constant would be re-quantized per tensor by the converter), and
    ``b1`` rides in it so that no constant is ever added to the table (the converter would
    fold ``T + b1`` into a new constant). ``T = mlp_item``: int8 is RESHAPE (to a shape that
    depends on the input through ``zero``, a runtime 0, so the converter cannot fold the CAST
    into a float32 copy of the table) + CAST + MUL by the per-row scale; no DEQUANTIZE."""
    t = ir.tables["mlp_item"]
    d, h = ir.tables["mlp_w1_user"].shape
    w1b = np.concatenate([_dense(ir.tables["mlp_w1_user"]), _dense(ir.tables["mlp_b1"])])
    u1 = tf.concat([tf.reshape(u, [d, 1]), tf.ones([1, 1], tf.float32)], axis=0)
    hu = tf.reduce_sum(u1 * tf.constant(w1b), axis=0, keepdims=True)  # [1, h]
    if t.dtype == "int8":
        q = tf.reshape(tf.constant(t.values), tf.stack([ir.num_items + zero, h]))
        table = tf.cast(q, tf.float32) * tf.constant(t.scale.astype(np.float32).reshape(-1, 1))
    else:
        table = tf.constant(t.values.astype(np.float32))
    hidden = tf.nn.relu(table + hu)  # [I, h]
    w2 = _dense(ir.tables["mlp_w2"])  # [h, 1]
    if h < 1024:  # FULLY_CONNECTED stays float below the quantizer's 1024-element threshold
        s = tf.reshape(tf.matmul(hidden, tf.constant(w2)), [ir.num_items])
    else:
        s = tf.reduce_sum(hidden * tf.constant(w2.reshape(1, h)), axis=1)
    return s + tf.constant(_dense(ir.tables["mlp_b2"]).reshape(1))


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
    weights = _weights_kind(ir)
    with _quiet():  # TensorFlow logs (oneDNN, absl) while it builds the graph, whatever the level
        try:
            import tensorflow as tf
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ExportError("the tflite target needs tensorflow (pip install edgerec[compiler])") from e
        module = _build_module(ir, k, history_capacity, exclude_capacity)
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
        data = _rename_signature(bytes(data), ir.modes[0])
    if weights in INT4_WEIGHTS:
        data = _store_int4(bytes(data), ir, weights)
    return check_model(bytes(data), ir, weights)


def _rename_signature(data: bytes, key: str) -> bytes:
    """The model's one signature, keyed ``key`` (the mode) as the manifest and runtime expect."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    if len(model.signatureDefs) != 1:
        raise ExportError(f"expected one signature, the converter wrote {len(model.signatureDefs)}")
    model.signatureDefs[0].signatureKey = key.encode()
    return _pack(model, len(data))


# ---------------------------------------------------------------------------------------------
# Checks on the converted flatbuffer


def _op_name(model: Any, code_index: int, schema: Any) -> str:
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
        out[sig.signatureKey.decode()] = [_op_name(model, op.opcodeIndex, schema)
                                          for op in sg.operators]
    return out


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
    want = _item_rows(ir)
    activations = "float"
    int4_weights = False
    fc_buffers = set()
    for sig in model.signatureDefs:
        sg = model.subgraphs[sig.subgraphIndex]
        fcs = [op for op in sg.operators
               if _op_name(model, op.opcodeIndex, schema) == "FULLY_CONNECTED"]
        if len(fcs) != 1:
            raise ExportError(f"signature {sig.signatureKey.decode()}: expected one FULLY_CONNECTED")
        fc = fcs[0]
        wt = sg.tensors[fc.inputs[1]]
        producer = [op for op in sg.operators if fc.inputs[1] in list(op.outputs)]
        if producer and _op_name(model, producer[0].opcodeIndex, schema) == "DEQUANTIZE":
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
        if weights in INTEGER_WEIGHTS and "DEQUANTIZE" in ops[sig.signatureKey.decode()]:
            raise ExportError("the converter re-quantized a float32 table scale (DEQUANTIZE found)")
    if len(fc_buffers) != 1:
        raise ExportError(f"the item table is stored {len(fc_buffers)} times in the model file")
    if weights == INT4:
        _check_gathered_int4(model, schema, ir)
    if int4_weights:  # one probe for the file: both signatures share the weights and kernel
        activations = _int4_input_scheme(data, ir)
    return TFLiteModel(data=data, activations=activations, weights=weights, ops=ops)


def _check_gathered_int4(model: Any, schema: Any, ir: IR) -> None:
    """An ``int4-per-row`` model gathers ``user`` / ``history_item`` from INT4 tensors holding the
    IR's integers (unpacked independently of the packer), one buffer each, and from no int8 or
    float constant."""
    want = {n: _stored_rows(ir.tables[n]) for n in GATHERED if n in ir.serving_tables()}
    found: dict[str, set[int]] = {}
    for sg in model.subgraphs:
        for op in sg.operators:
            if _op_name(model, op.opcodeIndex, schema) != "GATHER":
                continue
            t = sg.tensors[op.inputs[0]]
            buf = model.buffers[t.buffer].data
            if buf is None or not len(buf):
                continue  # a computed operand (the top-k's gathers)
            if t.type != schema.TensorType.INT4:
                raise ExportError(f"an int4 model gathers rows from a constant of type {t.type}")
            stored = np.asarray(buf, np.uint8).tobytes()
            match = [n for n, v in want.items() if list(t.shape) == list(v.shape)
                     and len(stored) == (v.size + 1) // 2
                     and np.array_equal(unpack_int4(stored, v.size), v.ravel())]
            if not match:
                raise ExportError("an int4 gathered table differs from the IR's integers")
            for name in match:  # byte-identical tables share one buffer
                found.setdefault(name, set()).add(t.buffer)
    if set(found) != set(want) or any(len(b) != 1 for b in found.values()):
        raise ExportError(f"int4 gathered tables: expected {sorted(want)} once each, found "
                          f"{ {n: len(b) for n, b in found.items()} }")


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
            if _op_name(model, op.opcodeIndex, schema) == "FULLY_CONNECTED" and \
                    sg.tensors[op.inputs[1]].type != schema.TensorType.FLOAT32:
                raise ExportError(f"signature {key}: the converter quantized a dense MLP weight")
        if weights == "int8-per-row" and "DEQUANTIZE" in ops[key]:
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
