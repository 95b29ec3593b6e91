"""edgerec: compile graph-neural-network recommenders into small, verified on-device models.

.. code-block:: python

    import edgerec
    ckpt = edgerec.from_pyg(model, edge_index, num_users=U, num_items=I)
    edgerec.export(edgerec.compile(ckpt), "art", target="tflite")

Importing ``edgerec`` is cheap: torch, PyG and the converters are imported by the functions
that use them.
"""

from edgerec._version import __version__
from edgerec.api import (
    Compiled,
    compile,
    eval_sample,
    evaluate,
    export,
    inspect,
    load_checkpoint,
    load_data,
    synthesize,
    train,
)
from edgerec.errors import EdgerecError

__all__ = [
    "Compiled",
    "EdgerecError",
    "__version__",
    "compile",
    "eval_sample",
    "evaluate",
    "export",
    "from_embeddings",
    "from_pyg",
    "inspect",
    "load_checkpoint",
    "load_data",
    "synthesize",
    "train",
]


def __getattr__(name: str) -> object:
    # the frontends import numpy (and torch when called): loaded on first use, so that
    # ``import edgerec`` (and ``edgerec --help``) stays light
    if name in ("from_pyg", "from_embeddings"):
        import edgerec.frontend

        return getattr(edgerec.frontend, name)
    raise AttributeError(f"module 'edgerec' has no attribute {name!r}")
