"""Read the nodes and initializer types/shapes of an ``.onnx`` file, without the onnx package.

An ONNX model is a protobuf ``ModelProto``; onnxruntime does not expose its initializers, and
the device extra carries no ``onnx``/``protobuf``. The few fields needed are read straight from
the protobuf wire format (``ModelProto.graph`` = 7; ``GraphProto.node`` = 1, ``.initializer``
= 5; ``NodeProto.input`` = 1, ``.op_type`` = 4; ``TensorProto.dims`` = 1, ``.data_type`` = 2,
``.name`` = 8, ``.external_data`` = 13 as ``StringStringEntryProto`` key = 1 / value = 2),
skipping over every tensor's data. Anything unexpected returns None and the
caller checks nothing.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field
from pathlib import Path

# TensorProto.DataType values the runtime's checks name
DATA_TYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64",
              10: "float16", 11: "float64", 16: "bfloat16", 22: "int4", 21: "uint4"}


@dataclass
class Graph:
    """What the checks read: every node as (op_type, inputs, outputs), every initializer's
    type name and dims by name, and the external-data ``location`` of those stored outside the
    model file, by name."""

    nodes: list[tuple[str, list[str], list[str]]] = field(default_factory=list)
    initializers: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)
    external: dict[str, str] = field(default_factory=dict)


def _varint(b: memoryview, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = b[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(b: memoryview):  # (field number, wire type, value: int or memoryview)
    i, n = 0, len(b)
    while i < n:
        key, i = _varint(b, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(b, i)
        elif wire == 1:
            v, i = int.from_bytes(b[i: i + 8], "little"), i + 8
        elif wire == 5:
            v, i = int.from_bytes(b[i: i + 4], "little"), i + 4
        elif wire == 2:
            length, i = _varint(b, i)
            if i + length > n:
                raise ValueError("truncated field")
            v, i = b[i: i + length], i + length
        else:
            raise ValueError(f"wire type {wire}")
        yield num, wire, v


def _packed(v: memoryview) -> list[int]:
    out, i = [], 0
    while i < len(v):
        x, i = _varint(v, i)
        out.append(x)
    return out


def read_graph(path: Path) -> Graph | None:
    """The main graph's nodes and initializers of the model at ``path``; None if unreadable."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            view = memoryview(mm)
            try:
                return _graph(view)
            finally:
                view.release()
    except (OSError, ValueError, IndexError, UnicodeDecodeError, BufferError):
        return None


def _graph(model: memoryview) -> Graph | None:
    g = next((v for num, wire, v in _fields(model) if num == 7 and wire == 2), None)
    if g is None:
        return None
    out = Graph()
    for num, wire, v in _fields(g):
        if wire != 2:
            continue
        if num == 1:  # NodeProto
            op, inputs, outputs = "", [], []
            for n2, w2, v2 in _fields(v):
                if n2 in (1, 2) and w2 == 2:
                    (inputs if n2 == 1 else outputs).append(bytes(v2).decode("utf-8"))
                elif n2 == 4 and w2 == 2:
                    op = bytes(v2).decode("utf-8")
            out.nodes.append((op, inputs, outputs))
        elif num == 5:  # TensorProto
            dims: list[int] = []
            dtype, name, location = 0, "", None
            for n2, w2, v2 in _fields(v):
                if n2 == 1:
                    dims += _packed(v2) if w2 == 2 else [v2]
                elif n2 == 2 and w2 == 0:
                    dtype = v2
                elif n2 == 8 and w2 == 2:
                    name = bytes(v2).decode("utf-8")
                elif n2 == 13 and w2 == 2:  # StringStringEntryProto
                    entry = {n3: bytes(v3).decode("utf-8") for n3, w3, v3 in _fields(v2) if w3 == 2}
                    if entry.get(1) == "location":
                        location = entry.get(2, "")
            out.initializers[name] = (DATA_TYPES.get(dtype, f"type{dtype}"), tuple(dims))
            if location is not None:
                out.external[name] = location
    return out
