"""Below uniform 4 bits: does any other table format beat SVD width + int4 at equal bytes?

    OMP_NUM_THREADS=1 nice -n 5 python experiments/below_4bit.py --ckpt runs/lastfm/ckpt \\
        --out runs/lastfm/below4bit/report.json [--grid full|small] [--eval-users N]

Everything is measured at the IR level in numpy, without distillation (it helps every method
alike), on the test split, in both serving modes, against the float32 full-width model in the
same mode. Each configuration is turned into a float IR whose tables hold the values a device
would reconstruct (de-quantized, width-masked or PQ-decoded), scored with edgerec's own
``ir_topk``; its bytes are counted separately by the method's storage rule, as
``Table.nbytes`` counts them (packed values + scales), over the tables the mode serves
(``IR.serving_tables``: lookup ``item + user``, history ``item + history_item``).

Methods (all start from edgerec's SVD rotation, ``passes/prune.py``, which orders the
dimensions by score energy; without the prune's spreading rotation, ``spread=False``: the
popularity formats need the energy order, and the figures in docs/compression.md were measured
before that rotation existed):

- ``uniform``: edgerec's ``PruneDims(w, "svd")`` + ``Quantize("int8" | "int4")``: the frontier
  to beat.
- ``mixwidth``: the most popular items (training interactions) keep ``w_head`` dims, the rest
  only the first ``w_tail`` (in both item-sized tables: ``item`` and ``history_item``); the user
  table keeps ``w_head`` dims.
- ``mixprec``: head items in a wider number format than the tail (int8/int4, int4/3-bit,
  int4/2-bit), symmetric per-row scales; the user table in int4 per row.
- ``group``: one scale per group of ``g`` values instead of per row, float16 scales (rounded
  before use, so the accuracy is that of the stored scale); a group of the whole row is the
  per-row format with a float16 scale. The user table takes the same format when it is 4-bit,
  int4 per row below that.
- ``pq``: faiss ``IndexPQ`` (M subspaces x 8 bits) on each item-sized table at width ``w``,
  asymmetric distance (the user vector stays float: scoring the reconstruction gives the same
  numbers); bytes = M per item + the float32 codebooks (256 x w per table); the user table in
  int4 per row. ``pq-norm``: the same on unit rows, plus a float16 scale per row.

The report (``--out``: JSON, plus a Markdown table beside it) gives per mode and configuration
the bytes, Recall@20 and NDCG@20 (and % of float), top-20 agreement with the float model, the
uniform int4 frontier's Recall@20 and agreement at the same bytes (linear in bytes between its
widths), and the best uniform configuration (int8 or int4, any width) at no more bytes with a
paired bootstrap 95% interval of the Recall@20 difference over the test users (and the
same against the smallest uniform configuration at no fewer bytes). A benchmark,
not a test: the figures go in docs/compression.md.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgerec.checkpoint import load_checkpoint
from edgerec.ir import IR, Table
from edgerec.lowering import lower
from edgerec.metrics import ranking_metrics, recall_per_user, topk_agreement, users_with_items
from edgerec.passes.prune import PruneDims
from edgerec.passes.quantize import _INT4_CLIP, Quantize, quantize_rows_int4
from edgerec.scoring import ir_topk

MODES = ("lookup", "history")
ITEM_TABLES = ("item", "history_item")  # the tables with one row per item
K = 20
# Fewer levels want more clipping than int4's search covers (2-bit keeps only -1, 0, +1).
_LOW_BIT_CLIP = (*_INT4_CLIP, 0.55, 0.5, 0.45, 0.4, 0.35, 0.3)


# ---------------------------------------------------------------------------------------------
# Number formats


@dataclass(frozen=True)
class Fmt:
    """A symmetric integer format: ``bits`` per value, one scale per ``group`` values (None: per
    row) stored as ``scale_dtype``."""

    bits: int
    group: int | None = None
    scale_dtype: type = np.float32

    @property
    def name(self) -> str:
        g = "" if self.group is None else f"g{self.group}"
        s = "" if self.scale_dtype is np.float32 else "/fp16"
        return f"int{self.bits}{g}{s}"


def quantize_dequantize(values: np.ndarray, fmt: Fmt) -> tuple[np.ndarray, int]:
    """``values`` rounded to ``fmt`` and back to float32, and the bytes a device stores: values
    packed ``bits`` to a byte-aligned row plus the scales. int8 takes ``max|x| / 127`` (edgerec's
    rule); fewer bits search a clipping ratio per group for the least squared error (edgerec's
    int4 rule: with ``fmt = Fmt(4)`` the result equals ``quantize_rows_int4``)."""
    v = np.asarray(values, dtype=np.float32)
    rows, cols = v.shape
    if rows == 0 or cols == 0:
        return np.zeros((rows, cols), np.float32), 0
    group = cols if fmt.group is None else fmt.group
    blocks = -(-cols // group)
    padded = np.zeros((rows, blocks * group), np.float32)
    padded[:, :cols] = v
    g = padded.reshape(rows, blocks, group)
    qmax = 2 ** (fmt.bits - 1) - 1
    amax = np.abs(g).max(axis=-1)
    clips = (1.0,) if fmt.bits == 8 else _INT4_CLIP if fmt.bits == 4 else _LOW_BIT_CLIP
    best_q = best_s = None
    best_err = np.full(amax.shape, np.inf)
    for c in clips:
        scale = np.where(amax > 0, c * amax / qmax, 1.0).astype(np.float32)
        scale = scale.astype(fmt.scale_dtype).astype(np.float32)  # the scale as stored
        q = np.clip(np.rint(g / scale[..., None]), -qmax, qmax)
        err = ((q * scale[..., None] - g) ** 2).sum(axis=-1)
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best_s = scale if best_s is None else np.where(better, scale, best_s)
        best_q = q if best_q is None else np.where(better[..., None], q, best_q)
    out = (best_q * best_s[..., None]).reshape(rows, -1)[:, :cols].astype(np.float32)
    nbytes = rows * (-(-cols * fmt.bits // 8)) + rows * blocks * np.dtype(fmt.scale_dtype).itemsize
    return out, int(nbytes)


def split_rows(values: np.ndarray, head: np.ndarray, head_spec: tuple[int, Fmt],
               tail_spec: tuple[int, Fmt]) -> tuple[np.ndarray, int]:
    """Rows ``head`` (bool mask) kept at ``head_spec = (width, format)``, the others at
    ``tail_spec``; the dropped columns are zero. Stored as two tables (items re-indexed so the
    head comes first: the id map is shipped anyway, so the split costs one integer)."""
    width = max(head_spec[0], tail_spec[0])
    out = np.zeros((values.shape[0], width), np.float32)
    total = 0
    for rows, (w, fmt) in ((head, head_spec), (~head, tail_spec)):
        part, nbytes = quantize_dequantize(values[rows, :w], fmt)
        out[np.flatnonzero(rows), :w] = part
        total += nbytes
    return out, total


def pq_roundtrip(values: np.ndarray, m: int, seed: int, norms: bool) -> tuple[np.ndarray, int]:
    """faiss PQ with ``m`` subspaces x 8 bits trained on ``values``: the decoded rows and the
    bytes (one byte per subspace per row + float32 codebooks ``m x 256 x d/m``). With ``norms``
    the rows are PQ-coded as unit vectors and each gets a float16 scale (the least-squares fit
    of the decoded direction, 2 more bytes a row): shared codebooks cannot follow row norms
    that vary several-fold with popularity, which a per-row int4 scale does."""
    import faiss

    rows, d = values.shape
    x = np.ascontiguousarray(values, np.float32)
    if norms:
        length = np.linalg.norm(x, axis=1, keepdims=True)
        x = np.ascontiguousarray(x / np.where(length > 0, length, 1.0), np.float32)
    pq = faiss.IndexPQ(d, m, 8)
    pq.pq.cp.seed = seed
    pq.train(x)
    out = pq.sa_decode(pq.sa_encode(x)).astype(np.float32)
    nbytes = rows * m + 256 * d * 4
    if norms:
        fit = (values * out).sum(axis=1) / np.maximum((out * out).sum(axis=1), 1e-30)
        out *= fit.astype(np.float16).astype(np.float32)[:, None]
        nbytes += rows * 2
    return out, nbytes


# ---------------------------------------------------------------------------------------------
# Configurations


@dataclass
class Config:
    """One table format: ``build(rotated tables, head mask) -> ({table: float values},
    {table: bytes})`` for the served tables."""

    method: str
    label: str
    params: dict[str, Any]
    build: Callable[[dict[str, np.ndarray], np.ndarray], tuple[dict[str, np.ndarray], dict[str, int]]]


def mixwidth(share: float, w_head: int, w_tail: int, bits: int) -> Config:
    fmt = Fmt(bits)

    def build(rot: dict[str, np.ndarray], head: np.ndarray) -> tuple[dict, dict]:
        tables, nbytes = {}, {}
        for n, v in rot.items():
            if n in ITEM_TABLES:
                tables[n], nbytes[n] = split_rows(v, head, (w_head, fmt), (w_tail, fmt))
            else:  # the user vector needs every dimension a head item has
                tables[n], nbytes[n] = quantize_dequantize(v[:, :w_head], fmt)
        return tables, nbytes

    return Config("mixwidth", f"head {share:.0%} {w_head}d / tail {w_tail}d, {fmt.name}",
                  {"head_share": share, "w_head": w_head, "w_tail": w_tail, "bits": bits}, build)


def mixprec(share: float, width: int, head_bits: int, tail_bits: int) -> Config:
    hf, tf, uf = Fmt(head_bits), Fmt(tail_bits), Fmt(4)

    def build(rot: dict[str, np.ndarray], head: np.ndarray) -> tuple[dict, dict]:
        tables, nbytes = {}, {}
        for n, v in rot.items():
            if n in ITEM_TABLES:
                tables[n], nbytes[n] = split_rows(v, head, (width, hf), (width, tf))
            else:
                tables[n], nbytes[n] = quantize_dequantize(v[:, :width], uf)
        return tables, nbytes

    return Config("mixprec", f"{width}d, head {share:.0%} {hf.name} / tail {tf.name}",
                  {"head_share": share, "width": width, "head_bits": head_bits,
                   "tail_bits": tail_bits}, build)


def grouped(width: int, bits: int, group: int | None) -> Config:
    fmt = Fmt(bits, group, np.float16)
    # Below 4 bits the user table stays int4 per row: every score shares one user vector.
    user_fmt = fmt if bits >= 4 else Fmt(4)

    def build(rot: dict[str, np.ndarray], head: np.ndarray) -> tuple[dict, dict]:
        pairs = {n: quantize_dequantize(v[:, :width], fmt if n in ITEM_TABLES else user_fmt)
                 for n, v in rot.items()}
        return {n: p[0] for n, p in pairs.items()}, {n: p[1] for n, p in pairs.items()}

    return Config("group", f"{width}d, {fmt.name}",
                  {"width": width, "bits": bits, "group": group, "scale": "float16"}, build)


def product_quantization(width: int, m: int, seed: int, norms: bool = False) -> Config:
    def build(rot: dict[str, np.ndarray], head: np.ndarray) -> tuple[dict, dict]:
        tables, nbytes = {}, {}
        for n, v in rot.items():
            if n in ITEM_TABLES:
                tables[n], nbytes[n] = pq_roundtrip(v[:, :width], m, seed, norms)
            else:
                tables[n], nbytes[n] = quantize_dequantize(v[:, :width], Fmt(4))
        return tables, nbytes

    return Config("pq-norm" if norms else "pq",
                  f"{width}d, PQ M={m} x 8 bits" + (" + fp16 norm" if norms else ""),
                  {"width": width, "M": m, "codebooks": "float32", "row_norm": norms}, build)


def grid(name: str, seed: int) -> list[Config]:
    """The configurations beyond the uniform frontier. ``small`` is for a large catalogue (a
    few dozen evaluations): each method's best kinds of point on LastFM's full grid, spread
    over the bytes of int4 at 24-64 dims."""
    if name == "full":
        configs = [mixwidth(s, wh, wt, b) for b in (4, 8) for s in (0.1, 0.2) for wh in (64, 48)
                   for wt in (16, 24, 32)]
        configs += [mixprec(s, w, 8, 4) for s in (0.1, 0.2) for w in (24, 32, 48)]
        configs += [mixprec(s, w, 4, tb) for tb in (3, 2) for s in (0.1, 0.2) for w in (32, 48, 64)]
        configs += [grouped(w, b, g) for b in (4, 3) for g in (None, 16, 8) for w in (24, 32, 48)]
        # M in {8, 16, 32}, and two dimensions per subspace (the best trade on LastFM's probe)
        configs += [product_quantization(w, m, seed) for w, m in (
            (64, 8), (64, 16), (64, 32), (48, 8), (48, 16), (48, 24), (32, 8), (32, 16), (32, 32),
            (24, 8), (24, 12), (16, 8))]
        configs += [product_quantization(w, m, seed, norms=True) for w, m in (
            (64, 16), (64, 32), (48, 16), (48, 24), (32, 8), (32, 16), (32, 32), (24, 12), (16, 8))]
        return configs
    if name == "small":
        configs = [mixwidth(0.1, wh, wt, 4) for wh, wt in ((64, 24), (64, 32), (48, 32))]
        configs += [mixwidth(0.1, wh, 24, 8) for wh in (48, 64)]
        configs += [mixprec(0.1, w, 8, 4) for w in (32, 40, 48)] + [mixprec(0.2, 48, 8, 4)]
        configs += [mixprec(0.1, w, 4, 3) for w in (48, 64)] + [mixprec(0.2, 64, 4, 2)]
        configs += [grouped(w, b, g) for w, b, g in ((24, 4, None), (32, 4, None), (48, 4, None),
                                                      (48, 4, 16), (64, 3, None))]
        configs += [product_quantization(32, 32, seed)]
        configs += [product_quantization(w, m, seed, norms=True) for w, m in (
            (24, 12), (32, 16), (48, 16), (48, 24), (64, 32))]
        return configs
    raise ValueError(f"unknown grid {name!r}")


# ---------------------------------------------------------------------------------------------
# Measurement


def float_ir(ir: IR, tables: dict[str, np.ndarray]) -> IR:
    """``ir`` with ``tables`` (float32 values) replacing its served tables."""
    return ir.replace(tables={**ir.tables, **{n: Table(np.ascontiguousarray(v, np.float32))
                                              for n, v in tables.items()}})


class Bench:
    """Scores configurations against the float model on the test users, mode by mode."""

    def __init__(self, raw: IR, truth: tuple[np.ndarray, np.ndarray], users: np.ndarray) -> None:
        self.raw, self.truth, self.users = raw, truth, users
        self.served = {m: raw.serving_tables((m,)) for m in MODES}
        self.ref_top = {m: ir_topk(raw, users, K, m) for m in MODES}
        self.float = {m: self._metrics(self.ref_top[m]) for m in MODES}
        self.float_bytes = {m: sum(raw.tables[n].nbytes for n in self.served[m]) for m in MODES}
        self.rows: list[dict[str, Any]] = []
        self.per_user: list[dict[str, np.ndarray]] = []  # each row's per-user Recall@20, by mode

    def _metrics(self, top: np.ndarray) -> dict[str, float]:
        return ranking_metrics(top, self.users, self.truth, (K,))

    def add(self, method: str, label: str, params: dict[str, Any], ir: IR,
            nbytes: dict[str, int]) -> dict[str, Any]:
        row: dict[str, Any] = {"method": method, "label": label, "params": params, "modes": {}}
        per_user = {}
        for m in MODES:
            t0 = time.perf_counter()
            top = ir_topk(ir, self.users, K, m)
            got = self._metrics(top)
            per_user[m] = recall_per_user(top, self.users, self.truth, K)
            total = sum(nbytes[n] for n in self.served[m])
            row["modes"][m] = {
                "bytes": total, "table_bytes": {n: nbytes[n] for n in self.served[m]},
                "x_smaller": self.float_bytes[m] / total,
                "recall@20": got[f"recall@{K}"], "ndcg@20": got[f"ndcg@{K}"],
                "recall_pct": 100 * got[f"recall@{K}"] / self.float[m][f"recall@{K}"],
                "ndcg_pct": 100 * got[f"ndcg@{K}"] / self.float[m][f"ndcg@{K}"],
                "agreement@20": topk_agreement(top, self.ref_top[m]),
                "seconds": round(time.perf_counter() - t0, 1)}
        self.rows.append(row)
        self.per_user.append(per_user)
        print(" | ".join([f"{method:8s} {label:34s}"] + [
            f"{m} {r['bytes']:>10,} B {r['recall_pct']:6.2f}% agr {r['agreement@20']:.3f}"
            for m, r in row["modes"].items()]), flush=True)
        return row


def int4_frontier(rows: list[dict[str, Any]], mode: str, nbytes: int,
                  key: str = "recall_pct", formats: tuple[str, ...] = ("int4",)) -> float | None:
    """``key`` (Recall@20 % of float, top-20 agreement) of the uniform ``formats`` frontier at
    ``nbytes``, linear in bytes between the measured points that no smaller one beats (None
    outside them). Over int8 and int4 together it is the best a uniform table reaches."""
    pts = sorted((r["modes"][mode]["bytes"], r["modes"][mode][key]) for r in rows
                 if r["method"] == "uniform" and r["params"]["format"] in formats)
    pareto: list[tuple[int, float]] = []
    for b, y in pts:
        if not pareto or y > pareto[-1][1]:
            pareto.append((b, y))
    pts = pareto
    if not pts or not pts[0][0] <= nbytes <= pts[-1][0]:
        return None
    xs, ys = zip(*pts, strict=True)
    return float(np.interp(nbytes, xs, ys))


def best_uniform_within(rows: list[dict[str, Any]], mode: str, nbytes: int) -> int | None:
    """Index of the most accurate uniform (int8 or int4) configuration at no more than
    ``nbytes``."""
    ok = [i for i, r in enumerate(rows) if r["method"] == "uniform" and r["modes"][mode]["bytes"] <= nbytes]
    return max(ok, key=lambda i: rows[i]["modes"][mode]["recall_pct"]) if ok else None


def best_uniform_above(rows: list[dict[str, Any]], mode: str, nbytes: int) -> int | None:
    """Index of the most accurate of the smallest uniform configurations at ``nbytes`` or more:
    a method that beats it is both smaller and more accurate."""
    ok = [i for i, r in enumerate(rows) if r["method"] == "uniform" and r["modes"][mode]["bytes"] >= nbytes]
    if not ok:
        return None
    least = min(rows[i]["modes"][mode]["bytes"] for i in ok)
    return max((i for i in ok if rows[i]["modes"][mode]["bytes"] == least),
               key=lambda i: rows[i]["modes"][mode]["recall_pct"])


def paired_ci(a: np.ndarray, b: np.ndarray, seed: int, draws: int = 1000) -> tuple[float, float]:
    """95% interval of ``mean(a - b)`` over a bootstrap of the users (the same users in both)."""
    diff = a - b
    idx = np.random.default_rng(seed).integers(0, diff.size, (draws, diff.size))
    means = diff[idx].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def annotate(bench: Bench, seed: int) -> None:
    """Add, per mode, the uniform int4 frontier's accuracy at each configuration's bytes, and
    two uniform configurations to compare against user by user (a paired bootstrap interval of
    the Recall@20 difference, in points of % of float): the best at no more bytes, and the
    smallest at no fewer."""
    rows = bench.rows
    for i, r in enumerate(rows):
        for m, v in r["modes"].items():
            v["int4_frontier_pct"] = int4_frontier(rows, m, v["bytes"])
            v["vs_int4_frontier_pts"] = (None if v["int4_frontier_pct"] is None
                                         else v["recall_pct"] - v["int4_frontier_pct"])
            # agreement with the float top-20 is far less noisy than Recall on a few thousand users
            agr = int4_frontier(rows, m, v["bytes"], "agreement@20")
            v["int4_frontier_agreement"] = agr
            v["vs_int4_frontier_agreement"] = None if agr is None else v["agreement@20"] - agr
            both = int4_frontier(rows, m, v["bytes"], formats=("int8", "int4"))
            v["uniform_frontier_pct"] = both
            v["vs_uniform_frontier_pts"] = None if both is None else v["recall_pct"] - both
            for key, pick in (("best_uniform_within", best_uniform_within),
                              ("uniform_above", best_uniform_above)):
                b = pick(rows, m, v["bytes"])
                v[key] = None
                if b is not None and r["method"] not in ("uniform", "float32"):
                    scale = 100 / bench.float[m][f"recall@{K}"]
                    lo, hi = paired_ci(bench.per_user[i][m], bench.per_user[b][m], seed)
                    v[key] = {"label": rows[b]["label"], "bytes": rows[b]["modes"][m]["bytes"],
                              "recall_pct": rows[b]["modes"][m]["recall_pct"],
                              "diff_pts": v["recall_pct"] - rows[b]["modes"][m]["recall_pct"],
                              "diff_ci95_pts": [lo * scale, hi * scale]}


def markdown(report: dict[str, Any]) -> str:
    """One table per mode, sorted by bytes."""
    lines = []
    for m in MODES:
        fl = report["float"][m]
        lines += [f"**{m}** (tables: {' + '.join(report['served'][m])}; float32 full width "
                  f"{report['float_bytes'][m]:,} B, Recall@20 {fl['recall@20']:.4f}, "
                  f"NDCG@20 {fl['ndcg@20']:.4f})", "",
                  "| method | configuration | bytes | x smaller | Recall@20 | % float | NDCG@20 % | "
                  "agr@20 | int4 frontier R@20 % at these bytes | R@20 vs frontier (pts) | "
                  "agr@20 vs frontier | R@20 vs int8/int4 frontier (pts) | "
                  "best uniform at <= bytes | R@20 vs it (pts, 95% CI) | "
                  "smallest uniform at >= bytes | R@20 vs it (pts, 95% CI) |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---:|"]
        for r in sorted(report["rows"], key=lambda r: r["modes"][m]["bytes"]):
            v = r["modes"][m]
            front = "" if v["int4_frontier_pct"] is None else f"{v['int4_frontier_pct']:.1f}%"
            diff = "" if v["vs_int4_frontier_pts"] is None else f"{v['vs_int4_frontier_pts']:+.1f}"
            dagr = ("" if v["vs_int4_frontier_agreement"] is None
                    else f"{v['vs_int4_frontier_agreement']:+.3f}")
            dboth = "" if v["vs_uniform_frontier_pts"] is None else f"{v['vs_uniform_frontier_pts']:+.1f}"
            versus = []
            for bu in (v["best_uniform_within"], v["uniform_above"]):
                versus += ["", ""] if bu is None else [
                    f"{bu['label']} ({bu['recall_pct']:.1f}%)",
                    f"{bu['diff_pts']:+.1f} [{bu['diff_ci95_pts'][0]:+.1f}, {bu['diff_ci95_pts'][1]:+.1f}]"]
            lines.append(f"| {r['method']} | {r['label']} | {v['bytes']:,} | {v['x_smaller']:.1f} | "
                         f"{v['recall@20']:.4f} | {v['recall_pct']:.1f}% | {v['ndcg_pct']:.1f}% | "
                         f"{v['agreement@20']:.3f} | {front} | {diff} | {dagr} | {dboth} | " + " | ".join(versus) + " |")
        lines.append("")
    return "\n".join(lines)


def self_check(rot: dict[str, np.ndarray], raw: IR, width: int) -> dict[str, float]:
    """The two facts the non-uniform rows rest on: this file's 4-bit rule is edgerec's int4
    (values and bytes), and the first ``width`` columns of the full-width rotation are
    ``PruneDims(width)``."""
    x = rot["item"][:, :width]
    mine, nbytes = quantize_dequantize(x, Fmt(4))
    ref = quantize_rows_int4(x)
    if not np.array_equal(mine, ref.dequantize()) or nbytes != ref.nbytes:
        raise AssertionError("the 4-bit rule here differs from edgerec's quantize_rows_int4")
    pruned = PruneDims(width, "svd", spread=False)(raw)[0]
    return {n: float(np.abs(pruned.tables[n].values - rot[n][:, :width]).max()) for n in rot}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="report.json (a .md goes beside it)")
    ap.add_argument("--grid", choices=("full", "small"), default="full")
    ap.add_argument("--widths", type=int, nargs="+", default=[64, 48, 40, 32, 24, 16],
                    help="widths of the uniform int8/int4 frontier")
    ap.add_argument("--eval-users", type=int, default=0, help="test users scored (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t_start = time.perf_counter()

    ckpt = load_checkpoint(args.ckpt)
    data = ckpt.data
    raw, _ = lower(ckpt, MODES, "mean")
    truth = data.test.csr(data.num_users)
    users = users_with_items(truth)
    if 0 < args.eval_users < users.size:
        users = np.sort(np.random.default_rng(args.seed).choice(users, args.eval_users, replace=False))
    served = sorted({n for m in MODES for n in raw.serving_tables((m,))})
    if not set(served) <= {"user", *ITEM_TABLES}:
        raise SystemExit(f"only the LightGCN dot-scorer tables are handled, this IR serves {served}")

    # Popularity: training interactions per item; ties broken by index (stable sort).
    counts = np.bincount(data.train.items, minlength=data.num_items)
    order = np.argsort(-counts, kind="stable")
    bench = Bench(raw, truth, users)
    # The full-width SVD rotation: same scores, dimensions in decreasing score energy.
    rotated = PruneDims(raw.dim, "svd", spread=False)(raw)[0]
    rot = {n: rotated.tables[n].values for n in served}
    report: dict[str, Any] = {
        "checkpoint": str(args.ckpt), "data": data.source, "users_evaluated": int(users.size),
        "items": data.num_items, "users": data.num_users, "dim": raw.dim, "grid": args.grid,
        "served": bench.served, "float": bench.float, "float_bytes": bench.float_bytes,
        "prune_vs_rotation_max_abs_diff": self_check(rot, raw, 32), "distillation": "none",
        "head_train_share": {}, "rows": bench.rows}
    # Where the head matters: its share of the test positives and of the float model's top-20s.
    report["head_test_share"], report["head_top20_share"] = {}, {}
    for share in (0.1, 0.2):
        head = np.zeros(data.num_items, bool)
        head[order[:int(round(share * data.num_items))]] = True
        key = f"{share:.0%}"
        report["head_train_share"][key] = float(head[data.train.items].mean())
        report["head_test_share"][key] = float(head[data.test.items].mean())
        report["head_top20_share"][key] = {m: float(head[bench.ref_top[m]].mean()) for m in MODES}
    norms = np.linalg.norm(rot["item"], axis=1)
    report["item_norm_percentiles_1_50_99"] = np.percentile(norms, [1, 50, 99]).tolist()
    print(json.dumps({k: report[k] for k in (
        "users_evaluated", "float", "float_bytes", "prune_vs_rotation_max_abs_diff",
        "head_train_share", "head_test_share", "head_top20_share",
        "item_norm_percentiles_1_50_99")}), flush=True)

    bench.add("float32", f"{raw.dim}d float32", {"width": raw.dim, "format": "float32"}, raw,
              {n: raw.tables[n].nbytes for n in served})
    for w in sorted({w for w in args.widths if w <= raw.dim}, reverse=True):
        pruned = PruneDims(w, "svd", spread=False)(raw)[0]
        for fmt in ("int8", "int4"):
            q = Quantize(fmt)(pruned)[0]
            bench.add("uniform", f"{w}d, {fmt}", {"width": w, "format": fmt}, q,
                      {n: q.tables[n].nbytes for n in served})
    for cfg in grid(args.grid, args.seed):
        head = np.zeros(data.num_items, bool)
        head[order[:int(round(cfg.params.get("head_share", 0.0) * data.num_items))]] = True
        tables, nbytes = cfg.build(rot, head)
        bench.add(cfg.method, cfg.label, cfg.params, float_ir(rotated, tables), nbytes)
    annotate(bench, args.seed)
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    text = markdown(report)
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
