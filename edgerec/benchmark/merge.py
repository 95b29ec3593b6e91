"""Merge device runs and precomputed baselines into one bench report, with its gains.

A report row is one measured thing (an artifact on a device, or a baseline such as the PyG
full-graph model or a FAISS index) in one shape, so the report and the plot treat them alike.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from device_bench.report import PER_RECORD, ReportError, check_latency
from edgerec.benchmark.errors import BenchError
from edgerec.benchmark.floor import floor_ms, item_table_bytes
from edgerec.benchmark.labels import NUMPY_REFERENCE
from runtime.artifact import is_finite_number

BENCH_FORMAT = "edgerec-bench-report"
BENCH_FORMAT_VERSION = 1
MODES = ("history", "lookup")


def _quant_label(q: Any) -> str | None:
    if not isinstance(q, Mapping):
        return None if q is None else str(q)
    w, a = q.get("weights"), q.get("activations")
    return f"{w}" if a in (None, "float") else f"{w} / {a}"


def _mode_latency(m: Mapping[str, Any]) -> dict[str, float]:
    lat = m.get("latency", m)
    return {p: lat[f"{p}_ms"] for p in ("p50", "p95", "p99")}


def _target_row(device: str, t: Mapping[str, Any]) -> dict[str, Any]:
    art = t["artifact"]
    row: dict[str, Any] = {"kind": "artifact", "device": device, "name": art.get("name"),
                           "path": art.get("path"), "error": t.get("error")}
    if t.get("error"):
        return row
    acc = (t.get("accuracy") or {}).get("modes", {})
    row.update({
        "target": art["target"], "quantization": _quant_label(art.get("quantization")),
        "modes": art["modes"], "file_bytes": art["model_bytes"],
        "artifact_bytes": art["artifact_bytes"], "item_table_bytes": item_table_bytes(art),
        "init_ms": t["init_ms"],
        "peak_rss_increase_bytes": t["memory"].get("peak_rss_increase_bytes"),
        "peak_rss_over_bare_interpreter_bytes": t["memory"].get("peak_rss_over_bare_interpreter_bytes"),
        "latency_ms": {m: _mode_latency(v) for m, v in t["modes"].items()},
        "throughput_recs_per_s": {m: v["throughput"]["recs_per_s"] for m, v in t["modes"].items()},
        "throughput_method": {m: v["throughput"]["method"] for m, v in t["modes"].items()},
        "accuracy": {m: {k: a.get(k) for k in ("recall@20", "ndcg@20", "agreement@20")}
                     | ({PER_RECORD: a[PER_RECORD]} if PER_RECORD in a else {})
                     for m, a in acc.items()},
        "accuracy_reason": t.get("accuracy_reason"),
    })
    return row


def baseline_row(b: Mapping[str, Any]) -> dict[str, Any]:
    """Check a precomputed baseline and turn it into a report row.

    Keys: ``name`` (required); optional ``device``, ``target``, ``quantization``,
    ``file_bytes``, ``init_ms``, ``peak_rss_increase_bytes``, ``modes`` ({mode:
    :func:`measure_callable` result}), ``throughput_recs_per_s`` ({mode: float}),
    ``accuracy`` ({mode: {"recall@20", "ndcg@20", "agreement@20"}}).
    """
    if not isinstance(b, Mapping) or not isinstance(b.get("name"), str):
        raise BenchError("baseline: expected an object with a string 'name'")
    known = {"name", "device", "target", "quantization", "file_bytes", "init_ms",
             "peak_rss_increase_bytes", "modes", "throughput_recs_per_s", "accuracy", "note"}
    if set(b) - known:
        raise BenchError(f"baseline {b['name']}: unknown keys {sorted(set(b) - known)}")
    for key in ("file_bytes", "init_ms", "peak_rss_increase_bytes"):
        if b.get(key) is not None and not is_finite_number(b[key]):
            raise BenchError(f"baseline {b['name']}.{key}: expected a number")
    modes = dict(b.get("modes") or {})
    for m, v in modes.items():
        if m not in MODES:
            raise BenchError(f"baseline {b['name']}.modes: unknown mode {m!r}")
        try:
            check_latency(v.get("latency", v) if isinstance(v, Mapping) else v,
                          f"baseline {b['name']}.modes.{m}")
        except ReportError as e:
            raise BenchError(str(e)) from None
    for m, v in (b.get("throughput_recs_per_s") or {}).items():
        if m not in MODES or (v is not None and not is_finite_number(v)):
            raise BenchError(f"baseline {b['name']}.throughput_recs_per_s.{m}: expected a number")
    acc = dict(b.get("accuracy") or {})
    for m, a in acc.items():
        if m not in MODES or not isinstance(a, Mapping):
            raise BenchError(f"baseline {b['name']}.accuracy.{m}: expected a mode -> metrics")
        for k, v in a.items():
            if v is not None and not (is_finite_number(v) and 0 <= v <= 1):
                raise BenchError(f"baseline {b['name']}.accuracy.{m}.{k}: expected 0..1")
    return {"kind": "baseline", "device": b.get("device"), "name": b["name"], "path": None,
            "error": None, "target": b.get("target"), "quantization": b.get("quantization"),
            "modes": [m for m in MODES if m in modes], "file_bytes": b.get("file_bytes"),
            "artifact_bytes": None, "init_ms": b.get("init_ms"),
            "peak_rss_increase_bytes": b.get("peak_rss_increase_bytes"),
            "peak_rss_over_bare_interpreter_bytes": b.get("peak_rss_increase_bytes"),
            "latency_ms": {m: _mode_latency(v) for m, v in modes.items()},
            "throughput_recs_per_s": dict(b.get("throughput_recs_per_s") or {}),
            "throughput_method": {}, "accuracy": acc, "accuracy_reason": b.get("note")}


def merge_reports(runs: Sequence[Mapping[str, Any]],
                  baselines: Sequence[Mapping[str, Any]] | None = None,
                  bandwidth: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One bench report from device runs and baselines.

    Args:
        runs: ``{"device", "via", "report"}`` per device_bench run (``via`` is ``"local"`` or
            ``"ssh user@host"``).
        baselines: precomputed baselines (see :func:`baseline_row`).
        bandwidth: this machine's read bandwidth (:func:`edgerec.benchmark.floor.
            measure_bandwidth`); each local artifact then gets the physical floor of a lookup.
    """
    rows = [_target_row(r["device"], t) for r in runs for t in r["report"]["targets"]]
    rows += [baseline_row(b) for b in baselines or []]
    local = {r["device"] for r in runs if r.get("via") == "local"}
    if bandwidth:
        for row in rows:
            if row["kind"] == "artifact" and row["device"] in local and not row.get("error"):
                row["floor_ms"] = floor_ms(row.get("item_table_bytes"), bandwidth)
    return {"format": BENCH_FORMAT, "format_version": BENCH_FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "runs": [dict(r) for r in runs], "baselines": [dict(b) for b in baselines or []],
            "bandwidth": dict(bandwidth) if bandwidth else None,
            "rows": rows, "gains": gains(rows, local)}


def _ratio(a: Any, b: Any) -> float | None:
    return a / b if is_finite_number(a) and is_finite_number(b) and b > 0 else None


def _faiss(rows: Sequence[Mapping[str, Any]], equal_bytes: bool) -> Mapping[str, Any]:
    """The FAISS flat float32 row, or (``equal_bytes``) the PQ row sized like edgerec's table."""
    for r in rows:
        q = str(r.get("quantization") or "")
        if r["kind"] == "baseline" and r.get("target") == "faiss" and not r.get("error") and (
                q.startswith("PQ") if equal_bytes else q == "float32"):
            return r
    return {}


def _lookup(row: Mapping[str, Any], field: str, key: str) -> Any:
    return ((row.get(field) or {}).get("lookup") or {}).get(key)


def gains(rows: Sequence[Mapping[str, Any]], local: set[str] | frozenset[str] = frozenset()
          ) -> list[dict[str, Any]]:
    """Per artifact, the ratios a user picks a target by.

    Speed (p50 ratios, per mode): against the PyG baseline's request and against the float32
    numpy reference measured on the same device; memory (increase over a bare interpreter):
    against that reference. Against FAISS (lookup only, as FAISS answers a user vector): how
    many times faster and smaller than the exact float32 index, and the share of Recall@20
    kept against that index and against the PQ index of about the same bytes.

    The PyG and FAISS baselines run on the workstation, so their ratios are given only for
    artifacts measured there. PyG answers lookup requests only, so both modes are divided
    into its lookup p50.

    Args:
        rows: the report's rows (artifacts and baselines).
        local: the devices of the local runs (the workstation).
    """
    pyg = next((r for r in rows if r["kind"] == "baseline" and r.get("target") == "pytorch"
                and not r.get("error")), None)
    pyg_p50 = ((pyg or {}).get("latency_ms") or {}).get("lookup", {}).get("p50")
    flat, pq = _faiss(rows, False), _faiss(rows, True)
    out = []
    for r in rows:
        if r["kind"] != "artifact" or r.get("error") or r["name"] == NUMPY_REFERENCE:
            continue
        ref = next((x for x in rows if x["kind"] == "artifact" and x["name"] == NUMPY_REFERENCE
                    and x["device"] == r["device"] and not x.get("error")), None)
        lat = r.get("latency_ms") or {}
        ref_lat = (ref or {}).get("latency_ms") or {}
        here = r["device"] in local
        recall = _lookup(r, "accuracy", "recall@20")
        out.append({
            "device": r["device"], "name": r["name"], "path": r.get("path"),
            "quantization": r.get("quantization"),
            "x_faster_than_pyg": {m: _ratio(pyg_p50, v.get("p50")) if here else None
                                  for m, v in lat.items()},
            "x_faster_than_numpy_float32": {m: _ratio(ref_lat.get(m, {}).get("p50"), v.get("p50"))
                                            for m, v in lat.items()},
            "x_less_memory_than_numpy_float32": _ratio(
                (ref or {}).get("peak_rss_over_bare_interpreter_bytes"),
                r.get("peak_rss_over_bare_interpreter_bytes")),
            "x_faster_than_faiss_flat": _ratio(_lookup(flat, "latency_ms", "p50"),
                                               _lookup(r, "latency_ms", "p50")) if here else None,
            "x_smaller_than_faiss_flat": _ratio(flat.get("file_bytes"), r.get("file_bytes"))
            if here else None,
            "recall_vs_faiss_flat": _ratio(recall, _lookup(flat, "accuracy", "recall@20"))
            if here else None,
            "recall_vs_faiss_equal_bytes": _ratio(recall, _lookup(pq, "accuracy", "recall@20"))
            if here else None,
            "faiss_equal_bytes": pq.get("name"),
        })
    return out
