"""The manifest writer the runtime tests' artifacts rely on (the builders: tests/factories.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from runtime import artifact as A
from runtime.errors import ArtifactError
from tests.factories import numpy_artifact, small_ir


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
