"""The guard's promise beside what it kept on users it has not seen.

When it compiled an artifact, the guard measured the relative Recall@20 drop on the validation
users (and, with its margin, the bootstrap upper bound it held to the budget): the manifest's
``metrics``. The bench measures the artifact's Recall@20 on the evaluation sample (the test
users of ``export --with-eval``); the same file holds the float model's top-20 for those users,
so the float model's Recall@20 there needs no model, and the test drop is their ratio.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _float_recall(eval_path: Path, mode: str, k: int = 20) -> tuple[float | None, int]:
    """The float model's Recall@k on the eval sample, as device_bench scores an artifact, and
    how many users it averages."""
    from device_bench.evalfile import EvalFileError, read_eval, recall_ndcg

    try:
        records = read_eval(eval_path).records
    except EvalFileError:
        return None, 0
    scores = [recall_ndcg(r.reference[mode], r.test, k)[0] for r in records
              if r.reference.get(mode) and (r.user is not None if mode == "lookup" else r.history)]
    return (sum(scores) / len(scores) if scores else None), len(scores)


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
            float_test, users = _float_recall(evals, mode) if evals else (None, 0)
            out.append({
                "device": r.get("device"), "name": r["name"], "mode": mode,
                "budget": guard.get("max_recall_drop"), "margin": guard.get("recall_margin"),
                "valid_drop": 1 - got[key] / ref[key], "valid_drop_bound": got.get(f"{key}_drop_bound"),
                "test_recall": acc["recall@20"], "float_test_recall": float_test, "test_users": users,
                "test_drop": 1 - acc["recall@20"] / float_test if float_test else None})
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
             "validation user).", "",
             "| device | artifact | mode | budget | valid drop | valid bound (quantile) | test drop (users) |",
             "|---|---|---|---|---|---|---|"]
    for p in rows:
        q = f" ({p['margin']})" if p.get("margin") else ""
        lines.append(f"| {p['device'] or '–'} | {p['name']} | {p['mode']} | {pct(p['budget'])} | "
                     f"{pct(p['valid_drop'])} | {pct(p['valid_drop_bound'])}{q} | {pct(p['test_drop'])}"
                     + (f" ({p['test_users']})" if p.get("test_users") else "") + " |")
    return lines
