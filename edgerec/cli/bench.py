"""``edgerec bench``: measure artifacts with device_bench, here or over ssh, beside baselines."""

from __future__ import annotations

from pathlib import Path

import click

from edgerec.cli import cli
from edgerec.cli._format import ThreadCount, echo_json


@cli.command()
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--report", "report_dir", required=True, type=click.Path(path_type=Path))
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="Add the baselines: the PyG model over the graph, the float32 numpy reference "
                   "and FAISS indexes over its vectors.")
@click.option("--eval", "eval_file", type=click.Path(path_type=Path), default=None)
@click.option("--requests", default=2000, show_default=True, type=click.IntRange(1))
@click.option("--baseline-requests", default=50, show_default=True, type=click.IntRange(1),
              help="Requests for the PyG baseline.")
@click.option("--batch", default=64, show_default=True, type=click.IntRange(1))
@click.option("--threads", default=1, show_default=True, type=ThreadCount())
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
    from edgerec.benchmark import bench as run

    report = run(list(artifacts), report_dir, checkpoint=checkpoint, eval_file=eval_file,
                 requests=requests, baseline_requests=baseline_requests, batch=batch,
                 threads=threads, ssh=ssh, identity=identity, remote_python=remote_python,
                 exact=exact, browser=browser, cpu_throttle=cpu_throttle)
    if as_json:
        echo_json(report)
    else:
        click.echo((report_dir / "report.md").read_text())
        click.echo(f"report: {report_dir / 'report.md'}, {report_dir / 'report.png'}")
