"""The guard's promise beside what it kept on users it has not seen.

When it compiled an artifact, the guard measured the relative Recall@20 drop on the validation
users (and, with its margin, the bootstrap upper bound it held to the budget): the manifest's
``metrics``. The bench measures the artifact's Recall@20 on the evaluation sample (the test
users of ``export --with-eval``); the same file holds the float model's top-20 for those users,
so the float model's Recall@20 there needs no model, and the test drop is their ratio. With
the device's per-record Recall@20 (device_bench since 2026-12-05) the test drop gets a 95%
paired bootstrap interval over those users (:mod:`edgerec.uncertainty`): a sample of a few
hundred users moves the drop by a point or more, and the interval says by how much.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from device_bench.report import PER_RECORD
from edgerec.uncertainty import paired_drop_bound


def _float_recall(eval_path: Path, mode: str, k: int = 20) -> list[float | None] | None:
    """The float model's Recall@k per record of the eval sample (None where the record has no
    float answer or device_bench would skip it in ``mode``), as device_bench scores an
    artifact; None when the file cannot be read."""
    from device_bench.evalfile import EvalFileError, read_eval, recall_ndcg

    try:
        records = read_eval(eval_path).records
    except EvalFileError:
        return None
    return [recall_ndcg(r.reference[mode], r.test, k)[0]
            if r.reference.get(mode) and (r.user is not None if mode == "lookup" else r.history)
            else None for r in records]


def _test_drop(device: list[float | None] | None, ref: list[float | None],
               device_mean: float, ref_mean: float | None,
               ) -> tuple[float | None, int, list[float] | None]:
    """(test drop, users, 95% interval) of the device's Recall@20 against the float answers
    (``ref``, mean ``ref_mean`` over the records it scored): paired over the records both
    scored when the device gave per-record values, else the ratio of the two means (no
    interval)."""
    if ref_mean is None:
        return None, 0, None
    if device is None or len(device) != len(ref):
        users = sum(v is not None for v in ref)
        return (1 - device_mean / ref_mean if ref_mean else None), users, None
    pairs = np.array([(g, f) for g, f in zip(device, ref, strict=True)
                      if g is not None and f is not None], np.float64).reshape(-1, 2)
    if not pairs.size or pairs[:, 1].sum() <= 0:
        return None, len(pairs), None
    point, low = paired_drop_bound(pairs[:, 0], pairs[:, 1], quantile=0.025)
    _, high = paired_drop_bound(pairs[:, 0], pairs[:, 1], quantile=0.975)
    return point, len(pairs), [low, high]


def promise_rows(rows: Sequence[Mapping[str, Any]], artifacts: Mapping[Path, str],
                 eval_file: Path | None = None) -> list[dict[str, Any]]:
    """Per artifact and mode: the guard's budget, its valid drop (point and bound) and the test
    drop on the eval sample. Artifacts without guard metrics (the float reference, an IR
    compiled without held-out data) or without accuracy figures are left out.

    Args:
        rows: the report's rows (:func:`edgerec.benchmark.merge.merge_reports`).
        artifacts: the local artifact directories the rows were measured from, each with the
            name of its rows (:func:`edgerec.benchmark.labels.artifact_labels`).
        eval_file: the evaluation file every target used (default: each artifact's own).
    """
    local = {label: path for path, label in artifacts.items()}
    out = []
    for r in rows:
        art = local.get(r.get("name") or "")
        if r.get("kind") != "artifact" or r.get("error") or art is None:
            continue
        try:
            manifest = json.loads((art / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        metrics = manifest.get("metrics") or {}
        got, ref = metrics.get("compiled") or {}, metrics.get("float") or {}
        guard = metrics.get("guard") or {}
        evals = eval_file or (art / manifest["eval"] if manifest.get("eval") else None)
        for mode, acc in (r.get("accuracy") or {}).items():
            key = f"{mode}/recall@20"
            if not (got.get(key) and ref.get(key)) or acc.get("recall@20") is None:
                continue
            per_float = (_float_recall(evals, mode) if evals else None) or []
            scored = [v for v in per_float if v is not None]
            float_test = sum(scored) / len(scored) if scored else None
            drop, users, interval = _test_drop(acc.get(PER_RECORD), per_float, acc["recall@20"],
                                               float_test)
            out.append({
                "device": r.get("device"), "name": r["name"], "mode": mode,
                "budget": guard.get("max_recall_drop"), "margin": guard.get("recall_margin"),
                "valid_drop": 1 - got[key] / ref[key], "valid_drop_bound": got.get(f"{key}_drop_bound"),
                "test_recall": acc["recall@20"], "float_test_recall": float_test, "test_users": users,
                "test_drop": drop, "test_drop_interval": interval})
    return out


def render_promises(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The promise table in markdown (no lines when no artifact carries guard metrics)."""
    if not rows:
        return []

    def pct(v: Any) -> str:
        return "–" if v is None else f"{100 * v:.1f}%"

    lines = ["", "The guard's promise (relative Recall@20 drop vs the float model): on the validation "
             "users when it compiled (point, and the bootstrap bound it held to the budget when it "
             "had a margin), and on the eval sample's test users here (a sample: with a few hundred "
             "users its drop moves by a point or more; the guard's bound is over every "
             "validation user; the test drop's 95% interval is a paired bootstrap over the eval "
             "sample's users).", "",
             "| device | artifact | mode | budget | valid drop | valid bound (quantile) | "
             "test drop [95% interval] (users) |",
             "|---|---|---|---|---|---|---|"]
    for p in rows:
        q = f" ({p['margin']})" if p.get("margin") else ""
        ci = p.get("test_drop_interval")
        lines.append(f"| {p['device'] or '–'} | {p['name']} | {p['mode']} | {pct(p['budget'])} | "
                     f"{pct(p['valid_drop'])} | {pct(p['valid_drop_bound'])}{q} | {pct(p['test_drop'])}"
                     + (f" [{pct(ci[0])}, {pct(ci[1])}]" if ci else "")
                     + (f" ({p['test_users']})" if p.get("test_users") else "") + " |")
    return lines
