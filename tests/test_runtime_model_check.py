"""The runtime refuses a model file that is not the one its manifest describes (hashes re-signed)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import runtime
from edgerec.passes.quantize import quantize
from runtime.artifact import write_manifest
from runtime.errors import ArtifactError
from tests.factories import make_ir

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def arts(tmp_path_factory) -> dict[tuple[str, str], Path]:
    """The same small IR exported per (scheme, target); a second IR of another width."""
    from exporters import export_ir

    root = tmp_path_factory.mktemp("schemes")
    ir = make_ir(num_users=30, num_items=120, dim=8, seed=0)
    out = {}
    for scheme, target in [("none", "tflite"), ("int8", "tflite"), ("int4-item", "tflite"),
                           ("float16", "tflite"), ("none", "onnx"), ("int8", "onnx")]:
        q = ir if scheme == "none" else quantize(ir, scheme)[0]
        out[scheme, target] = root / f"{scheme}-{target}"
        export_ir(q, out[scheme, target], target, k=20, history_capacity=8)
    wide = quantize(make_ir(num_users=30, num_items=120, dim=16, seed=0), "int8")[0]
    out["int8-dim16", "tflite"] = root / "int8-dim16-tflite"
    export_ir(wide, out["int8-dim16", "tflite"], "tflite", k=20, history_capacity=8)
    return out


def forge(arts, into: tuple[str, str], model_from: tuple[str, str], tmp_path: Path) -> Path:
    """``into``'s artifact with the model file(s) of ``model_from`` and the hashes re-signed."""
    dest = tmp_path / "forged"
    shutil.copytree(arts[into], dest)
    m = json.loads((dest / "manifest.json").read_text())
    src = json.loads((arts[model_from] / "manifest.json").read_text())  # with the tables they read
    for f in {f for s in src["signatures"].values() for f in (s["file"], s.get("external_data")) if f}:
        shutil.copy(arts[model_from] / f, dest / f)
    m.pop("files")
    write_manifest(dest, m)
    return dest


@pytest.mark.parametrize("scheme,target", [("none", "tflite"), ("int8", "tflite"),
                                           ("int4-item", "tflite"), ("float16", "tflite"),
                                           ("none", "onnx"), ("int8", "onnx")])
def test_every_true_artifact_loads(arts, scheme, target):
    rec = runtime.load(arts[scheme, target])
    assert len(rec.recommend(rec.artifact.user_ids[0], k=5)) == 5


@pytest.mark.parametrize("into,model_from,match", [
    (("int8", "tflite"), ("none", "tflite"), r"item table is float32, but the manifest says int8-per-row"),
    (("int4-item", "tflite"), ("int8", "tflite"), r"item table is int8, but the manifest says int8-per-row\+int4-item"),
    (("none", "tflite"), ("float16", "tflite"), r"item table is float16, but the manifest says float32"),
    (("int8", "tflite"), ("int8-dim16", "tflite"), r"item table is \[\d+, 16\].*dim 8"),
    (("int8", "onnx"), ("none", "onnx"), r"item table is float32, but the manifest says int8-per-row"),
    (("none", "onnx"), ("int8", "onnx"), r"item table is uint8, but the manifest says float32"),
])
def test_a_copied_model_with_resigned_hashes_is_refused(arts, tmp_path, into, model_from, match):
    forged = forge(arts, into, model_from, tmp_path)
    runtime.artifact.load_artifact(forged)  # the hashes agree: only the model check can tell
    with pytest.raises(ArtifactError, match=match) as e:
        runtime.load(forged)
    assert "\n" not in str(e.value) and "not the one this manifest describes" in str(e.value)


def test_an_onnx_model_reading_a_file_no_signature_names_is_refused(arts, tmp_path):
    """The ONNX files read their tables from tables.bin (external data): hashed with the rest
    because each signature names it; a manifest that does not is refused before a session."""
    dest = tmp_path / "unnamed"
    shutil.copytree(arts["none", "onnx"], dest)
    m = json.loads((dest / "manifest.json").read_text())
    assert {s["external_data"] for s in m["signatures"].values()} == {"tables.bin"}
    for s in m["signatures"].values():
        del s["external_data"]
    m.pop("files")
    write_manifest(dest, m)
    with pytest.raises(ArtifactError, match="reads its tables from 'tables.bin', which no signature") as e:
        runtime.load(dest)
    assert "\n" not in str(e.value)


def test_device_bench_reports_the_mismatch_as_the_target_error(arts, tmp_path):
    forged = forge(arts, ("int8", "tflite"), ("none", "tflite"), tmp_path)
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "device_bench", str(forged), "--requests", "5",
                           "--warmup", "1", "--out", str(out)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 1, proc.stderr  # report written, this target failed
    (t,) = json.loads(out.read_text())["targets"]
    assert t["error"].startswith("ArtifactError") and "but the manifest says int8-per-row" in t["error"]


def test_a_tiny_int8_model_kept_float_by_the_converter_loads(tmp_path):
    """Below 1,024 weights the TFLite converter keeps the int8 tables as float32 constants that
    hold the same integers: the manifest's int8-per-row is true, and the check knows it."""
    from exporters import export_ir

    ir = quantize(make_ir(num_users=20, num_items=40, dim=8), "int8")[0]  # 320 weights < 1024
    export_ir(ir, tmp_path / "a", "tflite", k=5, history_capacity=4)
    rec = runtime.load(tmp_path / "a")
    assert len(rec.recommend(rec.artifact.user_ids[0], k=5)) == 5
