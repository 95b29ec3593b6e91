"""The quantization schemes, in one place without heavy imports (the CLI builds its options
from them at import time; ``edgerec.passes.quantize`` implements them).

``int4-item``: the scoring matmul's item table in int4, the gathered tables in int8; ``int4``:
every table in int4; ``int4-pq``: the item table in int4, the gathered tables (user, history
rows) in product codes of 3 bits a value, decoded row by row after the gather. The TFLite
and ONNX exporters pack int4 tables two values a byte; the
numpy target keeps the same integers in int8 (docs/compression.md).
"""

SCHEMES = ("int8", "int4-item", "int4", "int4-pq", "float16", "none")
DOT_SCORER_ONLY = ("int4-item", "int4", "int4-pq")  # pack the dot scorer's tables: refused for MLP heads

# The public names of the number formats (API and CLI): ``float32`` is the passes' ``none``.
FORMATS = ("int8", "int4-item", "int4", "int4-pq", "float16", "float32")


def scheme_of(number_format: str) -> str:
    """The quantize pass's scheme for a public number format name."""
    return "none" if number_format == "float32" else number_format
