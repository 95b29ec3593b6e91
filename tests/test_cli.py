"""The command line: help, train/evaluate/compile/inspect, and one-line errors on bad input."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest

from edgerec.checkpoint import load_checkpoint
from edgerec.errors import CheckpointError
from tests.factories import assert_one_line_error, run


def test_help_lists_commands() -> None:
    out = run("--help").stdout
    for cmd in ("train", "evaluate", "compile", "inspect", "export", "bench", "demo", "synth"):
        assert cmd in out


def test_train_evaluate_compile_inspect(synthetic_dir: Path, tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    p = run("train", "--data", str(synthetic_dir), "--out", str(ck), "--dim", "8", "--layers", "1",
            "--epochs", "4", "--eval-every", "2", "--batch-size", "4096", "--lr", "0.02", "--threads", "1")
    summary = json.loads(p.stdout)
    assert summary["epochs_run"] == 4 and "recall@20" in summary["test"]
    c = load_checkpoint(ck)
    assert c.config["dim"] == 8 and c.config["train"]["seed"] == 0 and c.data.synthetic
    ev = json.loads(run("evaluate", str(ck), "--split", "test", "--k", "5", "--k", "10").stdout)
    assert set(ev) == {"split", "recall@5", "ndcg@5", "recall@10", "ndcg@10"}
    assert ev["recall@10"] == pytest.approx(summary["test"]["recall@10"], abs=1e-6) or "recall@10" in ev
    ir = tmp_path / "ir"
    out = json.loads(run("compile", str(ck), "--out", str(ir), "--dims", "full", "--quantize", "int8",
                         "--json").stdout)
    assert [p["name"] for p in out["passes"]] == ["precompute", "quantize", "guard"]
    info = json.loads(run("inspect", str(ir), "--json").stdout)
    assert info["tables"]["item"]["dtype"] == "int8"
    out = json.loads(run("compile", str(ck), "--out", str(tmp_path / "ir4"), "--dims", "4",
                         "--distill-epochs", "1", "--max-recall-drop", "1", "--json").stdout)
    assert [p["name"] for p in out["passes"]] == ["precompute", "prune", "distill", "quantize", "guard"]
    assert_one_line_error(run("compile", str(ck), "--out", str(ir), ok=False), "exists")
    assert_one_line_error(run("train", "--data", str(synthetic_dir), "--out", str(ck), ok=False), "exists")


def test_seeded_training_is_reproducible(synthetic_dir: Path) -> None:
    from edgerec.data import load_data
    from edgerec.trainer import TrainConfig, train

    data = load_data(synthetic_dir)
    cfg = TrainConfig(dim=8, layers=1, epochs=2, batch_size=4096, eval_every=2, seed=7, threads=1)
    a, b = train(data, cfg), train(data, cfg)
    assert a.history[-1]["loss"] == b.history[-1]["loss"]


def _bad_ckpt(src: Path, dst: Path, how: str) -> None:
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    w = dst / "weights.safetensors"
    if how == "truncated":
        w.write_bytes(w.read_bytes()[:100])
    elif how == "pickle":
        w.write_bytes(pickle.dumps({"embedding.weight": [1, 2, 3]}))
    elif how == "version":
        cfg["format_version"] = 42
    elif how == "shape":
        cfg["dim"] = cfg["dim"] + 1
    elif how == "missing":
        (dst / "graph.safetensors").unlink()
    elif how == "json":
        (dst / "config.json").write_text("{")
        return
    if how in ("truncated", "pickle"):
        import hashlib
        cfg["files"]["weights.safetensors"] = hashlib.sha256(w.read_bytes()).hexdigest()
    (dst / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize(("how", "needle"), [
    ("truncated", "not a valid safetensors file"), ("pickle", "not a valid safetensors file"),
    ("version", "format version 42"), ("shape", "do not match"), ("missing", "missing graph.safetensors"),
    ("json", "invalid JSON"),
])
def test_bad_checkpoints(trained_ckpt: Path, tmp_path: Path, how: str, needle: str) -> None:
    bad = tmp_path / "bad"
    _bad_ckpt(trained_ckpt, bad, how)
    with pytest.raises(CheckpointError, match=needle):
        load_checkpoint(bad)
    assert_one_line_error(run("evaluate", str(bad), ok=False), needle)


def test_hash_mismatch_detected(trained_ckpt: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(trained_ckpt, bad)
    w = bad / "weights.safetensors"
    w.write_bytes(w.read_bytes()[:-8] + b"\0" * 8)
    assert_one_line_error(run("compile", str(bad), "--out", str(tmp_path / "o"), ok=False), "SHA-256")
    assert not (tmp_path / "o").exists()


def test_bad_data_one_line(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "train.txt").write_text("0 1 2\n1 two\n")
    p = run("train", "--data", str(d), "--out", str(tmp_path / "ck"), ok=False)
    assert_one_line_error(p, "train.txt:2: non-numeric id 'two'")
    assert not (tmp_path / "ck").exists()
    assert_one_line_error(run("train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "ck"), ok=False),
                          "no such file")
