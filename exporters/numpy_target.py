"""numpy target: the IR's serving tables as ``tables/*.npy`` for the runtime's reference backend.

Tables are written as the IR holds them (int8 + float32 ``.scale.npy``, float16 or float32),
*without* the pad row: the reference backend indexes rows directly and drops ``pad_index``
entries itself, so a pad row would only cost space. The parity check loads the written
directory through the runtime's own loader, so what is checked is what a device reads.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from edgerec.ir import IR
from exporters import parity
from exporters.target import Built, Runner, Target
from exporters.weights import BY_DTYPE, INT4_PQ


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def tables(ir: IR) -> tuple[dict[str, bytes], dict[str, dict[str, str | None]]]:
    """The serving tables' files under ``tables/`` and the manifest's ``tables`` block."""
    files: dict[str, bytes] = {}
    block: dict[str, dict[str, str | None]] = {}
    for name in ir.serving_tables():
        t = ir.tables[name]
        entry: dict[str, str | None] = {"file": f"tables/{name}.npy", "scale_file": None}
        files[f"tables/{name}.npy"] = _npy(np.ascontiguousarray(t.values))
        if t.scale is not None:
            entry["scale_file"] = f"tables/{name}.scale.npy"
            files[entry["scale_file"]] = _npy(t.scale.astype(np.float32))
        if t.codebook is not None:
            entry["codebook_file"] = f"tables/{name}.codebook.npy"
            files[entry["codebook_file"]] = _npy(t.codebook.astype(np.float32))
        block[name] = entry
    return files, block


def runner(root: Path) -> Runner:
    """The runtime's reference backend on the artifact written at ``root``."""
    from runtime import artifact
    from runtime.backends import reference

    backend = reference.create(artifact.load_artifact(root), None)

    def run(mode: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        scores, items = getattr(backend, mode)(*(feeds[n] for n in parity.input_names(mode)))
        return {"scores": scores, "items": items}

    return run


def build_target(ir: IR, *, k: int, history_capacity: int, exclude_capacity: int) -> Built:
    """The tables of ``ir`` as ``.npy`` files; ``k`` and the capacities live in the manifest."""
    del k, history_capacity, exclude_capacity
    files, block = tables(ir)
    # int4 tables keep their integers in int8 here (int8-per-row), product codes their codes
    coded = any(ir.tables[n].codebook is not None for n in ir.serving_tables())
    return Built(files=files, weights=INT4_PQ if coded else BY_DTYPE[ir.tables["item"].dtype],
                 activations="float",
                 runner=runner, tables=block)


TARGET = Target(name="numpy", toolkit=(), build=build_target)
