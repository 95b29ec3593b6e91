"""Per-query answers of artifacts on fixed seeded inputs, for cross-machine parity checks.

``python -m device_bench.pi.probe ARTIFACT... --out probe.json [--queries N] [--seed S] [--k K]``
loads each artifact with ``runtime.load`` and asks it the same seeded requests device_bench
samples (``device_bench.worker.sample_inputs``: numpy's PCG64, identical on every platform),
writing each answer's top-k item ids and scores. device_bench itself reports only aggregates;
comparing two probe files (:mod:`device_bench.pi.parity`) shows whether two machines return the
same items for the same question.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

import runtime
from device_bench.machine import version_of
from device_bench.worker import (
    MODE_ORDER,
    TargetError,
    loaded_interpreter,
    read_manifest,
    sample_inputs,
)
from runtime import errors as rt_errors

PROBE_FORMAT = "edgerec-pi-probe"
PROBE_FORMAT_VERSION = 1


def probe_artifact(artifact: Path, *, queries: int, seed: int, k: int,
                   backend: str = "auto", exact: bool = False) -> dict[str, Any]:
    """Top-k ids and scores of ``queries`` seeded requests per mode of one artifact."""
    manifest = read_manifest(artifact)
    modes = [m for m in MODE_ORDER if m in (manifest.get("modes") or [])]
    if not modes:
        raise TargetError(f"{artifact}: manifest lists no serving modes")
    inputs = sample_inputs(artifact, manifest, modes, queries, seed)
    # exact: TFLite's builtin kernels, whose arithmetic the manifest describes bit for bit
    # (XNNPACK, the default, quantizes the user vector with its own, per-architecture rounding)
    rec = runtime.load(artifact, backend=backend, num_threads=1, exact=exact)
    kk = min(k, int(manifest.get("k") or k))
    answers: dict[str, list[dict[str, Any]]] = {}
    for mode in modes:
        rows = []
        for x in inputs[mode]:
            got = (rec.recommend(x, kk) if mode == "lookup"
                   else rec.recommend_from_history(x, kk))
            rows.append({"input": x, "items": [i for i, _ in got],
                         "scores": [float(s) for _, s in got]})
        answers[mode] = rows
    module = loaded_interpreter()
    return {"name": artifact.name, "path": str(artifact), "target": manifest.get("target"),
            "quantization": manifest.get("quantization"), "k": kk,
            "backend": rec.backend_name,
            "interpreter": {"module": module, "version": version_of(module) if module else None},
            "modes": answers, "error": None}


def probe(artifacts: list[Path], *, queries: int, seed: int, k: int,
          backend: str = "auto", exact: bool = False) -> dict[str, Any]:
    """The probe document for several artifacts; a failing artifact gets a one-line error."""
    out = []
    for a in artifacts:
        try:
            out.append(probe_artifact(a, queries=queries, seed=seed, k=k, backend=backend,
                                      exact=exact))
        except (TargetError, rt_errors.RuntimeErrorBase, OSError) as e:
            out.append({"name": a.name, "path": str(a), "error": f"{type(e).__name__}: {e}"})
    return {"format": PROBE_FORMAT, "format_version": PROBE_FORMAT_VERSION,
            "machine": {"arch": platform.machine(), "python": platform.python_version(),
                        "numpy": np.__version__, "os": platform.platform()},
            "settings": {"queries": queries, "seed": seed, "k": k, "backend": backend,
                         "exact": exact},
            "artifacts": out}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m device_bench.pi.probe",
                                description="Per-query top-k of artifacts on seeded inputs.")
    p.add_argument("artifacts", nargs="+", metavar="ARTIFACT")
    p.add_argument("--out", required=True, metavar="FILE")
    p.add_argument("--queries", type=int, default=200, help="seeded requests per mode")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--backend", default="auto")
    p.add_argument("--exact", action="store_true",
                   help="TFLite: builtin kernels instead of XNNPACK (bit-exact arithmetic)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.queries < 1 or args.k < 1:
        print("probe: error: --queries and --k must be at least 1", file=sys.stderr)
        return 2
    doc = probe([Path(a).resolve() for a in args.artifacts], queries=args.queries,
                seed=args.seed, k=args.k, backend=args.backend, exact=args.exact)
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, allow_nan=False)
    os.replace(tmp, args.out)
    failed = [a for a in doc["artifacts"] if a["error"]]
    for a in failed:
        print(f"probe: {a['name']}: {a['error']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
