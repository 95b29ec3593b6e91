"""Read the operators and constant tensors of a ``.tflite`` file, without an interpreter.

The fields are read with flatbuffers' generic table accessor at the vtable slots of the TFLite
schema (``tflite/schema/schema.fbs``; flatbuffer field ids never change, slot = 4 + 2 * id).
The generated schema module would do the same walk but costs 3.9 MiB to import. ``flatbuffers``
is a dependency of LiteRT; without it (or on a file this walk does not understand) the reader
returns nothing and its callers check nothing.
"""

from __future__ import annotations

import functools
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

_MODEL_OPCODES, _MODEL_SUBGRAPHS, _MODEL_BUFFERS = 6, 8, 12
_SUBGRAPH_TENSORS, _SUBGRAPH_OPERATORS = 4, 10
_OPERATOR_OPCODE, _OPERATOR_INPUTS, _OPERATOR_OUTPUTS = 4, 6, 8
_OPCODE_DEPRECATED, _OPCODE_BUILTIN = 4, 10
_TENSOR_SHAPE, _TENSOR_TYPE, _TENSOR_BUFFER = 4, 6, 8
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 4, 6, 8

# builtin operator codes and tensor types used by the runtime's checks
FULLY_CONNECTED, DEQUANTIZE = 9, 6
TENSOR_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 7: "int16",
                9: "int8", 17: "int4"}


@dataclass(frozen=True)
class Tensor:
    """A tensor of one subgraph: its index there, type name, shape and (for a constant) where
    its bytes are in the file."""

    index: int
    type: str
    shape: tuple[int, ...]
    data: tuple[int, int] | None  # (file offset, length) of a constant's bytes


@dataclass(frozen=True)
class Operator:
    """One operator: its subgraph, builtin code and input/output tensors (None: an omitted input)."""

    subgraph: int
    builtin: int
    inputs: tuple[Tensor | None, ...]
    outputs: tuple[Tensor, ...]


def constant_source(ops: tuple[Operator, ...], op: Operator, tensor: Tensor | None
                    ) -> tuple[Tensor | None, bool]:
    """The constant behind ``tensor`` (an input of ``op``): itself, or the constant a DEQUANTIZE
    turns into it (float16 weights); and whether a DEQUANTIZE was in between."""
    if tensor is None or tensor.data is not None:
        return tensor, False
    for p in ops:
        if p.subgraph == op.subgraph and p.builtin == DEQUANTIZE and p.inputs and p.inputs[0] \
                and any(t.index == tensor.index for t in p.outputs):
            return p.inputs[0], True
    return None, False


def operators(path: Path) -> tuple[Operator, ...]:
    """Every operator of every subgraph of the model at ``path`` (read once per file version:
    every thread's interpreter asks); empty when the file cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return ()
    return _walk(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _walk(path: str, _size: int, _mtime_ns: int) -> tuple[Operator, ...]:
    try:
        from flatbuffers import encode, packer
        from flatbuffers import number_types as nt
        from flatbuffers.table import Table
    except ImportError:
        return ()

    def vector(t: Table, slot: int) -> tuple[int, int]:  # (position of element 0, length)
        o = t.Offset(slot)
        return (t.Vector(o), t.VectorLen(o)) if o else (0, 0)

    def element(t: Table, slot: int, i: int) -> Table:
        start, _ = vector(t, slot)
        return Table(t.Bytes, t.Indirect(start + 4 * i))

    def scalar(t: Table, slot: int, flags: object, default: int = 0) -> int:
        o = t.Offset(slot)
        return int(t.Get(flags, t.Pos + o)) if o else default

    def ints(t: Table, slot: int) -> tuple[int, ...]:
        start, n = vector(t, slot)
        return tuple(int(t.Get(nt.Int32Flags, start + 4 * i)) for i in range(n))

    out = []
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            model = Table(mm, encode.Get(packer.uoffset, mm, 0))

            def tensor(graph: Table, i: int) -> Tensor:
                t = element(graph, _SUBGRAPH_TENSORS, i)
                buf = element(model, _MODEL_BUFFERS, scalar(t, _TENSOR_BUFFER, nt.Uint32Flags))
                start, length = vector(buf, _BUFFER_DATA)
                data = (start, length) if length else None
                if data is None and scalar(buf, _BUFFER_OFFSET, nt.Uint64Flags) > 1:
                    data = (scalar(buf, _BUFFER_OFFSET, nt.Uint64Flags),  # after the flatbuffer
                            scalar(buf, _BUFFER_SIZE, nt.Uint64Flags))
                code = scalar(t, _TENSOR_TYPE, nt.Int8Flags)
                return Tensor(i, TENSOR_TYPES.get(code, f"type{code}"), ints(t, _TENSOR_SHAPE), data)

            for s in range(vector(model, _MODEL_SUBGRAPHS)[1]):
                graph = element(model, _MODEL_SUBGRAPHS, s)
                for o in range(vector(graph, _SUBGRAPH_OPERATORS)[1]):
                    op = element(graph, _SUBGRAPH_OPERATORS, o)
                    code = element(model, _MODEL_OPCODES, scalar(op, _OPERATOR_OPCODE, nt.Uint32Flags))
                    builtin = max(scalar(code, _OPCODE_DEPRECATED, nt.Int8Flags),
                                  scalar(code, _OPCODE_BUILTIN, nt.Int32Flags))
                    out.append(Operator(
                        s, builtin,
                        tuple(tensor(graph, i) if i >= 0 else None for i in ints(op, _OPERATOR_INPUTS)),
                        tuple(tensor(graph, i) for i in ints(op, _OPERATOR_OUTPUTS))))
    except Exception:  # not a model this walk understands (or not a file we can map): nothing
        return ()
    return tuple(out)
