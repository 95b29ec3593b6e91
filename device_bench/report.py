"""The device_bench report schema, checked field by field.

The workstation (``edgerec bench``) and the tests read reports written on other machines, so
the shape is checked here, once, with a message that names the offending field.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from device_bench.measure import LATENCY_KEYS
from runtime.artifact import is_finite_number

REPORT_FORMAT = "edgerec-device-bench"
REPORT_FORMAT_VERSION = 1
ACCURACY_KEYS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "agreement@20")
PER_RECORD = "recall@20_per_record"  # each eval record's Recall@20, null where skipped


class ReportError(ValueError):
    """A report does not match the schema; the message names the field."""


def _get(d: Any, key: str, where: str) -> Any:
    if not isinstance(d, Mapping):
        raise ReportError(f"{where}: expected an object")
    if key not in d:
        raise ReportError(f"{where}.{key}: missing")
    return d[key]


def _num(d: Any, key: str, where: str, *, lo: float | None = 0.0, hi: float | None = None,
         null: bool = False, integer: bool = False) -> None:
    v = _get(d, key, where)
    if v is None and null:
        return
    kinds = (int,) if integer else (int, float)
    if not is_finite_number(v) or not isinstance(v, kinds):
        raise ReportError(f"{where}.{key}: expected a {'integer' if integer else 'number'}, "
                          f"got {v!r}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ReportError(f"{where}.{key}: {v!r} outside [{lo}, {hi}]")


def _str(d: Any, key: str, where: str, *, null: bool = False) -> None:
    v = _get(d, key, where)
    if not (isinstance(v, str) or (null and v is None)):
        raise ReportError(f"{where}.{key}: expected a string, got {v!r}")


def check_latency(lat: Any, where: str) -> None:
    _num(lat, "count", where, lo=1, integer=True)
    for key in LATENCY_KEYS[1:]:
        _num(lat, key, where)
    if not (lat["min_ms"] <= lat["p5_ms"] <= lat["p50_ms"] <= lat["p95_ms"] <= lat["p99_ms"]
            <= lat["max_ms"]):
        raise ReportError(f"{where}: percentiles not ordered min <= p5 <= ... <= max")


def _check_mode(m: Any, where: str) -> None:
    _num(m, "first_ms", where)
    _num(_get(m, "warmup", where), "count", f"{where}.warmup", integer=True)
    _num(m["warmup"], "mean_ms", f"{where}.warmup", null=True)
    check_latency(_get(m, "latency", where), f"{where}.latency")
    _num(m, "k", where, lo=1, integer=True)
    tp = _get(m, "throughput", where)
    _num(tp, "batch", f"{where}.throughput", lo=1, integer=True)
    _num(tp, "recs_per_s", f"{where}.throughput", null=True)
    if _get(tp, "method", f"{where}.throughput") not in (
            "recommend_many", "recommend_many_from_history", "loop"):
        raise ReportError(f"{where}.throughput.method: unknown {tp['method']!r}")


def _check_accuracy(acc: Any, modes: list[str], where: str) -> None:
    _str(acc, "file", where)
    got = _get(acc, "modes", where)
    for mode in modes:
        a = _get(got, mode, f"{where}.modes")
        w = f"{where}.modes.{mode}"
        _num(a, "users", w, integer=True)
        for key in ACCURACY_KEYS:
            _num(a, key, w, hi=1.0, null=True)
        if a["users"] > 0 and a["recall@20"] is None:
            raise ReportError(f"{w}.recall@20: null although {a['users']} users were scored")
        per = a.get(PER_RECORD)  # optional: reports before 2026-12-05 lack it
        if per is not None and (not isinstance(per, list) or sum(v is not None for v in per)
                                != a["users"] or not all(
                                    v is None or (is_finite_number(v) and 0 <= v <= 1) for v in per)):
            raise ReportError(f"{w}.{PER_RECORD}: expected one value in [0, 1] per "
                              f"scored user ({a['users']}) and null for the others")


def check_target(t: Any, where: str) -> None:
    """One target's entry: either a full measurement or ``error`` plus the artifact path."""
    art = _get(t, "artifact", where)
    _str(art, "path", f"{where}.artifact")
    if _get(t, "error", where) is not None:
        _str(t, "error", where)
        return
    wa = f"{where}.artifact"
    for key in ("target", "name"):
        _str(art, key, wa)
    for key in ("model_bytes", "artifact_bytes", "num_items", "dim", "k"):
        _num(art, key, wa, integer=True)
    if art["model_bytes"] <= 0 or art["artifact_bytes"] < art["model_bytes"]:
        raise ReportError(f"{wa}: model_bytes must be > 0 and <= artifact_bytes")
    modes = _get(art, "modes", wa)
    if not isinstance(modes, list) or not modes or set(modes) - {"history", "lookup"}:
        raise ReportError(f"{wa}.modes: expected a non-empty subset of history/lookup")
    _str(t, "backend", where, null=True)
    _str(_get(t, "interpreter", where), "module", f"{where}.interpreter", null=True)
    _num(t, "threads", where, lo=1, integer=True)
    _num(t, "init_ms", where)
    mem = _get(t, "memory", where)
    for key in ("peak_rss_after_load_bytes", "peak_rss_bytes", "baseline_peak_rss_bytes",
                "rss_after_load_bytes", "bare_interpreter_peak_rss_bytes"):
        _num(mem, key, f"{where}.memory", integer=True, null=True)
    for key in ("peak_rss_increase_bytes", "peak_rss_over_preload_bytes",
                "peak_rss_over_bare_interpreter_bytes"):
        _num(mem, key, f"{where}.memory", lo=None, integer=True, null=True)
    per_mode = _get(t, "modes", where)
    for mode in modes:
        _check_mode(_get(per_mode, mode, f"{where}.modes"), f"{where}.modes.{mode}")
    if t.get("accuracy") is None:
        _str(t, "accuracy_reason", where)
    else:
        _check_accuracy(t["accuracy"], modes, f"{where}.accuracy")


def validate_report(doc: Any) -> None:
    """Raise :class:`ReportError` unless ``doc`` is a well-formed device_bench report."""
    if _get(doc, "format", "report") != REPORT_FORMAT:
        raise ReportError(f"report.format: expected {REPORT_FORMAT!r}")
    if _get(doc, "format_version", "report") != REPORT_FORMAT_VERSION:
        raise ReportError(f"report.format_version: expected {REPORT_FORMAT_VERSION}")
    machine = _get(doc, "machine", "report")
    for key in ("hostname", "os", "python", "numpy"):
        _str(machine, key, "report.machine")
    _str(machine, "cpu", "report.machine", null=True)
    _num(machine, "cores", "report.machine", lo=1, integer=True, null=True)
    settings = _get(doc, "settings", "report")
    for key in ("requests", "batch", "threads"):
        _num(settings, key, "report.settings", lo=1, integer=True)
    _num(settings, "warmup", "report.settings", integer=True)
    if not isinstance(_get(doc, "baselines", "report"), Mapping):
        raise ReportError("report.baselines: expected an object")
    targets = _get(doc, "targets", "report")
    if not isinstance(targets, list) or not targets:
        raise ReportError("report.targets: expected a non-empty list")
    for i, t in enumerate(targets):
        check_target(t, f"report.targets[{i}]")


def write_report(path: str | os.PathLike[str], doc: Mapping[str, Any]) -> None:
    """Write ``doc`` as JSON to ``path`` whole or not at all (a temp file beside it, renamed)."""
    out = Path(path)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, allow_nan=False), encoding="utf-8")
    os.replace(tmp, out)
