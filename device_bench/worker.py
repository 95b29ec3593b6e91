"""Measure one artifact in this (fresh) process and write its JSON result.

Run by ``python -m device_bench`` as ``python -m device_bench.worker ARTIFACT --out FILE ...``;
one process per target so that peak memory belongs to that target alone. Order of work:
read the manifest and sample a pool of request inputs (random known users; random histories
of 1..history_capacity distinct items), ``runtime.load``, per mode the first inference,
warm-up and timed requests, batched throughput, then (after the memory figures are taken)
accuracy on the evaluation file.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import runtime
from device_bench import evalfile
from device_bench.machine import version_of
from device_bench.measure import current_rss, measure_calls, peak_rss
from device_bench.report import PER_RECORD
from runtime import errors as rt_errors
from runtime.artifact import load_ids, model_files

MODE_ORDER = ("history", "lookup")
INPUT_POOL = 512  # distinct sampled request inputs per mode
# Interpreter modules, most specific first; the one the runtime imported names the baseline.
INTERPRETER_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter",
                       "tensorflow", "onnxruntime")


class TargetError(Exception):
    """This artifact cannot be benchmarked; the message is one readable line."""


def loaded_interpreter() -> str | None:
    """The interpreter module this process has imported, if any."""
    return next((m for m in INTERPRETER_MODULES if m in sys.modules), None)


def _dir_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def read_manifest(artifact: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((artifact / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TargetError(f"{artifact}: not an artifact (no manifest.json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TargetError(f"{artifact}/manifest.json: unreadable ({e})") from None
    if not isinstance(manifest, dict):
        raise TargetError(f"{artifact}/manifest.json: not a JSON object")
    return manifest


def describe_artifact(artifact: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Target, shape and sizes: model files (what the interpreter maps: the models and the
    tables they read, ONNX ``tables.bin``) and the whole directory."""
    sizes = {f: (artifact / f).stat().st_size for f in model_files(manifest) if (artifact / f).is_file()}
    return {
        "path": str(artifact), "name": artifact.name,
        "target": manifest.get("target"),
        "quantization": manifest.get("quantization"),
        "modes": [m for m in MODE_ORDER if m in (manifest.get("modes") or [])],
        "num_users": manifest.get("num_users"), "num_items": manifest.get("num_items"),
        "dim": manifest.get("dim"), "k": manifest.get("k"),
        "history_capacity": manifest.get("history_capacity"),
        "model_files": sizes, "model_bytes": sum(sizes.values()),
        "artifact_bytes": _dir_bytes(artifact),
    }


def _id_map(artifact: Path, manifest: dict[str, Any], which: str) -> Sequence[Any]:
    """The id list, read as the runtime reads it: ``"0".."n-1"`` maps as a compact range, so
    sampling inputs does not leave tens of thousands of id strings in this process's memory
    (it would count as the model's)."""
    name = (manifest.get("id_maps") or {}).get(which, f"{which}.json")
    count = manifest.get(f"num_{which}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise TargetError(f"{artifact}/manifest.json: num_{which} is not a count ({count!r})")
    try:
        return load_ids(artifact, name, count, which[:-1])
    except OSError as e:
        raise TargetError(f"{artifact}/{name}: unreadable id map ({e.strerror or e})") from None


def sample_inputs(artifact: Path, manifest: dict[str, Any], modes: Sequence[str], count: int,
                  seed: int) -> dict[str, list[Any]]:
    """Deterministic request inputs: random known users; random histories of 1..C items."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[Any]] = {}
    if "lookup" in modes:
        users = _id_map(artifact, manifest, "users")
        if not users:
            raise TargetError(f"{artifact}: lookup mode but no users")
        out["lookup"] = [users[int(i)] for i in rng.integers(0, len(users), count)]
    if "history" in modes:
        items = _id_map(artifact, manifest, "items")
        cap = int(manifest.get("history_capacity") or 1)
        lengths = rng.integers(1, min(cap, len(items)) + 1, count)
        out["history"] = [[items[int(j)] for j in rng.choice(len(items), int(n), replace=False)]
                          for n in lengths]
    return out


def top_ids(result: Any) -> list[Any]:
    """Item ids of a recommendation result, whatever shape the runtime returns."""
    items = getattr(result, "items", None)
    if items is not None and not callable(items):
        return list(items)
    if isinstance(result, dict) and "items" in result:
        return list(result["items"])
    out = []
    for r in result:
        if isinstance(r, tuple | list):
            out.append(r[0])
        elif isinstance(r, dict):
            out.append(r.get("item", r.get("id")))
        elif hasattr(r, "item"):
            out.append(r.item)
        else:
            out.append(r)
    return out


def _caller(rec: Any, mode: str, k: int) -> Callable[[Any], Any]:
    if mode == "lookup":
        return lambda user: rec.recommend(user, k)
    return lambda hist: rec.recommend_from_history(hist, k)


def _batched(rec: Any, mode: str, k: int) -> tuple[Callable[[list[Any]], Any], str]:
    """A whole-batch call and its name: the runtime's batched API if it has one, else a loop."""
    name = "recommend_many" if mode == "lookup" else "recommend_many_from_history"
    many = getattr(rec, name, None)
    if callable(many):
        return (lambda batch: many(batch, k)), name
    one = _caller(rec, mode, k)
    return (lambda batch: [one(x) for x in batch]), "loop"


def throughput(rec: Any, mode: str, k: int, inputs: list[Any], batch: int,
               batches: int) -> dict[str, Any]:
    """Recommendations per second at ``batch`` requests per call (one untimed warm batch)."""
    call, method = _batched(rec, mode, k)
    groups = [[inputs[(i * batch + j) % len(inputs)] for j in range(batch)]
              for i in range(batches + 1)]
    call(groups[0])
    t0 = time.perf_counter_ns()
    for g in groups[1:]:
        call(g)
    seconds = (time.perf_counter_ns() - t0) / 1e9
    return {"batch": batch, "batches": batches, "method": method,
            "recs_per_s": batches * batch / seconds if seconds > 0 else None}


def _mean(xs: list[float]) -> float | None:
    xs = [x for x in xs if not math.isnan(x)]
    return sum(xs) / len(xs) if xs else None


def accuracy(rec: Any, modes: Sequence[str], k: int, capacity: int,
             evalset: evalfile.EvalSet) -> dict[str, Any]:
    """Recall/NDCG@10/20 against held-out items and top-20 agreement with the float model;
    ``PER_RECORD`` keeps each evaluation record's Recall@20 (None where the record
    was skipped), so that a drop against the file's float answers can be bootstrapped over
    the same users (``edgerec.benchmark.promise``)."""
    out: dict[str, Any] = {}
    for mode in modes:
        call = _caller(rec, mode, k)
        scores: dict[str, list[float]] = {m: [] for m in
                                          ("recall@10", "recall@20", "ndcg@10", "ndcg@20",
                                           "agreement@20")}
        skipped: dict[str, int] = {}
        per_record: list[float | None] = [None] * len(evalset.records)
        for i, r in enumerate(evalset.records):
            if mode == "lookup" and r.user is None:
                skipped["no user id"] = skipped.get("no user id", 0) + 1
                continue
            if mode == "history" and not r.history:
                skipped["empty history"] = skipped.get("empty history", 0) + 1
                continue
            try:
                ranked = top_ids(call(r.user if mode == "lookup" else list(r.history[-capacity:])))
            except rt_errors.UnknownIdError:
                skipped["unknown id"] = skipped.get("unknown id", 0) + 1
                continue
            for cut in (10, 20):
                rc, nd = evalfile.recall_ndcg(ranked, r.test, cut)
                scores[f"recall@{cut}"].append(rc)
                scores[f"ndcg@{cut}"].append(nd)
            per_record[i] = scores["recall@20"][-1]
            ref = r.reference.get(mode)
            scores["agreement@20"].append(evalfile.agreement(ranked, ref, 20) if ref
                                          else float("nan"))
        users = len(scores["recall@20"])
        out[mode] = {"users": users, "skipped": skipped, "k": k,
                     **{m: (_mean(v) if users else None) for m, v in scores.items()},
                     PER_RECORD: per_record}
    return out


def _eval_source(artifact: Path, manifest: dict[str, Any],
                 eval_file: str | None) -> tuple[Path | None, str]:
    if eval_file:
        return Path(eval_file), "file"
    name = manifest.get("eval")
    if name:
        return artifact / name, "artifact"
    return None, "no evaluation file in the artifact and none given (--eval)"


def run(args: argparse.Namespace) -> dict[str, Any]:
    artifact = Path(args.artifact)
    manifest = read_manifest(artifact)
    info = describe_artifact(artifact, manifest)
    modes = info["modes"]
    if not modes:
        raise TargetError(f"{artifact}: manifest lists no serving modes")
    k = min(20, int(manifest.get("k") or 20))
    batches = max(1, math.ceil(args.requests / args.batch))
    # A pool of distinct inputs, cycled through: enough variety, little memory of our own.
    count = min(INPUT_POOL, 1 + args.warmup + args.requests)
    inputs = sample_inputs(artifact, manifest, modes, count, args.seed)
    gc.collect()
    rss_before = current_rss()

    t0 = time.perf_counter_ns()
    rec = runtime.load(artifact, backend=args.backend, num_threads=args.threads, exact=args.exact)
    init_ms = (time.perf_counter_ns() - t0) / 1e6
    peak_after_load, source = peak_rss()
    rss_after_load = current_rss()
    module = loaded_interpreter()
    backend = getattr(rec, "backend_name", None)

    per_mode: dict[str, Any] = {}
    for mode in modes:
        call = _caller(rec, mode, k)
        xs = inputs[mode]
        m = measure_calls(lambda i, call=call, xs=xs: call(xs[i % len(xs)]), args.requests,
                          args.warmup)
        m["inputs"] = "synthetic"
        m["k"] = k
        if mode == "history":
            lengths = [len(h) for h in xs]
            m["history_length_mean"] = sum(lengths) / len(lengths)
        m["throughput"] = throughput(rec, mode, k, xs, args.batch, batches)
        per_mode[mode] = m
    peak_end, _ = peak_rss()

    eval_path, why = _eval_source(artifact, manifest, args.eval)
    acc = None
    if eval_path is not None:
        evalset = evalfile.read_eval(eval_path)
        acc = {"source": why, "file": str(eval_path), "records": len(evalset.records),
               "modes": accuracy(rec, modes, k, int(manifest.get("history_capacity") or 50),
                                 evalset)}
        why = None
    return {
        "artifact": info,
        "backend": backend,
        "interpreter": {"module": module, "version": version_of(module) if module else None},
        "threads": args.threads,
        "init_ms": init_ms,
        "memory": {"source": source, "rss_before_load_bytes": rss_before,
                   "rss_after_load_bytes": rss_after_load,
                   "peak_rss_after_load_bytes": peak_after_load, "peak_rss_bytes": peak_end,
                   # the model's own cost, net of this worker's inputs and imports
                   "peak_rss_over_preload_bytes": (peak_end - rss_before
                                                   if peak_end and rss_before else None)},
        "modes": per_mode,
        "accuracy": acc,
        "accuracy_reason": why,
        "error": None,
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m device_bench.worker")
    p.add_argument("artifact")
    p.add_argument("--out", required=True)
    p.add_argument("--eval", default=None)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--backend", default="auto")
    p.add_argument("--exact", action="store_true", help="TFLite: builtin kernels, no XNNPACK")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result = run(args)
        code = 0
    except (TargetError, rt_errors.RuntimeErrorBase, evalfile.EvalFileError, OSError) as e:
        result, code = {"error": f"{type(e).__name__}: {e}"}, 3
    except Exception as e:  # noqa: BLE001 - report any failure of this target as one line
        result, code = {"error": f"{type(e).__name__}: {' '.join(str(e).split())}"}, 4
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f)
    os.replace(tmp, args.out)
    if result["error"]:
        print(f"device_bench: {args.artifact}: {result['error']}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
