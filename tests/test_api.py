"""The public Python API: what the README shows first, and its refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import edgerec
from edgerec.errors import EdgerecError


def test_import_edgerec_is_light() -> None:
    code = ("import sys, edgerec; print(sorted(m for m in ('numpy', 'torch', 'tensorflow') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert set(edgerec.__all__) >= {"compile", "export", "from_pyg", "train", "load_checkpoint"}


def test_synthesize_train_compile_export_inspect(tmp_path: Path) -> None:
    data = edgerec.synthesize(tmp_path / "data", users=60, items=80, seed=3)
    with pytest.raises(EdgerecError, match="not empty"):
        edgerec.synthesize(tmp_path / "data")
    mem = edgerec.train(data, dim=8, layers=1, epochs=2, threads=1)
    disk = edgerec.train(data, out=tmp_path / "ckpt", dim=8, layers=1, epochs=2, threads=1)
    # a checkpoint kept in memory identifies the same model as the one written
    assert mem.fingerprint == disk.fingerprint
    assert edgerec.inspect(tmp_path / "ckpt")["kind"] == "checkpoint"
    compiled = edgerec.compile(disk, dims=None, quantize="float32")
    assert [r.name for r in compiled.reports] == ["precompute", "guard"]
    ir_dir = compiled.save(tmp_path / "ir")
    assert edgerec.inspect(ir_dir)["summary"]["dim"] == 8
    with pytest.raises(EdgerecError, match="quantize"):
        edgerec.compile(ir_dir, quantize="int4")  # an IR is exported as it was compiled
    art = edgerec.export(compiled, tmp_path / "art", target="numpy", with_eval=True, eval_users=20)
    info = edgerec.inspect(art)
    assert info["kind"] == "artifact" and "eval.json" in info["file_bytes"]
    with pytest.raises(EdgerecError, match="checkpoint"):
        edgerec.export(edgerec.compile(ir_dir), tmp_path / "art2", target="numpy", with_eval=True)
    with pytest.raises(EdgerecError, match="unknown number format"):
        edgerec.compile(disk, quantize="none")  # one vocabulary: float32
    with pytest.raises(EdgerecError, match="exists"):
        edgerec.export(compiled, art, target="numpy")
