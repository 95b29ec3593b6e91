"""Parity: run an exported model in its own interpreter and compare with numpy references.

Two references, both computed from the IR: the *emulated* one uses the target's activation
scheme (``runtime/quant.py``), so it should agree exactly; the *float* one dequantizes the IR
and keeps activations in float, which says what quantizing the activations costs.

Each target supplies the run (``Built.runner``, :mod:`exporters.target`); this module is
target-agnostic.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgerec.ir import IR
from exporters.target import Runner
from runtime import artifact, quant
from runtime.backends import reference

# The parity rule that applies, named in the report: integer activations are emulated exactly
# (identical top-k expected); float ones match up to summation order (near-ties may swap).
EMULATED = "emulated integer arithmetic"
NEAR_TIE = "agreement, float near-ties"


def input_names(mode: str) -> tuple[str, str]:
    """The contract's two input names for ``mode`` (index input first), from ``runtime``."""
    names = list(artifact.default_signatures("tflite", [mode], 1, 1, 1)[mode]["inputs"])
    return names[0], names[1]


def sample_queries(ir: IR, *, n: int, history_capacity: int, exclude_capacity: int,
                   seed: int = 0) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Up to ``n`` lookup queries (users, their seen items as ``exclude``) and ``n`` history
    queries: each sampled user's seen list (most recent last, truncated to the capacity keeping
    the most recent), topped up with random histories when the IR has fewer than ``n`` users.
    Inputs are padded with ``pad_index``."""
    rng = np.random.default_rng(seed)
    pad = ir.num_items
    users = rng.choice(ir.num_users, size=min(n, ir.num_users), replace=False)
    users = np.sort(users).astype(np.int32)
    out: list[tuple[str, dict[str, np.ndarray]]] = []
    for u in users:
        seen = ir.seen(int(u))
        if "lookup" in ir.modes:
            ex = np.full(exclude_capacity, pad, np.int32)
            s = seen[-exclude_capacity:]
            ex[: s.size] = s
            a, b = input_names("lookup")
            out.append(("lookup", {a: np.array([u], np.int32), b: ex}))
        if "history" in ir.modes and seen.size:
            h = seen[-history_capacity:]
            items = np.full(history_capacity, pad, np.int32)
            items[: h.size] = h
            a, b = input_names("history")
            out.append(("history", {a: items, b: np.array([h.size], np.int32)}))
    if "history" in ir.modes:  # top up with random histories when the IR has few users
        a, b = input_names("history")
        n_hist = sum(mode == "history" for mode, _ in out)
        for _ in range(max(n - n_hist, 0)):
            size = int(rng.integers(1, min(history_capacity, ir.num_items) + 1))
            items = np.full(history_capacity, pad, np.int32)
            items[:size] = rng.choice(ir.num_items, size=size, replace=False)
            out.append(("history", {a: items, b: np.array([size], np.int32)}))
    return out


def _user_vector(ir: IR, mode: str, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    first, second = (feeds[n] for n in input_names(mode))
    if mode == "lookup":
        t = ir.tables["user"]
        u = int(first[0])
        return t.take(np.array([u]))[0], second
    t = ir.tables["history_item"]
    n = int(second[0])
    idx = first[:n]
    rows = t.take(idx)
    u = rows.sum(axis=0, dtype=np.float32) * (np.float32(1.0) / np.sqrt(np.float32(n)))
    return u.astype(np.float32), first


def _tables(ir: IR) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    return {n: (t.values if t.codebook is None else quant.ProductCodes(t.values, t.codebook, t.width),
                t.scale) for n, t in ir.tables.items()}


def reference_topk(ir: IR, mode: str, feeds: dict[str, np.ndarray], k: int,
                   activations: str) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (items, full score vector) of the numpy reference for one query. sage / gcn / gat
    history programs and the MLP head run ``runtime.backends.reference``'s device-side code."""
    if mode == "history" and ir.history_kind != "lightgcn":
        items, length = (feeds[n] for n in input_names(mode))
        n = int(length[0])
        u = reference.history_vector(ir.history_kind, _tables(ir), items, n,
                                     float(ir.history.get("negative_slope", 0.2)))
        exclude = items[:n]
    else:
        u, exclude = _user_vector(ir, mode, feeds)
    if ir.scorer.get("kind") == "mlp":
        scores = reference.mlp_scores(u, _tables(ir))
    else:
        item = ir.tables["item"]
        scores = quant.score_items(u, item.values, item.scale, activations)
    scores = scores.astype(np.float32)
    ex = exclude[exclude < ir.num_items]
    scores[ex] = -np.inf
    top = np.argsort(-scores, kind="stable")[:k]
    return top[scores[top] > artifact.MASKED_SCORE].astype(np.int32), scores


def _overlap(got: np.ndarray, ref: np.ndarray) -> float:
    """|got ∩ ref| / |ref|; two empty answers (a history that excludes every item) agree."""
    if not ref.size:
        return float(not got.size)
    return len(set(got.tolist()) & set(ref.tolist())) / ref.size


def compare(ir: IR, run: Runner,
            queries: list[tuple[str, dict[str, np.ndarray]]], k: int,
            activations: str) -> dict[str, Any]:
    """Agreement of ``run`` (the exported model) with the emulated and float references."""
    per_mode: dict[str, dict[str, list[float]]] = {}
    for mode, feeds in queries:
        out = run(mode, feeds)
        items, scores = np.asarray(out["items"]), np.asarray(out["scores"])
        valid = scores > artifact.MASKED_SCORE
        got = items[valid]
        m = per_mode.setdefault(mode, {"agree": [], "exact": [], "err": [], "rel": [], "float": []})
        ref, ref_scores = reference_topk(ir, mode, feeds, k, activations)
        m["agree"].append(_overlap(got, ref))
        m["exact"].append(float(np.array_equal(got, ref)))
        err = float(np.max(np.abs(scores[valid] - ref_scores[got]))) if got.size else 0.0
        m["err"].append(err)
        m["rel"].append(err / max(float(np.max(np.abs(ref_scores[ref]))) if ref.size else 1.0, 1e-12))
        fref, _ = reference_topk(ir, mode, feeds, k, "float")
        m["float"].append(_overlap(got, fref))
    report: dict[str, Any] = {"k": k, "activations": activations, "modes": {},
                              "check": NEAR_TIE if activations == "float" else EMULATED}
    for mode, m in per_mode.items():
        report["modes"][mode] = {
            "queries": len(m["agree"]),
            f"agreement@{k}": round(float(np.mean(m["agree"])), 6),
            "exact_match_rate": round(float(np.mean(m["exact"])), 6),
            "max_score_error": float(np.max(m["err"])),
            "max_relative_score_error": float(np.max(m["rel"])),
            f"agreement@{k}_vs_float": round(float(np.mean(m["float"])), 6),
        }
    report[f"agreement@{k}"] = min((v[f"agreement@{k}"] for v in report["modes"].values()),
                                   default=1.0)
    return report
