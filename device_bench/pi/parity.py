"""Compare two machines' answers: per-query top-k (probe files) and Recall@20 (bench reports).

Rules: an artifact with int8 weights must return identical top-k ids for every query (its
arithmetic is integer up to the per-row float scale, so any difference is a kernel bug); a
float artifact must return scores within ``atol + rtol * |score|`` and the same ids except
where neighbouring scores tie within that tolerance (the order of near-equal floats may
legitimately differ between SIMD kernels). Recall@20 per mode must agree within ``recall_tol``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from runtime.weights import STORAGES

INT8 = tuple(s.name for s in STORAGES if s.integer)  # integer weights: the exact rule


def _explained(ia: Sequence[Any], sa: Sequence[float], ib: Sequence[Any], sb: Sequence[float],
               tol: float) -> bool:
    """Every item of ``ia`` out of place in ``ib`` sits there with a score within ``tol``, or is
    missing from ``ib`` while scoring within ``tol`` of ``ib``'s cut-off (a near-tie)."""
    where = {x: j for j, x in enumerate(ib)}
    for i, x in enumerate(ia):
        if i < len(ib) and ib[i] == x:
            continue
        j = where.get(x)
        ref = sb[j] if j is not None else (sb[-1] if sb else sa[i])
        if abs(sa[i] - ref) > tol:
            return False
    return True


def compare_answer(a: Mapping[str, Any], b: Mapping[str, Any], *, exact: bool, rtol: float,
                   atol: float) -> dict[str, Any]:
    """One query: ``{"same_items", "ok", "max_abs_score_diff"}``."""
    ia, ib = list(a["items"]), list(b["items"])
    sa, sb = [float(s) for s in a["scores"]], [float(s) for s in b["scores"]]
    diffs = [abs(x - y) for x, y in zip(sa, sb, strict=False)]
    worst = max(diffs, default=0.0)
    same = ia == ib
    if exact or len(ia) != len(ib):
        return {"same_items": same, "ok": same, "max_abs_score_diff": worst}
    tol = max((atol + rtol * abs(s) for s in sa), default=atol)
    ok = (all(d <= atol + rtol * abs(s) for d, s in zip(diffs, sa, strict=True))
          and _explained(ia, sa, ib, sb, tol) and _explained(ib, sb, ia, sa, tol))
    return {"same_items": same, "ok": ok, "max_abs_score_diff": worst}


def compare_probes(ref: Mapping[str, Any], other: Mapping[str, Any], *, rtol: float = 1e-4,
                   atol: float = 1e-5) -> list[dict[str, Any]]:
    """Per artifact (matched by position and name): the top-k parity verdict and its figures."""
    ra, oa = ref["artifacts"], other["artifacts"]
    if len(ra) != len(oa):
        raise ValueError(f"probe files cover {len(ra)} and {len(oa)} artifacts")
    out = []
    for x, y in zip(ra, oa, strict=True):
        if x["name"] != y["name"]:
            raise ValueError(f"probe files disagree on artifact order: {x['name']} vs {y['name']}")
        row: dict[str, Any] = {"name": x["name"], "target": x.get("target"),
                               "quantization": x.get("quantization"), "modes": {}}
        if x.get("error") or y.get("error"):
            row.update(ok=False, error=x.get("error") or y.get("error"))
            out.append(row)
            continue
        exact = (x.get("quantization") or {}).get("weights") in INT8
        row["rule"] = "identical top-k" if exact else f"scores within {atol:g} + {rtol:g}*|s|, ties"
        ok = True
        for mode, answers in x["modes"].items():
            theirs = y["modes"].get(mode)
            if theirs is None or len(theirs) != len(answers):
                row["modes"][mode] = {"ok": False, "error": "mode missing or query count differs"}
                ok = False
                continue
            if any(p["input"] != q["input"] for p, q in zip(answers, theirs, strict=True)):
                row["modes"][mode] = {"ok": False, "error": "the two runs asked different queries"}
                ok = False
                continue
            res = [compare_answer(p, q, exact=exact, rtol=rtol, atol=atol)
                   for p, q in zip(answers, theirs, strict=True)]
            m = {"queries": len(res), "identical_topk": sum(r["same_items"] for r in res),
                 "passing": sum(r["ok"] for r in res),
                 "max_abs_score_diff": max(r["max_abs_score_diff"] for r in res),
                 "ok": all(r["ok"] for r in res)}
            row["modes"][mode] = m
            ok = ok and m["ok"]
        row.update(ok=ok, error=None)
        out.append(row)
    return out


def recall_at_20(report: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """``{artifact name: {mode: recall@20}}`` of a device_bench report."""
    out: dict[str, dict[str, float | None]] = {}
    for t in report.get("targets", []):
        name = (t.get("artifact") or {}).get("name")
        modes = ((t.get("accuracy") or {}).get("modes") or {})
        out[str(name)] = {m: a.get("recall@20") for m, a in modes.items()}
    return out


def compare_recall(ref: Mapping[str, Any], other: Mapping[str, Any], *,
                   tol: float = 1e-9) -> list[dict[str, Any]]:
    """Recall@20 per artifact and mode in both device_bench reports, and whether they agree."""
    ra, oa = recall_at_20(ref), recall_at_20(other)
    out = []
    for name in ra:
        if name not in oa:
            out.append({"name": name, "ok": False, "error": "missing from the other report",
                        "modes": {}})
            continue
        modes = {}
        for m in sorted(set(ra[name]) | set(oa[name])):
            x, y = ra[name].get(m), oa[name].get(m)
            same = x is not None and y is not None and abs(x - y) <= tol
            modes[m] = {"ref": x, "other": y, "ok": same}
        ok = bool(modes) and all(v["ok"] for v in modes.values())
        out.append({"name": name, "ok": ok,
                    "error": None if modes else "no accuracy figures (artifact has no eval.json)",
                    "modes": modes})
    return out
