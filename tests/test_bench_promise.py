"""edgerec bench puts the guard's valid drop beside the test drop on the eval sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from device_bench.evalfile import encode_eval
from edgerec.benchmark.labels import artifact_labels
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
    out = promise_rows([row, {**row, "name": "elsewhere"}], artifact_labels([art]))
    assert len(out) == 1
    p = out[0]
    assert p["valid_drop"] == pytest.approx(0.015) and p["valid_drop_bound"] == 0.025
    assert p["float_test_recall"] == pytest.approx(0.75)
    assert p["test_drop"] == pytest.approx(0.1)
    table = "\n".join(render_promises(out))
    assert p["test_users"] == 2
    assert "| here | int8 | lookup | 2.0% | 1.5% | 2.5% (0.95) | 10.0% (2) |" in table


def test_artifacts_without_guard_metrics_are_left_out(tmp_path: Path) -> None:
    art = tmp_path / "float32-numpy-reference"
    art.mkdir()
    (art / "manifest.json").write_text(json.dumps({"metrics": None}))
    row = {"kind": "artifact", "device": "here", "name": art.name, "error": None,
           "accuracy": {"lookup": {"recall@20": 0.5}}}
    assert promise_rows([row], artifact_labels([art])) == [] and render_promises([]) == []


def test_rows_are_named_for_what_the_artifact_is_and_matched_to_their_own_artifact(tmp_path: Path) -> None:
    """Every export's folder is ``tflite`` or ``onnx``: rows named by folder collided, and every
    row's promise was read from the last artifact's manifest."""
    arts = []
    for parent, compiled, dim in (("default", 0.394, 24), ("full", 0.40, 24), ("wide", 0.40, 64)):
        (tmp_path / parent).mkdir()
        art = _artifact(tmp_path / parent, "tflite", compiled=compiled, bound=0.025)
        m = json.loads((art / "manifest.json").read_text())
        m.update(target="tflite", dim=dim, quantization={"weights": "int8-per-row+int4-item"})
        (art / "manifest.json").write_text(json.dumps(m))
        arts.append(art)
    labels = artifact_labels(arts)
    assert list(labels.values()) == ["TFLite int4-item, 24 dims (default)", "TFLite int4-item, 24 dims (full)",
                                     "TFLite int4-item, 64 dims"]
    rows = [{"kind": "artifact", "device": "here", "name": labels[a], "error": None,
             "accuracy": {"lookup": {"recall@20": 0.675}}} for a in arts]
    out = promise_rows(rows, labels)
    assert [p["valid_drop"] for p in out] == [pytest.approx(0.015), pytest.approx(0.0), pytest.approx(0.0)]


def test_alike_artifacts_in_folders_of_the_same_name_are_told_apart_further_up(tmp_path: Path) -> None:
    """``runs/a/art-q0.95/tflite`` and ``runs/b/art-q0.95/tflite``: the parent names alone
    collide, so the label takes one more folder (a bench run named both rows alike and read
    both promises from one manifest)."""
    arts = []
    for run, compiled in (("a", 0.394), ("b", 0.40)):
        (tmp_path / run / "art-q0.95").mkdir(parents=True)
        art = _artifact(tmp_path / run / "art-q0.95", "tflite", compiled=compiled, bound=0.025)
        m = json.loads((art / "manifest.json").read_text())
        m.update(target="tflite", dim=24, quantization={"weights": "int4-per-row"})
        (art / "manifest.json").write_text(json.dumps(m))
        arts.append(art)
    labels = artifact_labels(arts)
    assert list(labels.values()) == ["TFLite int4, 24 dims (a/art-q0.95)",
                                     "TFLite int4, 24 dims (b/art-q0.95)"]
    rows = [{"kind": "artifact", "device": "here", "name": labels[a], "error": None,
             "accuracy": {"lookup": {"recall@20": 0.675}}} for a in arts]
    assert [p["valid_drop"] for p in promise_rows(rows, labels)] == [pytest.approx(0.015),
                                                                     pytest.approx(0.0)]


def test_the_test_drop_gets_a_paired_bootstrap_interval_over_the_devices_users(tmp_path: Path) -> None:
    """With device_bench's per-record Recall@20 the drop is paired over the records both the
    device and the float answers scored, and carries a 95% interval that holds the point; a
    record the device skipped (None) is left out of both sides."""
    from edgerec.uncertainty import paired_drop_bound

    art = _artifact(tmp_path, "int8", compiled=0.394, bound=0.025)
    # float per record: 0.5 and 1.0 (above); the device found 0.5 and 0.5, or skipped record 0
    row = {"kind": "artifact", "device": "here", "name": "int8", "error": None,
           "accuracy": {"lookup": {"recall@20": 0.5, "recall@20_per_record": [0.5, 0.5]}}}
    p = promise_rows([row], artifact_labels([art]))[0]
    assert p["test_drop"] == pytest.approx(1 - 1.0 / 1.5) and p["test_users"] == 2
    lo, hi = p["test_drop_interval"]
    assert lo <= p["test_drop"] <= hi
    assert (lo, hi) == (paired_drop_bound([0.5, 0.5], [0.5, 1.0], quantile=0.025)[1],
                        paired_drop_bound([0.5, 0.5], [0.5, 1.0], quantile=0.975)[1])
    assert "33.3% [" in "\n".join(render_promises([p]))
    skipped = {**row, "accuracy": {"lookup": {"recall@20": 0.5, "recall@20_per_record": [None, 0.5]}}}
    p = promise_rows([skipped], artifact_labels([art]))[0]
    assert p["test_drop"] == pytest.approx(0.5) and p["test_users"] == 1
    # an older report without per-record values: the ratio of the means, no interval
    old = {**row, "accuracy": {"lookup": {"recall@20": 0.675}}}
    p = promise_rows([old], artifact_labels([art]))[0]
    assert p["test_drop"] == pytest.approx(0.1) and p["test_drop_interval"] is None


def test_the_report_schema_checks_the_per_record_values() -> None:
    from device_bench.report import ReportError, _check_accuracy

    base = {"recall@10": 0.5, "recall@20": 0.5, "ndcg@10": 0.5, "ndcg@20": 0.5,
            "agreement@20": 1.0, "users": 2}
    _check_accuracy({"file": "e", "modes": {"lookup": {**base, "recall@20_per_record": [0.5, None, 0.5]}}},
                    ["lookup"], "t")
    for bad in ([0.5], [0.5, 1.5], [0.5, "x"], "0.5"):
        with pytest.raises(ReportError, match="recall@20_per_record"):
            _check_accuracy({"file": "e", "modes": {"lookup": {**base, "recall@20_per_record": bad}}},
                            ["lookup"], "t")
