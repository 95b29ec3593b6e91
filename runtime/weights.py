"""How an artifact's tables are stored: the manifest's ``quantization.weights``, one row per scheme.

The exporters write these names; the runtime's model check reads the element types they imply
(``backends/_model_check.py``); the bench sizes the scored table and names its rows by them
(``edgerec.benchmark``); the device parity check picks its rule by them (``device_bench.pi``).
Integer schemes store integers plus one scale per row (float16 in the file where exact, see
``runtime.quant.half_scale``).
"""

from __future__ import annotations

from dataclasses import dataclass

# The element type a model file stores a value of so many bits in (the model check's names).
ELEMENT = {32: "float32", 16: "float16", 8: "int8", 4: "int4"}


@dataclass(frozen=True)
class Storage:
    """One ``quantization.weights`` scheme.

    Args:
        name (str): the manifest's string.
        number_format (str): the public name of the number format that exports it
            (``edgerec.schemes.FORMATS``: ``"int8"``, ``"int4-item"``, ...).
        item_bits (int): bits a value of the scored item table takes in the model file.
        gathered_bits (int): bits a value of the gathered tables (user, history) takes (for
            product codes: a code, which the model check does not see as a ``dim``-wide row).
    """

    name: str
    number_format: str
    item_bits: int
    gathered_bits: int

    @property
    def integer(self) -> bool:
        """Integer values with a per-row scale (the integer kernels' exact arithmetic)."""
        return self.item_bits <= 8

    @property
    def element_types(self) -> tuple[str, str]:
        """(item table, gathered tables) element types in a model file."""
        return ELEMENT[self.item_bits], ELEMENT[self.gathered_bits]


STORAGES = (
    Storage("int8-per-row", "int8", 8, 8),
    Storage("int8-per-row+int4-item", "int4-item", 4, 8),  # the scored item table in int4
    Storage("int4-per-row", "int4", 4, 4),
    # the gathered tables in product codes: one byte per 8/3 values
    Storage("int4-per-row+pq-gathered", "int4-pq", 4, 8),
    Storage("float16", "float16", 16, 16),
    Storage("float32", "float32", 32, 32),
)
BY_NAME = {s.name: s for s in STORAGES}
WEIGHTS = tuple(BY_NAME)  # the manifest schema's enum, in this order
