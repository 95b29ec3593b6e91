"""``edgerec bench``: measure artifacts here or over ssh, add the baselines, write the report."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgerec.benchmark.errors import BenchError
from edgerec.benchmark.floor import item_table_bytes, measure_bandwidth
from edgerec.benchmark.labels import NUMPY_REFERENCE, artifact_labels
from edgerec.benchmark.local import run_local
from edgerec.benchmark.merge import baseline_row, merge_reports
from edgerec.benchmark.promise import promise_rows
from edgerec.benchmark.report import write_report
from edgerec.benchmark.ssh import parse_ssh, run_ssh


def check_bench_args(arts: Sequence[Path], *, requests: int, batch: int, threads: int,
                     warmup: int = 50, eval_file: Path | None = None) -> None:
    """The cheap checks, made before any measurement (and before :func:`bench`'s baselines,
    which take minutes on a large graph).

    Args:
        arts: artifact directories.
        requests: timed requests per mode.
        batch: batch size of the throughput figure.
        threads: interpreter threads.
        warmup: untimed requests.
        eval_file: the evaluation file, if one is given.
    """
    if not arts:
        raise BenchError("no artifacts to benchmark")
    for a in arts:
        if not (Path(a) / "manifest.json").is_file():
            raise BenchError(f"{a}: not an artifact directory (no manifest.json)")
    for name, v, lo in (("requests", requests, 1), ("batch", batch, 1), ("threads", threads, 1),
                        ("warmup", warmup, 0)):
        if not isinstance(v, int) or v < lo:
            raise BenchError(f"--{name} must be an integer >= {lo}, got {v!r}")
    if eval_file is not None and not Path(eval_file).is_file():
        raise BenchError(f"--eval {eval_file}: no such file")


def run_bench(artifacts: list[Path], report_dir: Path, *, ssh: str | None = None,
              identity: Path | None = None, remote_python: str = "python3",
              requests: int = 2000, batch: int = 64, threads: int = 1,
              baselines: list[dict] | None = None, warmup: int = 50,
              eval_file: Path | None = None, ssh_options: Sequence[str] = (),
              timeout: float = 3600, exact: bool = False,
              floor: bool = False) -> dict[str, Any]:
    """Benchmark ``artifacts`` here (``ssh=None``) or on ``user@host[:port]``, merge the
    precomputed ``baselines``, write the report into ``report_dir`` and return it.

    Args:
        artifacts: artifact directories.
        report_dir: where ``report.json``, ``report.md`` and ``report.png`` go.
        ssh: ``user@host[:port]`` of the device; None measures here.
        identity: ssh key file.
        remote_python: the device's Python interpreter.
        requests: timed requests per mode.
        batch: batch size of the throughput figure.
        threads: interpreter and BLAS threads.
        baselines: precomputed rows (:func:`edgerec.benchmark.merge.baseline_row`).
        warmup: untimed requests before timing.
        eval_file: evaluation file for every target (default: each artifact's own).
        ssh_options: extra ``ssh`` arguments (e.g. ``["-o", "StrictHostKeyChecking=accept-new"]``).
        timeout: seconds allowed for device_bench.
        exact: TFLite targets on the builtin kernels instead of XNNPACK (less memory, slower).
        floor: when measuring here, give each target the physical floor of a lookup
            (:mod:`edgerec.benchmark.floor`).
    """
    arts = [Path(a) for a in artifacts]
    check_bench_args(arts, requests=requests, batch=batch, threads=threads, warmup=warmup,
                     eval_file=eval_file)
    for b in baselines or []:  # fail before measuring
        baseline_row(b)
    kw = {"requests": requests, "batch": batch, "threads": threads, "warmup": warmup,
          "eval_file": Path(eval_file) if eval_file else None, "timeout": timeout, "exact": exact}
    if ssh:
        target = parse_ssh(ssh, identity, ssh_options)
        report = run_ssh(arts, target, remote_python=remote_python, **kw)
        via = f"ssh {target}"
    else:
        report = run_local(arts, **kw)
        via = "local"
    labels = artifact_labels(arts)
    _name_rows(report, list(labels.values()))
    run = {"device": report["machine"]["hostname"], "via": via, "report": report}
    bandwidth = None
    if floor and not ssh:
        bandwidth = measure_bandwidth(item_table_bytes(t["artifact"])
                                      for t in report["targets"] if not t.get("error"))
    merged = merge_reports([run], baselines, bandwidth)
    merged["promises"] = promise_rows(merged["rows"], labels, eval_file)
    write_report(merged, Path(report_dir))
    return merged


def bench(artifacts: Sequence[Path], report_dir: Path, *, checkpoint: Path | None = None,
          eval_file: Path | None = None, requests: int = 2000, baseline_requests: int = 50,
          batch: int = 64, threads: int = 1, ssh: str | None = None,
          identity: Path | None = None, remote_python: str = "python3", exact: bool = False,
          faiss: bool = True, warmup: int = 50, browser: bool = False,
          cpu_throttle: float = 1.0) -> dict[str, Any]:
    """``edgerec bench``: the artifacts measured by device_bench, beside the baselines.

    With a checkpoint, the baselines join the run: the PyG model recomputing the graph per
    request, the float32 numpy reference (exported here, full width) on the same device, and
    (``faiss``) FAISS indexes over that reference's vectors, the PQ one sized like the item
    table of the first TFLite artifact given (else the first artifact: give the default first). Measured here, the
    report also gives each artifact's physical floor (its item table read once at this
    machine's memory bandwidth).

    Args:
        artifacts: artifact directories to measure.
        report_dir: where ``report.json``, ``report.md`` and ``report.png`` go.
        checkpoint: the trained checkpoint the artifacts were compiled from (adds baselines).
        eval_file: held-out users for accuracy (default: each artifact's ``eval.json``).
        requests: timed requests per mode (and per FAISS index).
        baseline_requests: timed requests of the PyG baseline (seconds each on large graphs).
        batch: batch size of the throughput figure.
        threads: interpreter, BLAS, torch and FAISS threads.
        ssh: ``user@host[:port]`` of the device; None measures here.
        identity: ssh key file.
        remote_python: the device's Python interpreter.
        exact: TFLite targets on the builtin kernels instead of XNNPACK.
        faiss: add the FAISS baselines (needs ``faiss-cpu``) when a checkpoint is given.
        warmup: untimed requests before timing.
        browser: also run each tflite/onnx artifact's selftest in headless Chromium (rows
            "browser (wasm)").
        cpu_throttle: with ``browser``, DevTools CPU throttling rate (rows labelled emulated).
    """
    arts = [Path(a) for a in artifacts]
    # cheap checks first: the baselines below take minutes on a large graph
    check_bench_args(arts, requests=requests, batch=batch, threads=threads, warmup=warmup,
                     eval_file=eval_file)
    baselines: list[dict[str, Any]] = []
    if browser:  # the page's figures join the report as rows beside the native ones
        from edgerec.benchmark.browser import browser_baselines, browser_targets

        baselines += browser_baselines(browser_targets(arts), cpu_throttle=cpu_throttle)
    with tempfile.TemporaryDirectory(prefix="edgerec-bench-") as tmp:
        if checkpoint is not None:
            from edgerec.benchmark.baselines.pyg import pyg_baseline

            baselines.append(pyg_baseline(Path(checkpoint), baseline_requests, threads))
            ref = Path(tmp) / NUMPY_REFERENCE
            export_reference(Path(checkpoint), ref, with_eval=eval_file is None)
            if faiss:
                from edgerec.benchmark.baselines.faiss import faiss_baselines

                baselines += faiss_baselines(ref, eval_file=eval_file,
                                             item_bytes=compiled_item_bytes(arts),
                                             requests=requests, warmup=warmup, threads=threads)
            arts.append(ref)
        return run_bench(arts, report_dir, ssh=ssh, identity=identity,
                         remote_python=remote_python, requests=requests, batch=batch,
                         threads=threads, baselines=baselines, warmup=warmup,
                         eval_file=eval_file, exact=exact,
                         floor=True)


def _name_rows(report: dict[str, Any], labels: Sequence[str]) -> None:
    """Name each target's rows ``labels`` (:func:`artifact_labels`, in the artifacts' order);
    device_bench reports the targets in the order it was given them (here or on the device)."""
    targets = report.get("targets") or []
    if len(targets) == len(labels):
        for t, label in zip(targets, labels, strict=True):
            if isinstance(t.get("artifact"), dict):
                t["artifact"]["name"] = label


def compiled_item_bytes(artifacts: Sequence[Path]) -> int | None:
    """Item-table bytes of edgerec's default artifact among ``artifacts``: the first TFLite
    one, else the first whose scheme is known (what the FAISS PQ codes are sized to)."""
    known = []
    for a in artifacts:
        try:
            m = json.loads((Path(a) / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(m, dict) and (n := item_table_bytes(m)) is not None:
            known.append((m.get("target") != "tflite", n))
    return min(known, key=lambda x: x[0])[1] if known else None


def export_reference(checkpoint: Path, out: Path, *, with_eval: bool) -> None:
    """Export the float32, full-width numpy artifact every target is compared with."""
    from edgerec.api import export

    export(checkpoint, out, target="numpy", quantize="float32", dims=None, with_eval=with_eval)
