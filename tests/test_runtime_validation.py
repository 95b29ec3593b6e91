"""Each validation rule of the runtime raises its own error type with a readable line."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import runtime
from runtime.artifact import write_manifest
from runtime.errors import (
    ArtifactError,
    BackendUnavailable,
    ChecksumError,
    InvalidArgumentError,
    RuntimeErrorBase,
    UnknownIdError,
)
from tests.factories import numpy_artifact, small_ir


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return numpy_artifact(small_ir(num_users=10, num_items=40), tmp_path_factory.mktemp("v") / "a")


@pytest.fixture
def art(base, tmp_path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(base, out)
    return out


def manifest(art: Path) -> dict:
    return json.loads((art / "manifest.json").read_text())


def put(art: Path, m: dict) -> None:
    (art / "manifest.json").write_text(json.dumps(m))


def refresh(art: Path) -> None:
    """Re-hash after editing a listed file on purpose (tests past the checksum)."""
    m = manifest(art)
    m.pop("files")
    write_manifest(art, m)


def raises(exc: type, match: str, fn, *a, **kw) -> str:
    with pytest.raises(exc, match=match) as info:
        fn(*a, **kw)
    msg = str(info.value)
    assert "\n" not in msg and isinstance(info.value, RuntimeErrorBase)
    return msg


def test_missing_and_not_a_directory(tmp_path):
    raises(ArtifactError, "not an artifact directory", runtime.load, tmp_path / "nope")
    raises(ArtifactError, "no manifest.json", runtime.load, tmp_path)
    raises(InvalidArgumentError, "path must be", runtime.load, 42)


def test_unknown_format_version(art):
    m = manifest(art)
    for v in (2, 0, "1", True, None, 1.0):
        m["format_version"] = v
        put(art, m)
        raises(ArtifactError, "format_version .* not supported", runtime.load, art)


@pytest.mark.parametrize("key,value,match", [
    ("format", "edgerec-ir", "'format' must be"),
    ("target", "coreml", "'target' must be one of"),
    ("num_items", -1, "'num_items' must be an integer"),
    ("k", 0, "'k' must be an integer"),
    ("k", 41, "exceeds num_items"),
    ("pad_index", 0, "'pad_index' must equal num_items"),
    ("modes", [], "'modes' must be"),
    ("modes", ["lookup", "lookup"], "'modes' must be"),
    ("quantization", {"weights": "int4", "activations": "float"}, "quantization.weights"),
    ("quantization", {"weights": "float32", "activations": "fp8"}, "quantization.activations"),
    ("exclude_capacity", 7, "signatures.lookup.inputs"),
    ("files", [], "'files' must be"),
    ("seen", "x", "'seen' must be"),
    ("scorer", {"kind": ["dot"]}, "'scorer' must be an object"),  # unhashable kinds: no TypeError
    ("history", {"kind": {}}, "'history' must be an object"),
])
def test_schema_errors(art, key, value, match):
    m = manifest(art)
    m[key] = value
    put(art, m)
    raises(ArtifactError, match, runtime.load, art)


def test_invalid_json(art):
    (art / "manifest.json").write_text("{not json")
    raises(ArtifactError, "invalid JSON", runtime.load, art)
    (art / "manifest.json").write_text('{"format": NaN}')
    raises(ArtifactError, "invalid JSON", runtime.load, art)
    (art / "manifest.json").write_text("[" * 100000)
    raises(ArtifactError, "invalid JSON", runtime.load, art)


def test_checksum_catches_one_flipped_byte_and_truncation(art):
    f = art / "tables/item.npy"
    data = bytearray(f.read_bytes())
    data[-1] ^= 1
    f.write_bytes(bytes(data))
    raises(ChecksumError, "tables/item.npy does not match its SHA-256", runtime.load, art)
    f.write_bytes(bytes(data[:100]))
    raises(ChecksumError, "tables/item.npy", runtime.load, art)
    f.unlink()
    raises(ArtifactError, "listed in the manifest but missing", runtime.load, art)


def test_refuses_referenced_but_unlisted_files(art):
    m = manifest(art)
    del m["files"]["popular.npy"]
    put(art, m)
    raises(ArtifactError, "popular 'popular.npy' is not listed in 'files'", runtime.load, art)


def test_refuses_paths_outside_the_artifact(art, tmp_path):
    m = manifest(art)
    m["popular"] = "../outside.npy"
    m["files"]["../outside.npy"] = "0" * 64
    put(art, m)
    raises(ArtifactError, "relative path inside the artifact", runtime.load, art)
    m = manifest(art)
    m["files"]["/etc/passwd"] = "0" * 64
    put(art, manifest(art) | {"files": m["files"]})
    raises(ArtifactError, "relative path inside", runtime.load, art)


def test_refuses_symlink_out_of_the_artifact(art, tmp_path):
    outside = tmp_path / "outside.npy"
    shutil.copy(art / "popular.npy", outside)
    (art / "popular.npy").unlink()
    os.symlink(outside, art / "popular.npy")
    raises(ArtifactError, "points outside the artifact", runtime.load, art)


def test_bad_arrays_and_id_maps_past_the_checksum(art):
    np.save(art / "popular.npy", np.array([0, 99], dtype=np.int32))
    refresh(art)
    raises(ArtifactError, "outside", runtime.load, art)
    np.save(art / "popular.npy", np.array([[0]], dtype=np.int32))
    refresh(art)
    raises(ArtifactError, "1-D integer array", runtime.load, art)
    np.save(art / "popular.npy", np.array([object()], dtype=object), allow_pickle=True)
    refresh(art)
    raises(ArtifactError, "cannot read popular.npy", runtime.load, art)
    np.save(art / "popular.npy", np.arange(40, dtype=np.int32))
    (art / "items.json").write_text(json.dumps(["a"] * 40))
    refresh(art)
    raises(ArtifactError, "duplicate item ids", runtime.load, art)
    (art / "items.json").write_text(json.dumps([1.5] * 40))
    refresh(art)
    raises(ArtifactError, "string or integer item ids", runtime.load, art)
    (art / "items.json").write_text(json.dumps(list(range(39))))
    refresh(art)
    raises(ArtifactError, "has 39 item ids, the manifest says 40", runtime.load, art)


def test_bad_seen_csr_and_tables(art):
    np.save(art / "seen_indices.npy", np.full(3, 40, dtype=np.int32))
    np.save(art / "seen_indptr.npy", np.array([0] + [3] * 10, dtype=np.int64))
    refresh(art)
    raises(ArtifactError, "seen-items indices outside", runtime.load, art)
    np.save(art / "seen_indptr.npy", np.array([0] * 11, dtype=np.int64))
    refresh(art)
    raises(ArtifactError, "indptr is not a monotone", runtime.load, art)


def test_bad_table(art):
    np.save(art / "tables/item.npy", np.zeros((40, 3), np.int8))
    refresh(art)
    raises(ArtifactError, "table 'item' is \\[40, 3\\]", runtime.load, art)
    np.save(art / "tables/item.npy", np.zeros((40, 16), np.float64))
    refresh(art)
    raises(ArtifactError, "dtype float64", runtime.load, art)


def test_argument_errors(base):
    rec = runtime.load(base)
    for k in (0, -3, True, 2.0, "5", None):
        raises(InvalidArgumentError, "k must be a positive integer", rec.recommend, 0, k=k)
        raises(InvalidArgumentError, "k must be a positive integer", rec.recommend_from_history, [0], k=k)
    msg = raises(UnknownIdError, "unknown user id 'ghost'", rec.recommend, "ghost")
    assert msg == "unknown user id 'ghost'"
    raises(UnknownIdError, "unknown item id 999", rec.recommend_from_history, [1, 999])
    raises(UnknownIdError, "unknown item id 'x'", rec.recommend, 1, exclude=["x"])
    raises(InvalidArgumentError, "history must be a list of ids", rec.recommend_from_history, "12")
    raises(InvalidArgumentError, "must be a list", rec.recommend_from_history, 12)
    raises(InvalidArgumentError, "exclude must be a list", rec.recommend, 1, exclude="3")
    raises(InvalidArgumentError, "item id must be a string or an integer", rec.session().add, 1.0)
    assert issubclass(UnknownIdError, LookupError) and issubclass(InvalidArgumentError, ValueError)
    assert rec.item_id(0) == rec.item_id(np.int64(0))
    for index in (-1, rec.num_items, 10**9, True, 1.0, "0"):  # no negative indexing either
        raises(InvalidArgumentError, "item index must be an integer in 0..39", rec.item_id, index)
    for n in (0, -1, runtime.MAX_THREADS + 1, 100_000):  # 100,000 made LiteRT segfault
        raises(InvalidArgumentError, "num_threads must be an integer in 1..256", runtime.load, base,
               num_threads=n)


def test_backend_choice_errors(base):
    raises(InvalidArgumentError, "unknown backend 'gpu'", runtime.load, base, backend="gpu")
    raises(InvalidArgumentError, "backend 'onnx' cannot run a 'numpy' artifact", runtime.load, base,
           backend="onnx")
    raises(InvalidArgumentError, "num_threads", runtime.load, base, num_threads=0)
    raises(InvalidArgumentError, "unknown activations", runtime.load, base, backend="reference",
           activations="int3")


def test_tflite_runtime_refuses_numpy2_in_one_line():
    from runtime.backends import tflite
    if int(np.__version__.split(".")[0]) < 2:
        pytest.skip("numpy<2 here")
    raises(BackendUnavailable, "needs numpy<2", tflite.check_available)
