"""``edgerec demo``: the whole pipeline on synthetic data, end to end."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import click

from edgerec.atomic_dir import check_replaceable
from edgerec.cli import cli
from edgerec.limits import MAX_ITEMS, MAX_USERS


@cli.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("edgerec-demo"), show_default=True)
@click.option("--users", default=1000, show_default=True, type=click.IntRange(2, MAX_USERS))
@click.option("--items", default=2000, show_default=True, type=click.IntRange(10, MAX_ITEMS))
@click.option("--epochs", default=60, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--requests", default=500, show_default=True, type=click.IntRange(1))
@click.option("--overwrite", is_flag=True)
def demo(out: Path, users: int, items: int, epochs: int, requests: int, overwrite: bool) -> None:
    """The whole pipeline on SYNTHETIC data: generate, train, export TFLite+ONNX, bench."""
    from edgerec.errors import EdgerecError

    if out.exists() or out.is_symlink():
        if not overwrite:
            raise EdgerecError(f"{out} exists (use --overwrite to replace it)")
        check_replaceable(out)
    # all or nothing: an earlier demo is moved aside and comes back if this one fails
    out.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        os.replace(out, old / "a")
    try:
        _demo(out, users, items, epochs, requests)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        if old is not None:
            os.replace(old / "a", out)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _demo(out: Path, users: int, items: int, epochs: int, requests: int) -> None:
    from tqdm import tqdm

    import edgerec
    from edgerec.benchmark import NUMPY_REFERENCE, run_bench
    from edgerec.benchmark.baselines.pyg import pyg_baseline
    from edgerec.synthetic import write_synthetic

    t0 = time.perf_counter()
    steps = ["data", "train", "export", "bench"]
    with tqdm(total=len(steps), desc="demo", unit="step") as bar:
        bar.set_postfix_str("synthetic data")
        data = edgerec.load_data(write_synthetic(out / "data", num_users=users, num_items=items, seed=0))
        bar.update(1)
        bar.set_postfix_str("train LightGCN")
        ebar = tqdm(total=epochs, desc="  train", unit="epoch", leave=False)
        ckpt = edgerec.train(data, out=out / "checkpoint", dim=32, layers=2, epochs=epochs,
                             batch_size=4096, lr=2e-2, eval_every=10, patience=3,
                             progress=lambda row: (ebar.update(1), ebar.set_postfix(loss=f"{row['loss']:.3f}")))
        ebar.close()
        bar.update(1)
        arts = []
        for q in ("auto", "float32"):  # the default (searched format and width), and float32
            bar.set_postfix_str(f"export tflite+onnx {q}")
            edgerec.export(ckpt, out / f"artifacts-{q}", target="all", quantize=q,
                           dims="auto" if q == "auto" else None, with_eval=True, eval_users=200)
            arts += [out / f"artifacts-{q}" / "tflite", out / f"artifacts-{q}" / "onnx"]
        bar.update(1)
        bar.set_postfix_str("bench")
        ref = out / NUMPY_REFERENCE  # the name the report's gains table looks for
        edgerec.export(ckpt, ref, target="numpy", quantize="float32", dims=None, with_eval=True,
                       eval_users=200)
        run_bench([*arts, ref], out / "report", requests=requests, batch=64, threads=1,
                  baselines=[pyg_baseline(ckpt.path, 30, 1)])
        bar.update(1)
    click.echo((out / "report" / "report.md").read_text())
    click.echo(f"demo finished in {time.perf_counter() - t0:.0f} s on SYNTHETIC data; "
               f"report: {out / 'report' / 'report.md'} and report.png")
