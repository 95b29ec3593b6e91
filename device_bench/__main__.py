"""``python -m device_bench ARTIFACT... --out report.json``: benchmark artifacts on this machine.

Each artifact runs in a fresh ``device_bench.worker`` process (clean memory); each interpreter
module seen gets two ``device_bench.baseline`` processes, one that only imports it and one that
also runs a bare interpreter on a one-op model; their peak RSS are subtracted to give the
target's memory increase over the imports and over a bare interpreter. The merged report is
schema-checked before it is written.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import runtime
from device_bench import evalfile
from device_bench.machine import machine_info
from device_bench.report import REPORT_FORMAT, REPORT_FORMAT_VERSION, validate_report, write_report
from runtime import MAX_THREADS


class UsageError(Exception):
    """Bad command-line input; printed as one line."""


def _child_env(threads: int) -> dict[str, str]:
    """The environment of worker processes: same packages, BLAS pinned to ``threads``."""
    env = dict(os.environ)
    roots = []
    for pkg in (runtime, sys.modules["device_bench"]):
        roots.append(str(Path(pkg.__file__).resolve().parent.parent))
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(roots + ([old] if old else [])))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[var] = str(threads)
    return env


def _run_child(module: str, args: list[str], out: Path, env: dict[str, str],
               timeout: float) -> dict[str, Any]:
    """Run ``python -m module args --out out``; its JSON, or an error line."""
    cmd = [sys.executable, "-m", module, *args, "--out", str(out)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    try:
        return json.loads(out.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        tail = lines[-1].strip() if lines else "no output"
        return {"error": f"worker exited with status {proc.returncode}: {tail}"}


def timing_options(p: argparse.ArgumentParser, *, requests: int, warmup: int, batch: int) -> None:
    """The artifacts and the request counts: what every device_bench entry point takes."""
    p.add_argument("artifacts", nargs="+", metavar="ARTIFACT", help="artifact directories")
    p.add_argument("--requests", type=int, default=requests, help="timed requests per mode")
    p.add_argument("--warmup", type=int, default=warmup, help="untimed requests per mode")
    p.add_argument("--batch", type=int, default=batch, help="batch size for throughput")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled request inputs")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m device_bench",
        description="Memory, latency and accuracy of edgerec artifacts on this machine.")
    timing_options(p, requests=2000, warmup=50, batch=64)
    p.add_argument("--eval", default=None, metavar="FILE",
                   help="evaluation file (default: each artifact's own eval.json, if any)")
    p.add_argument("--threads", type=int, default=1, help="interpreter and BLAS threads")
    p.add_argument("--backend", default="auto", help="runtime backend (default: auto)")
    p.add_argument("--exact", action="store_true",
                   help="TFLite: the builtin kernels instead of the default XNNPACK delegate")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per target")
    p.add_argument("--out", required=True, metavar="FILE", help="report JSON to write")
    return p


def check_args(args: argparse.Namespace) -> None:
    for name in ("requests", "batch", "threads"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.threads > MAX_THREADS:
        raise UsageError(f"--threads must be at most {MAX_THREADS}, got {args.threads}")
    if args.warmup < 0:
        raise UsageError(f"--warmup must be at least 0, got {args.warmup}")
    for a in args.artifacts:
        if not (Path(a) / "manifest.json").is_file():
            raise UsageError(f"{a}: not an artifact directory (no manifest.json)")
    if args.eval:
        evalfile.read_eval(args.eval)  # fail before any measurement
    out = Path(args.out)
    if out.parent and not out.parent.is_dir():
        raise UsageError(f"--out {out}: directory {out.parent} does not exist")


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Run every target and the baselines; the merged, validated report."""
    env = _child_env(args.threads)
    common = ["--requests", str(args.requests), "--batch", str(args.batch),
              "--threads", str(args.threads), "--warmup", str(args.warmup),
              "--backend", args.backend, "--seed", str(args.seed),
              *(["--exact"] if args.exact else [])]
    if args.eval:
        common += ["--eval", str(Path(args.eval).resolve())]
    targets: list[dict[str, Any]] = []
    baselines: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="device_bench-") as tmp:
        for i, a in enumerate(args.artifacts):
            t0 = time.monotonic()
            res = _run_child("device_bench.worker", [str(Path(a).resolve()), *common],
                             Path(tmp) / f"target{i}.json", env, args.timeout)
            res.setdefault("artifact", {"path": str(Path(a).resolve()), "name": Path(a).name})
            res["wall_s"] = time.monotonic() - t0
            targets.append(res)
            status = res["error"] or "ok"
            print(f"device_bench: {Path(a).name}: {status}", file=sys.stderr)
        for j, key in enumerate(sorted({t["interpreter"]["module"] or "none"
                                        for t in targets if not t["error"]})):
            extra = [] if key == "none" else ["--module", key]
            baselines[key] = _run_child("device_bench.baseline", extra,
                                        Path(tmp) / f"baseline{j}.json", env, args.timeout)
            if key != "none":
                baselines[key + "+bare-interpreter"] = _run_child(
                    "device_bench.baseline", [*extra, "--bare-interpreter", "--threads", str(args.threads)],
                    Path(tmp) / f"baseline{j}b.json", env, args.timeout)
    for t in targets:
        if t["error"]:
            continue
        base = baselines[t["interpreter"]["module"] or "none"]
        mem = t["memory"]
        mem["baseline"] = t["interpreter"]["module"] or "none"
        mem["baseline_peak_rss_bytes"] = base.get("peak_rss_bytes")
        ok = not base.get("error") and base.get("peak_rss_bytes") and mem["peak_rss_bytes"]
        mem["peak_rss_increase_bytes"] = (mem["peak_rss_bytes"] - base["peak_rss_bytes"]
                                          if ok else None)
        bare = baselines.get((t["interpreter"]["module"] or "none") + "+bare-interpreter", {})
        ok = not bare.get("error") and bare.get("bare_interpreter") and mem["peak_rss_bytes"]
        mem["bare_interpreter_peak_rss_bytes"] = bare.get("peak_rss_bytes") if ok else None
        # numpy reference: no interpreter, so its whole increase is model cost
        mem["peak_rss_over_bare_interpreter_bytes"] = (
            mem["peak_rss_bytes"] - bare["peak_rss_bytes"] if ok else
            mem["peak_rss_increase_bytes"] if not t["interpreter"]["module"] else None)
    report = {
        "format": REPORT_FORMAT, "format_version": REPORT_FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        "settings": {"requests": args.requests, "batch": args.batch, "threads": args.threads,
                     "warmup": args.warmup, "backend": args.backend, "seed": args.seed,
                     "exact": args.exact,
                     "eval": str(args.eval) if args.eval else None},
        "packages": {m: str(Path(sys.modules[m].__file__).resolve().parent)
                     for m in ("device_bench", "runtime")},
        "baselines": baselines,
        "targets": targets,
    }
    validate_report(report)
    return report


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        check_args(args)
        report = bench(args)
    except (UsageError, evalfile.EvalFileError) as e:
        print(f"device_bench: error: {e}", file=sys.stderr)
        return 2
    write_report(args.out, report)
    return 1 if any(t["error"] for t in report["targets"]) else 0


if __name__ == "__main__":
    sys.exit(main())
