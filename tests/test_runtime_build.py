"""Artifact builders for the runtime tests, and tests of the manifest writer they rely on.

``numpy_artifact`` writes a numpy-target artifact by hand with ``runtime.artifact``'s writer
(no exporter needed); ``exported_artifact`` uses ``exporters.export_ir`` for tflite/onnx and is
skipped while that is not importable.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgerec.ir import IR
from edgerec.passes.quantize import quantize
from runtime import artifact as A
from runtime.errors import ArtifactError
from tests.factories import make_ir

K, HISTORY_CAPACITY, EXCLUDE_CAPACITY = 20, 8, 6


def small_ir(scheme: str = "int8", **kw) -> IR:
    ir = make_ir(**kw)
    return quantize(ir, scheme)[0] if scheme != "none" else ir


def numpy_artifact(ir: IR, out: Path, k: int = K, history_capacity: int = HISTORY_CAPACITY,
                   exclude_capacity: int = EXCLUDE_CAPACITY,
                   activations: str | None = None) -> Path:
    """Write ``ir`` as a numpy-target artifact following docs/architecture.md."""
    out.mkdir(parents=True)
    (out / "tables").mkdir()
    tables = {}
    for name in ir.serving_tables():
        t = ir.tables[name]
        np.save(out / f"tables/{name}.npy", t.values, allow_pickle=False)
        entry = {"file": f"tables/{name}.npy", "scale_file": None}
        if t.scale is not None:
            np.save(out / f"tables/{name}.scale.npy", t.scale, allow_pickle=False)
            entry["scale_file"] = f"tables/{name}.scale.npy"
        tables[name] = entry
    (out / "items.json").write_text(json.dumps(ir.item_ids))
    (out / "users.json").write_text(json.dumps(ir.user_ids))
    np.save(out / "popular.npy", ir.popular, allow_pickle=False)
    np.save(out / "seen_indptr.npy", ir.seen_indptr, allow_pickle=False)
    np.save(out / "seen_indices.npy", ir.seen_indices, allow_pickle=False)
    dtype = ir.tables["item"].dtype
    weights = {"int8": "int8-per-row", "float16": "float16", "float32": "float32"}[dtype]
    m = A.build_manifest(target="numpy", num_users=ir.num_users, num_items=ir.num_items,
                         dim=ir.dim, k=k, history_capacity=history_capacity,
                         exclude_capacity=exclude_capacity, modes=list(ir.modes), weights=weights,
                         activations=activations or "float", tables=tables)
    A.write_manifest(out, m)
    return out


def exported_artifact(ir: IR, out: Path, target: str, k: int = K,
                      history_capacity: int = HISTORY_CAPACITY,
                      exclude_capacity: int = EXCLUDE_CAPACITY) -> Path:
    """``exporters.export_ir`` when it exists; until then the exporters' model builders plus
    the runtime's manifest writer; skip if neither is importable."""
    try:
        from exporters import export_ir
    except ImportError:
        return _assemble(ir, out, target, k, history_capacity, exclude_capacity)
    kwargs = {"k": k, "history_capacity": history_capacity, "overwrite": True}
    try:
        export_ir(ir, out, target, exclude_capacity=exclude_capacity, **kwargs)
    except TypeError:  # exporter without an exclude_capacity knob: use its default
        export_ir(ir, out, target, **kwargs)
    return out


def _assemble(ir: IR, out: Path, target: str, k: int, history_capacity: int,
              exclude_capacity: int) -> Path:
    try:
        if target == "tflite":
            from exporters.tflite import convert
            model = convert(ir, k=k, history_capacity=history_capacity, exclude_capacity=exclude_capacity)
            files = {"model.tflite": model.data}
        else:
            from exporters.onnx import build
            model = build(ir, k=k, history_capacity=history_capacity, exclude_capacity=exclude_capacity)
            files = model.files
    except ImportError as e:
        pytest.skip(f"no {target} exporter yet: {e}")
    out.mkdir(parents=True)
    for name, data in files.items():
        (out / name).write_bytes(data)
    (out / "items.json").write_text(json.dumps(ir.item_ids))
    (out / "users.json").write_text(json.dumps(ir.user_ids))
    np.save(out / "popular.npy", ir.popular, allow_pickle=False)
    np.save(out / "seen_indptr.npy", ir.seen_indptr, allow_pickle=False)
    np.save(out / "seen_indices.npy", ir.seen_indices, allow_pickle=False)
    m = A.build_manifest(target=target, num_users=ir.num_users, num_items=ir.num_items,
                         dim=ir.dim, k=k, history_capacity=history_capacity,
                         exclude_capacity=exclude_capacity, modes=list(ir.modes),
                         weights=model.weights, activations=model.activations)
    A.write_manifest(out, m)
    return out


def test_write_manifest_hashes_every_file(tmp_path: Path) -> None:
    art = numpy_artifact(small_ir(), tmp_path / "a")
    m = json.loads((art / "manifest.json").read_text())
    on_disk = {p.relative_to(art).as_posix() for p in art.rglob("*") if p.is_file()}
    assert set(m["files"]) == on_disk - {"manifest.json"}
    for name, sha in m["files"].items():
        assert A.sha256_file(art / name) == sha
    A.validate_manifest(m)
    loaded = A.load_artifact(art)
    assert loaded.num_items == 200 and loaded.tables["item"][0].dtype == np.int8


def test_build_manifest_follows_contract_names() -> None:
    m = A.build_manifest(target="tflite", num_users=3, num_items=10, dim=4, k=5,
                         history_capacity=7, exclude_capacity=9, modes=["lookup", "history"],
                         weights="int8-per-row", activations="dynamic-int8-symmetric")
    assert m["signatures"]["lookup"]["file"] == "model.tflite"
    assert m["signatures"]["history"]["inputs"]["history"] == {"dtype": "int32", "shape": [7]}
    assert m["signatures"]["lookup"]["inputs"]["exclude"]["shape"] == [9]
    assert m["signatures"]["lookup"]["outputs"]["items"] == {"dtype": "int32", "shape": [5]}
    assert m["pad_index"] == 10
    onnx = A.build_manifest(target="onnx", num_users=3, num_items=10, dim=4, k=5,
                            history_capacity=7, exclude_capacity=9, modes=["history"],
                            weights="float32", activations="float")
    assert onnx["signatures"] == {"history": {**onnx["signatures"]["history"], "file": "history.onnx"}}
    with pytest.raises(ArtifactError, match="not listed in 'files'"):
        A.validate_manifest(m)  # files not filled yet: every referenced file is unhashed


def test_write_manifest_refuses_invalid(tmp_path: Path) -> None:
    tmp_path.joinpath("x").write_text("x")
    with pytest.raises(ArtifactError):
        A.write_manifest(tmp_path, {"format": "nope"})
    assert not (tmp_path / "manifest.json").exists()
