"""numpy target: the IR's serving tables as ``tables/*.npy`` for the runtime's reference backend.

Tables are written as the IR holds them (int8 + float32 ``.scale.npy``, float16 or float32),
*without* the pad row: the reference backend indexes rows directly and drops ``pad_index``
entries itself, so a pad row would only cost space.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgerec.ir import IR


def write_tables(ir: IR, root: Path) -> dict[str, dict[str, str | None]]:
    """Write the serving tables under ``root/tables``; return the manifest's ``tables`` block."""
    (root / "tables").mkdir(exist_ok=True)
    out: dict[str, dict[str, str | None]] = {}
    for name in ir.serving_tables():
        t = ir.tables[name]
        entry: dict[str, str | None] = {"file": f"tables/{name}.npy", "scale_file": None}
        np.save(root / entry["file"], np.ascontiguousarray(t.values), allow_pickle=False)
        if t.scale is not None:
            entry["scale_file"] = f"tables/{name}.scale.npy"
            np.save(root / entry["scale_file"], t.scale.astype(np.float32), allow_pickle=False)
        out[name] = entry
    return out
