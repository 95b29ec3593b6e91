"""Hand-edited or forged checkpoints and IRs: each defect is one IRError/CheckpointError line
naming the file, never a traceback from deep inside torch or numpy, never a huge allocation.

The corrupt copies re-sign the files they replace (config.json and ir.json list the SHA-256 of the
other files), as a forger would; config.json itself is not covered by any hash.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from edgerec import checkpoint as ckpt_mod
from edgerec.checkpoint import load_checkpoint, save_checkpoint
from edgerec.errors import CheckpointError, IRError
from edgerec.ir import describe, load_ir, save_ir
from edgerec.models import build_model
from edgerec.synthetic import make_synthetic
from tests.factories import make_ir

Edit = Callable[[dict[str, Any]], None]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tiny_ckpt(root: Path, **model: Any) -> Path:
    """An untrained checkpoint (random weights are enough for loading) on 60 users x 120 items."""
    data = make_synthetic(num_users=60, num_items=120, communities=4, seed=0)
    config = {"dim": 8, "layers": 2, **model}
    net = build_model({**config, "num_users": data.num_users, "num_items": data.num_items})
    return save_checkpoint(root, net, data, config)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_ckpt(tmp_path_factory.mktemp("ck") / "lightgcn", model="lightgcn")


@pytest.fixture(scope="module")
def gnn_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_ckpt(tmp_path_factory.mktemp("ck") / "sage", model="sage", head="mlp", hidden=4,
                      num_features=0)


@pytest.fixture(scope="module")
def ir_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_ir(make_ir(num_users=20, num_items=40, dim=4), tmp_path_factory.mktemp("ir") / "ir")


@pytest.fixture
def no_real_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail fast if the loader builds a real (allocating) model: a forged config must be refused
    before that, and a pre-fix loader would otherwise try to allocate terabytes."""
    real = ckpt_mod.build_model

    def guarded(config: dict[str, Any]) -> torch.nn.Module:
        if torch.get_default_device().type != "meta":
            raise AssertionError(f"real model built from a forged config: {config}")
        return real(config)

    monkeypatch.setattr(ckpt_mod, "build_model", guarded)


def _forge(src: Path, dst: Path, header: str, edit: Edit | None = None,
           files: dict[str, bytes] | None = None) -> Path:
    """Copy ``src``, replace ``files`` (re-signing them in ``header``), then apply ``edit``."""
    shutil.copytree(src, dst)
    meta = json.loads((dst / header).read_text())
    for name, content in (files or {}).items():
        (dst / name).write_bytes(content)
        meta["files"][name] = _sha(dst / name)
    if edit is not None:
        edit(meta)
    (dst / header).write_text(json.dumps(meta))
    return dst


def _set(key: str, value: Any) -> Edit:
    def edit(meta: dict[str, Any]) -> None:
        target = meta
        *parents, last = key.split(".")
        for p in parents:
            target = target[p]
        target[last] = value
    return edit


def _one_line(e: pytest.ExceptionInfo[Exception], file: Path, needle: str) -> None:
    msg = str(e.value)
    assert "\n" not in msg and str(file) in msg and needle in msg, msg


# ---------------------------------------------------------------------------------------------
# 1. config.json field types


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("data", "x", "'data' must be an object"),
    ("data.dropped", "x", "data.dropped"),
    ("data.dropped", {"duplicates": "many"}, "data.dropped"),
    ("data.source", 5, "data.source"),
    ("data.synthetic", "yes", "data.synthetic"),
    ("data.fingerprint", 5, "data.fingerprint"),
    ("num_users", "60", "'num_users' must be an integer"),
    ("num_items", 120.5, "'num_items' must be an integer"),
    ("dim", True, "'dim' must be an integer"),
    ("layers", -1, "'layers' must be an integer"),
    ("model", ["lightgcn"], "unknown model kind"),
    ("files", "x", "'files' must map"),
    ("files", {"weights.safetensors": 5}, "'files' must map"),
    ("head", "cosine", "'head' must be"),
])
def test_config_field_types(ckpt: Path, tmp_path: Path, key: str, value: Any, needle: str) -> None:
    bad = _forge(ckpt, tmp_path / "bad", "config.json", _set(key, value))
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(bad)
    _one_line(e, bad / "config.json", needle)


def test_gnn_config_field_types(gnn_ckpt: Path, tmp_path: Path) -> None:
    for key, value in (("hidden", "64"), ("num_features", -1)):
        bad = _forge(gnn_ckpt, tmp_path / key, "config.json", _set(key, value))
        with pytest.raises(CheckpointError) as e:
            load_checkpoint(bad)
        _one_line(e, bad / "config.json", f"{key!r} must be an integer")


def test_good_checkpoints_still_load(ckpt: Path, gnn_ckpt: Path) -> None:
    a, b = load_checkpoint(ckpt), load_checkpoint(gnn_ckpt)
    assert (a.data.num_users, a.data.num_items, a.data.synthetic) == (60, 120, True)
    assert b.model.head is not None and b.data.user_ids == a.data.user_ids


# ---------------------------------------------------------------------------------------------
# 2. forged counts are checked against the weights before any model is built


@pytest.mark.usefixtures("no_real_model")
@pytest.mark.parametrize(("key", "value", "needle"), [
    ("dim", 10**12, "do not match"),
    ("num_users", 10**12, "do not match"),
    ("num_items", 10**12, "do not match"),
    ("layers", 10**9, "'layers' must be an integer in [0, 64]"),
    ("layers", 5, "do not match"),
])
def test_forged_counts_refused_before_building(ckpt: Path, tmp_path: Path, key: str, value: int,
                                               needle: str) -> None:
    bad = _forge(ckpt, tmp_path / "bad", "config.json", _set(key, value))
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(bad)
    assert "\n" not in str(e.value) and needle in str(e.value), str(e.value)


@pytest.mark.usefixtures("no_real_model")
@pytest.mark.parametrize(("key", "value"), [
    ("hidden", 10**12), ("num_features", 10**9), ("layers", 40), ("head", "dot"),
])
def test_forged_gnn_sizes_refused_before_building(gnn_ckpt: Path, tmp_path: Path, key: str,
                                                  value: Any) -> None:
    bad = _forge(gnn_ckpt, tmp_path / "bad", "config.json", _set(key, value))
    with pytest.raises(CheckpointError, match="do not match") as e:
        load_checkpoint(bad)
    _one_line(e, bad / "weights.safetensors", "do not match")


def test_graph_of_float_indices_refused(ckpt: Path, tmp_path: Path) -> None:
    graph = load_file(str(ckpt / "graph.safetensors"))
    graph["train_users"] = graph["train_users"].to(torch.bfloat16)
    forged = tmp_path / "graph.safetensors"
    save_file(graph, str(forged))
    bad = _forge(ckpt, tmp_path / "bad", "config.json", files={"graph.safetensors": forged.read_bytes()})
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(bad)
    _one_line(e, bad / "graph.safetensors", "not integer indices")


# ---------------------------------------------------------------------------------------------
# 3. id maps


@pytest.mark.parametrize(("name", "content", "needle"), [
    ("users.json", b"5", "expected a JSON list of ids, got int"),
    ("items.json", b"[1,", "invalid JSON"),
    ("users.json", b"\xff\xfe", "invalid JSON"),
    ("items.json", json.dumps(list(range(120))).encode(), "id #0 is int"),
    ("users.json", json.dumps([str(u) for u in range(59)]).encode(), "59 ids, but config.json counts 60"),
    ("users.json", json.dumps(["0"] * 60).encode(), "duplicate ids"),
])
def test_bad_id_maps(ckpt: Path, tmp_path: Path, name: str, content: bytes, needle: str) -> None:
    bad = _forge(ckpt, tmp_path / "bad", "config.json", files={name: content})
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(bad)
    _one_line(e, bad / name, needle)


# ---------------------------------------------------------------------------------------------
# 4. ir.json fields that the loader and describe() read


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("passes", ["a", "b"], "passes[0] must be a report"),
    ("passes", "precompute", "'passes' must be a list"),
    ("passes", [{"name": 5}], "passes[0] must be a report"),
    ("metrics", [], "'metrics' must be an object"),
    ("scorer", "dot", "'scorer' must be an object"),
    ("history", None, "'history' must be an object"),
    ("model", 1, "'model' must be an object"),
    ("modes", "lookup", "'modes' must be a list"),
    ("num_users", "20", "'num_users' must be a non-negative integer"),
    ("files", {"users.json": 5}, "'files' must map"),
    ("tables.item.shape", "40x4", "bad 'shape'"),
    ("tables.item.file", "../item.npy", "plain 'file' name"),
    ("tables.item.sha256", None, "plain 'file' name"),
    ("tables.item.bits", "4", "bad 'bits'"),
    ("tables.item", [], "must be an object"),
])
def test_ir_meta_field_types(ir_dir: Path, tmp_path: Path, key: str, value: Any, needle: str) -> None:
    bad = _forge(ir_dir, tmp_path / "bad", "ir.json", _set(key, value))
    with pytest.raises(IRError) as e:
        describe(load_ir(bad))
    _one_line(e, bad / "ir.json", needle)


@pytest.mark.parametrize(("name", "content", "needle"), [
    ("users.json", b"5", "expected a JSON list of ids, got int"),
    ("items.json", b"[1,", "invalid JSON"),
    ("items.json", json.dumps(list(range(40))).encode(), "id #0 is int"),
])
def test_ir_bad_id_maps(ir_dir: Path, tmp_path: Path, name: str, content: bytes, needle: str) -> None:
    bad = _forge(ir_dir, tmp_path / "bad", "ir.json", files={name: content})
    with pytest.raises(IRError) as e:
        load_ir(bad)
    _one_line(e, bad / name, needle)


def test_ir_forged_npy_header_allocates_nothing(ir_dir: Path, tmp_path: Path) -> None:
    """A re-signed .npy whose header claims 4 GB but holds 16 bytes."""
    forged = tmp_path / "item.npy"
    with open(forged, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**9,)})
        f.write(np.zeros(4, np.float32).tobytes())

    def edit(meta: dict[str, Any]) -> None:
        meta["tables"]["item"]["sha256"] = _sha(forged)

    bad = _forge(ir_dir, tmp_path / "bad", "ir.json", edit)
    shutil.copy(forged, bad / "item.npy")
    tracemalloc.start()
    try:
        with pytest.raises(IRError, match="cannot read item.npy") as e:
            load_ir(bad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20 and "\n" not in str(e.value), (peak, str(e.value))


def test_ir_negative_slope_must_be_a_number(ir_dir: Path, tmp_path: Path) -> None:
    bad = _forge(ir_dir, tmp_path / "bad", "ir.json", _set("history.negative_slope", "steep"))
    with pytest.raises(IRError) as e:
        load_ir(bad)
    _one_line(e, bad, "negative_slope must be a finite number")


def test_good_ir_still_loads(ir_dir: Path) -> None:
    info = describe(load_ir(ir_dir))
    assert info["users"] == 20 and info["passes"] == [] and info["tables"]["item"]["shape"] == [40, 4]


# ---------------------------------------------------------------------------------------------
# 5. IR.validate() messages name the IR directory


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("num_users", 21, "table 'user' has shape [20, 4], expected [21, 4]"),
    ("modes", ["nope"], "IR modes must be a non-empty subset"),
    ("scorer", {"kind": "cosine"}, "scorer must be one of"),
])
def test_ir_validation_errors_name_the_directory(ir_dir: Path, tmp_path: Path, key: str, value: Any,
                                                  needle: str) -> None:
    bad = _forge(ir_dir, tmp_path / "bad", "ir.json", _set(key, value))
    with pytest.raises(IRError) as e:
        load_ir(bad)
    assert str(e.value).startswith(f"{bad}: "), str(e.value)
    _one_line(e, bad, needle)


# ---------------------------------------------------------------------------------------------
# The CLI (in process): one `error:` line and exit 2 for `inspect` of a forged IR and checkpoint


def _cli_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    from edgerec.cli import main

    monkeypatch.setattr(sys, "argv", ["edgerec", *args])
    with pytest.raises(SystemExit) as e:
        main()
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert e.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_cli_inspect_one_line(ckpt: Path, ir_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    bad_ir = _forge(ir_dir, tmp_path / "ir", "ir.json", _set("passes", ["a", "b"]))
    assert str(bad_ir / "ir.json") in _cli_error(monkeypatch, capsys, "inspect", str(bad_ir))
    bad_ck = _forge(ckpt, tmp_path / "ck", "config.json", _set("data", "x"))
    assert str(bad_ck / "config.json") in _cli_error(monkeypatch, capsys, "inspect", str(bad_ck))
    bad_ids = _forge(ckpt, tmp_path / "ids", "config.json", files={"users.json": b"5"})
    assert str(bad_ids / "users.json") in _cli_error(monkeypatch, capsys, "evaluate", str(bad_ids))


def test_deeply_nested_json_is_a_one_line_error(tmp_path: Path) -> None:
    """json.loads raises RecursionError (not a ValueError) on a forged [[[[... nesting."""
    from edgerec.errors import CheckpointError
    from edgerec.versioned_json import read_header, read_id_list

    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(CheckpointError, match="users.json: invalid JSON"):
        read_id_list(tmp_path / "users.json", deep, CheckpointError)
    (tmp_path / "config.json").write_text(deep)
    with pytest.raises(CheckpointError, match="config.json: invalid JSON"):
        read_header(tmp_path / "config.json", "edgerec-checkpoint", 1, "checkpoint", CheckpointError)
