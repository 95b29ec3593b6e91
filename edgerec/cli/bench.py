"""``edgerec bench``: measure artifacts with device_bench, here or over ssh, beside baselines."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from edgerec.cli import cli
from edgerec.cli._format import echo_json
from edgerec.limits import MAX_THREADS


@cli.command()
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--report", "report_dir", required=True, type=click.Path(path_type=Path))
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="Add the baselines: the PyG model over the graph, and the float32 numpy reference.")
@click.option("--eval", "eval_file", type=click.Path(path_type=Path), default=None)
@click.option("--requests", default=2000, show_default=True, type=click.IntRange(1))
@click.option("--baseline-requests", default=50, show_default=True, type=click.IntRange(1),
              help="Requests for the PyG baseline.")
@click.option("--batch", default=64, show_default=True, type=click.IntRange(1))
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, MAX_THREADS))
@click.option("--ssh", default=None, help="user@host[:port]: run device_bench on that device.")
@click.option("--identity", type=click.Path(path_type=Path), default=None)
@click.option("--remote-python", default="python3", show_default=True)
@click.option("--exact", is_flag=True,
              help="TFLite targets on the builtin kernels instead of XNNPACK (less memory, slower).")
@click.option("--browser", is_flag=True,
              help="Also run each tflite/onnx artifact's selftest in headless Chromium (rows 'browser (wasm)').")
@click.option("--cpu-throttle", default=1.0, show_default=True, type=click.FloatRange(1, 20),
              help="--browser: DevTools CPU throttling rate (rows labelled 'emulated').")
@click.option("--json", "as_json", is_flag=True)
def bench(artifacts: tuple[Path, ...], report_dir: Path, checkpoint: Path | None, eval_file: Path | None,
          requests: int, baseline_requests: int, batch: int, threads: int, ssh: str | None,
          identity: Path | None, remote_python: str, exact: bool, browser: bool, cpu_throttle: float,
          as_json: bool) -> None:
    """Measure artifacts with device_bench (here or over ssh); write report.json/.md/.png."""
    import edgerec
    from edgerec.bench import NUMPY_REFERENCE, check_bench_args, run_bench

    arts = list(artifacts)
    # cheap checks first: the baselines below take minutes on a large graph
    check_bench_args(arts, requests=requests, batch=batch, threads=threads, eval_file=eval_file)
    baselines = []
    tmp = None
    try:
        if browser:  # the page's figures join the report as rows beside the native ones
            from edgerec.browser_bench import browser_baselines, browser_targets

            baselines += browser_baselines(browser_targets(arts), cpu_throttle=cpu_throttle)
        if checkpoint is not None:
            tmp = Path(tempfile.mkdtemp(prefix="edgerec-bench-"))
            baselines.append(pyg_baseline(checkpoint, baseline_requests, threads))
            ref = tmp / NUMPY_REFERENCE
            edgerec.export(checkpoint, ref, target="numpy", quantize="float32", dims=None,
                           with_eval=eval_file is None)
            arts.append(ref)
        report = run_bench(arts, report_dir, ssh=ssh, identity=identity, remote_python=remote_python,
                           requests=requests, batch=batch, threads=threads, baselines=baselines,
                           eval_file=eval_file, exact=exact)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    if as_json:
        echo_json(report)
    else:
        click.echo((report_dir / "report.md").read_text())
        click.echo(f"report: {report_dir / 'report.md'}, {report_dir / 'report.png'}")


_PYG_CHILD = """
import json, sys
from pathlib import Path
from edgerec.cli.bench import measure_pyg
from edgerec.errors import EdgerecError
try:
    print(json.dumps(measure_pyg(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))))
except EdgerecError as e:
    print(json.dumps({"error": str(e)}))
"""


def pyg_baseline(checkpoint: Path, requests: int, threads: int) -> dict[str, Any]:
    """``measure_pyg`` in a fresh process, as device_bench measures every target: its memory
    figure is then comparable (in a process that has trained, torch reuses freed memory, and the
    demo measured PyG at 92 KiB)."""
    import json
    import subprocess
    import sys

    from edgerec.bench import BenchError

    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # edgerec importable without an install
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-c", _PYG_CHILD, str(checkpoint), str(requests), str(threads)],
                          capture_output=True, text=True, env=env)
    lines = proc.stdout.strip().splitlines()
    try:
        out = json.loads(lines[-1]) if proc.returncode == 0 and lines else None
    except ValueError:
        out = None
    if out is None:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"the PyG baseline failed (exit {proc.returncode}): {tail[:300]}")
    if "error" in out:
        raise BenchError(str(out["error"]))
    return out


def measure_pyg(checkpoint: Path, requests: int, threads: int) -> dict[str, Any]:
    """The original PyG model answering one request: ``LightGCN.recommend`` over the whole graph."""
    import numpy as np
    import psutil
    import torch

    from edgerec.bench import measure_callable
    from edgerec.checkpoint import load_checkpoint
    from edgerec.models import normalized_adjacency
    from edgerec.trainer import evaluate_checkpoint_model

    torch.set_num_threads(threads)
    rss0 = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    ckpt = load_checkpoint(checkpoint)
    d = ckpt.data
    adj = normalized_adjacency(d.train.users, d.train.items, d.num_users, d.num_items)
    init_ms = (time.perf_counter() - t0) * 1e3
    U, I = d.num_users, d.num_items
    items = torch.arange(U, U + I)
    rng = np.random.default_rng(0)
    users = rng.integers(0, U, requests + 64)

    def one(i: int) -> None:
        with torch.no_grad():
            ckpt.model.recommend(adj, src_index=torch.tensor([int(users[i % users.size])]),
                                 dst_index=items, k=20)

    lat = measure_callable(one, requests, warmup=3)
    rss = psutil.Process().memory_info().rss - rss0
    acc = evaluate_checkpoint_model(ckpt.model, d, "test", (20,)) if len(d.test) else {}
    size = (checkpoint / "weights.safetensors").stat().st_size + (checkpoint / "graph.safetensors").stat().st_size
    return {"name": "PyG LightGCN (full graph per request)", "target": "pytorch", "quantization": "float32",
            "file_bytes": size, "init_ms": init_ms, "peak_rss_increase_bytes": max(0, rss),
            "modes": {"lookup": lat},
            "accuracy": {"lookup": {"recall@20": acc.get("recall@20"), "ndcg@20": acc.get("ndcg@20"),
                                    "agreement@20": 1.0}} if acc else {},
            "note": "accuracy on the full test split (all users), not the eval sample; "
                    "PyG recommend does not exclude seen items"}
