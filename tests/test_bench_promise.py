"""edgerec bench puts the guard's valid drop beside the test drop on the eval sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from device_bench.evalfile import encode_eval
from edgerec.benchmark.promise import promise_rows, render_promises


def _artifact(tmp: Path, name: str, *, compiled: float, bound: float | None) -> Path:
    art = tmp / name
    art.mkdir()
    got = {"lookup/recall@20": compiled, **({"lookup/recall@20_drop_bound": bound} if bound else {})}
    (art / "manifest.json").write_text(json.dumps({"eval": "eval.json", "metrics": {
        "float": {"lookup/recall@20": 0.40}, "compiled": got,
        "guard": {"max_recall_drop": 0.02, "recall_margin": 0.95 if bound else None}}}))
    # two test users: the float model's top-20 finds 1 of 2 and 2 of 2 of their test items
    records = [{"user": "0", "history": ["a"], "test": ["t1", "t2"],
                "reference": {"lookup": ["t1", "x"]}},
               {"user": "1", "history": ["b"], "test": ["t3", "t4"],
                "reference": {"lookup": ["t3", "t4"]}}]
    (art / "eval.json").write_bytes(encode_eval(records, k=20))
    return art


def test_promise_rows_put_valid_and_test_drops_side_by_side(tmp_path: Path) -> None:
    art = _artifact(tmp_path, "int8", compiled=0.394, bound=0.025)
    row = {"kind": "artifact", "device": "here", "name": "int8", "error": None,
           "accuracy": {"lookup": {"recall@20": 0.675}}}
    out = promise_rows([row, {**row, "name": "elsewhere"}], [art])
    assert len(out) == 1
    p = out[0]
    assert p["valid_drop"] == pytest.approx(0.015) and p["valid_drop_bound"] == 0.025
    assert p["float_test_recall"] == pytest.approx(0.75)
    assert p["test_drop"] == pytest.approx(0.1)
    table = "\n".join(render_promises(out))
    assert "| here | int8 | lookup | 2.0% | 1.5% | 2.5% (0.95) | 10.0% |" in table


def test_artifacts_without_guard_metrics_are_left_out(tmp_path: Path) -> None:
    art = tmp_path / "float32-numpy-reference"
    art.mkdir()
    (art / "manifest.json").write_text(json.dumps({"metrics": None}))
    row = {"kind": "artifact", "device": "here", "name": art.name, "error": None,
           "accuracy": {"lookup": {"recall@20": 0.5}}}
    assert promise_rows([row], [art]) == [] and render_promises([]) == []
