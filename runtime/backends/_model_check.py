"""Does the model file hold what the manifest says? Weight types and shapes, read cheaply.

The manifest's hashes prove the files are the ones the manifest lists, not that the manifest
describes them: a float32 ``model.tflite`` copied into an int8 artifact (hashes re-signed)
would load and answer while the manifest claims another size, scheme and accuracy. Before an
interpreter is created, the backends read the model file's weight tensors (no interpreter, no
extra dependency: ``_tflite_file`` / ``_onnx_file``) and refuse a mismatch with one line.

Checked, per scheme (``quantization.weights``) and ``dim``:

- the scored item table: the constant weights of every scoring op (TFLite FULLY_CONNECTED,
  through a DEQUANTIZE for float16; ONNX MatMul / MatMulInteger, through Cast), its element
  type, its width (``dim``) and that it has a row for every item (dot scorer only);
- the gathered tables (user and history rows: constants of GATHER ops ``dim`` wide), their
  element type.

ONNX only: every initializer stored as external data must point at a file a signature names
(``external_data``), so an interpreter reads no file the manifest does not hash.

An integer scheme's constant below the TFLite converter's 1,024-element quantization threshold
is accepted as float32 (the converter keeps it float, holding the same integers). Not checked:
the values and scales themselves (the exporters' parity check and the manifest's
hashes cover them), the activation scheme, ``k``, and MLP heads' dense layers. A file the
readers cannot parse (or a TFLite file without ``flatbuffers`` installed) is left to the
interpreter.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from runtime.backends import _onnx_file, _tflite_file
from runtime.errors import ArtifactError
from runtime.weights import STORAGES

# (item table, gathered tables) element types in the model file, per manifest scheme
TFLITE_TYPES = {s.name: s.element_types for s in STORAGES}
# ONNX stores an int8 item table as uint8 (+128, for MatMulInteger); int4 tables are INT4
# initializers Cast to int8 in the graph
ONNX_TYPES = {s.name: ("uint8" if s.item_bits == 8 else s.element_types[0], s.element_types[1])
              for s in STORAGES}
GATHER = 36
# The TFLite converter quantizes only constants of at least this many elements; below it, an
# integer scheme's values stay float32 constants holding the same integers (exact).
CONVERTER_MIN_ELEMENTS = 1024


def _refuse(path: Path, what: str, found: Iterable[str], m: dict[str, Any], want: str) -> None:
    raise ArtifactError(f"{path}: the model's {what} {'/'.join(sorted(set(found)))}, but the "
                        f"manifest says {m['quantization']['weights']} ({want}) with dim {m['dim']}: "
                        "the model file is not the one this manifest describes")


def _tflite_type_ok(t: _tflite_file.Tensor, want: str, dequantized: bool) -> bool:
    if t.type == want and dequantized == (want == "float16"):
        return True
    return (want in ("int8", "int4") and t.type == "float32" and not dequantized
            and math.prod(t.shape) < CONVERTER_MIN_ELEMENTS)


def check_tflite(m: dict[str, Any], path: Path) -> None:
    """Refuse a ``.tflite`` file whose weights disagree with manifest ``m`` (see module doc)."""
    want = TFLITE_TYPES.get(m["quantization"]["weights"])
    ops = _tflite_file.operators(path)
    if want is None or not ops:
        return
    dim, n = int(m["dim"]), int(m["num_items"])
    if m.get("scorer", {"kind": "dot"}).get("kind") == "dot":
        items = []
        for op in ops:
            if op.builtin == _tflite_file.FULLY_CONNECTED and len(op.inputs) >= 2:
                const, dequantized = _tflite_file.constant_source(ops, op, op.inputs[1])
                if const is not None:
                    items.append((const, dequantized))
        if not items:
            raise ArtifactError(f"{path}: no scoring FULLY_CONNECTED with constant weights; "
                                "the model file is not an edgerec model")
        shapes = {t.shape for t, _ in items}
        if any(len(s) != 2 or s[1] != dim or s[0] < n for s in shapes):
            _refuse(path, "item table is", (f"[{', '.join(map(str, s))}]" for s in shapes), m,
                    f"[>= {n}, {dim}]")
        if not all(_tflite_type_ok(t, want[0], d) for t, d in items):
            _refuse(path, "item table is", {t.type for t, _ in items}, m, f"item table {want[0]}")
    gathered = []
    for op in ops:
        if op.builtin == GATHER and op.inputs:
            const, d = _tflite_file.constant_source(ops, op, op.inputs[0])
            if const is not None and len(const.shape) == 2 and const.shape[1] == dim:
                gathered.append((const, d))
    if not all(_tflite_type_ok(t, want[1], d) for t, d in gathered):
        _refuse(path, "gathered tables are", {t.type for t, _ in gathered}, m,
                f"gathered tables {want[1]}")


def check_onnx(m: dict[str, Any], path: Path) -> None:
    """Refuse an ``.onnx`` file whose weights disagree with manifest ``m`` (see module doc)."""
    want = ONNX_TYPES.get(m["quantization"]["weights"])
    g = _onnx_file.read_graph(path)
    if g is None:
        return
    if want is not None:
        _check_onnx_weights(m, path, g, want)
    listed = {s["external_data"] for s in m["signatures"].values() if s.get("external_data")}
    stray = sorted({loc for loc in g.external.values() if loc not in listed})
    if stray:
        raise ArtifactError(f"{path}: the model reads its tables from {', '.join(map(repr, stray))}, "
                            "which no signature of the manifest names (external_data): refusing "
                            "an unhashed file")


def _check_onnx_weights(m: dict[str, Any], path: Path, g: _onnx_file.Graph,
                        want: tuple[str, str]) -> None:
    dim, n = int(m["dim"]), int(m["num_items"])
    producer = {out: (op, ins) for op, ins, outs in g.nodes for out in outs}

    def initializer(name: str) -> tuple[str, tuple[int, ...]] | None:
        for _ in range(8):  # through Cast / Identity chains
            if name in g.initializers:
                return g.initializers[name]
            op, ins = producer.get(name, ("", []))
            if op not in ("Cast", "Identity") or not ins:
                return None
            name = ins[0]
        return None

    if m.get("scorer", {"kind": "dot"}).get("kind") == "dot":
        items = [t for op, ins, _ in g.nodes if op in ("MatMul", "MatMulInteger") and len(ins) >= 2
                 and (t := initializer(ins[1])) is not None]
        if not items:
            raise ArtifactError(f"{path}: no scoring MatMul over a constant item table; "
                                "the model file is not an edgerec model")
        shapes = {s for _, s in items}
        if any(len(s) != 2 or s[0] != dim or s[1] < n for s in shapes):
            _refuse(path, "item table is", (f"[{', '.join(map(str, s))}]" for s in shapes), m,
                    f"[{dim}, >= {n}]")
        if {t for t, _ in items} != {want[0]}:
            _refuse(path, "item table is", {t for t, _ in items}, m, f"item table {want[0]}")
    gathered = {t[0] for op, ins, _ in g.nodes if op == "Gather" and ins
                and (t := initializer(ins[0])) is not None and len(t[1]) == 2 and t[1][1] == dim}
    if gathered and gathered != {want[1]}:
        _refuse(path, "gathered tables are", gathered, m, f"gathered tables {want[1]}")
