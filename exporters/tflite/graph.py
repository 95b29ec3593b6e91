"""The TensorFlow program of a TFLite model, written straight from the IR tables (no framework
model in between), in the op order ``runtime.backends.reference`` and ``runtime.quant`` follow.

Large catalogues take an exact two-stage top-k (:func:`block_top_k`: the best blocks by their
maximum, then the best items inside them), about 40 us faster than one TOPK_V2 over 41k scores
(docs/export_notes.md). sage / gcn / gat history programs (a new user's last layer) and the MLP
head are written the same way; their small dense weights stay float32, so an MLP model has no
activation quantization at all (docs/export_notes.md, "GNN encoders").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgerec.ir import IR, Table
from exporters.tflite.layout import (
    BLOCK,
    codebook_rows,
    item_rows,
    padded,
    padded_item_scale,
    padded_row_scale,
    padded_scores,
    stored_rows,
    uses_block_top_k,
)
from runtime.artifact import MASK
from runtime.quant import pq_columns

LOWEST = np.finfo(np.float32).min  # a floored top-k candidate: never selected (see block_top_k)


def block_top_k(tf: Any, s: Any, k: int) -> tuple[Any, Any]:
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


def _dense(table: Table) -> np.ndarray:
    """A small dense weight (MLP head, biases, defaults) as float32: kept float in the model."""
    return table.dequantize().astype(np.float32)


def build_module(ir: IR, k: int, history_capacity: int, exclude_capacity: int) -> Any:
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
        w = tf.constant(item_rows(ir).astype(np.float32).T)
        if item.dtype == "int8":
            item_scale = tf.constant(padded_item_scale(ir))
            # the mask is added before the row scale: keep masked items <= -1e9 after it
            mask_value = float(max(MASK / np.float32(item.scale.min()), np.float32(-3e38)))

    with np.errstate(over="ignore"):  # -inf when the mask is already near float32's limit
        pad_penalty = tf.constant(np.full(n_scores - n_items, 2 * np.float32(mask_value), np.float32))

    def gather_rows(table: Table, idx: Any) -> Any:
        if table.codebook is not None:
            return _real_columns(tf, table, _decoded_rows(tf, table, idx))
        if table.dtype == "int8":
            q = tf.constant(stored_rows(table))
            s = tf.constant(padded_row_scale(table))
            rows = tf.cast(tf.gather(q, idx), tf.float32)
            if q.shape[1] != table.values.shape[1]:  # int4, odd width: drop the byte padding
                rows = rows[:, : table.values.shape[1]]
            return rows * tf.reshape(tf.gather_nd(s, tf.reshape(idx, [-1, 1])), [-1, 1])
        return tf.gather(tf.constant(padded(table.values.astype(np.float32))), idx)

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
            values, indices = block_top_k(tf, s, k)
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
            if ir.history_kind == "lightgcn":
                if hist.codebook is not None:  # sum the decoded rows, then take the real columns
                    total = _real_columns(tf, hist, tf.reduce_sum(
                        _decoded_rows(tf, hist, items), axis=0, keepdims=True))
                else:
                    total = tf.reduce_sum(gather_rows(hist, items), axis=0, keepdims=True)
                u = total * tf.math.rsqrt(tf.cast(length, tf.float32))
            else:
                u = _gnn_history(tf, ir, gather_rows(hist, items), items, length, history_capacity)
            return score(u, items, length)

        model.history = history
    return model


def _decoded_rows(tf: Any, table: Table, idx: Any) -> Any:
    """Rows ``idx`` of a product-coded table as [n, M * S] (each subspace's S columns), times the
    per-row scale: GATHER the uint8 codes, CAST, add each subspace's offset into the flattened
    [M * 256, S] codebook, GATHER_ND the centroids (GATHER_ND, because the dynamic-range quantizer
    would turn a float32 GATHER operand of >= 1024 elements into int8), RESHAPE, MUL."""
    m, k, s = table.codebook.shape
    codes = tf.constant(padded(table.values))
    book = tf.constant(codebook_rows(table))
    c = tf.cast(tf.gather(codes, idx), tf.int32) + tf.constant(np.arange(m, dtype=np.int32) * k)
    rows = tf.reshape(tf.gather_nd(book, tf.reshape(c, [-1, 1])), [-1, m * s])
    scale = tf.constant(padded_row_scale(table))
    return rows * tf.reshape(tf.gather_nd(scale, tf.reshape(idx, [-1, 1])), [-1, 1])


def _real_columns(tf: Any, table: Table, rows: Any) -> Any:
    """The ``width`` real columns of decoded rows [n, M * S] (``runtime.quant.pq_columns``): a
    copy, so it commutes with a history sum, which therefore runs first (a GATHER over the
    columns of every history row cost about 8 us of a 0.1 ms Gowalla query)."""
    m, _, s = table.codebook.shape
    columns = pq_columns(int(table.width), m, s)
    return rows if columns.size == m * s else tf.gather(rows, tf.constant(columns), axis=1)


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
    logits = tf.constant(padded(_dense(ir.tables["history_logit"])))  # [I+1, 1]
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
