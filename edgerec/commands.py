"""Commands that drive the exporters and the benchmarks: ``export``, ``bench``, ``demo``."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from edgerec.atomic_dir import atomic_directory, check_replaceable
from edgerec.cli import (
    _compile_options,
    _echo_json,
    _fmt_bytes,
    _run_compile,
    _table,
    cli,
    refuse_compile_options_for_ir,
)
from edgerec.limits import MAX_ITEMS, MAX_THREADS, MAX_USERS
from edgerec.schemes import SCHEMES

TARGETS = ("tflite", "onnx", "numpy")
QUANT = {("float32" if s == "none" else s): s for s in SCHEMES}  # export's name for "none"


def export_artifacts(source: Path, out: Path, targets: list[str], *, quantize: str = "int8",
                     mode: str = "both", dims: str = "auto", energy: float | None = None,
                     prune_method: str = "svd", min_item_count: int = 0, k: int = 50,
                     history_capacity: int = 50, max_recall_drop: float = 0.02,
                     min_agreement: float | None = None, force: bool = False,
                     data_path: Path | None = None, with_eval: bool = False, eval_users: int = 500,
                     overwrite: bool = False, quiet: bool = False,
                     distill_epochs: int = 0) -> dict[str, dict[str, Any]]:
    """Compile ``source`` (checkpoint or IR dir) and write one artifact per target.

    One target: the artifact is ``out``. Several: ``out/<target>``. Everything is built in a
    temporary directory beside ``out`` and renamed at the end, so a failure leaves nothing.
    """
    from edgerec.errors import ExportError
    from exporters import export_ir

    bad = [t for t in targets if t not in TARGETS]
    if bad:
        raise ExportError(f"unknown target {bad[0]!r}; choose from {', '.join(TARGETS)} or 'all'")
    if quantize not in QUANT:
        raise ExportError(f"unknown --quantize {quantize!r}; choose one of {', '.join(QUANT)}")
    if out.exists() and not overwrite:
        raise ExportError(f"{out} exists (use --overwrite to replace it)")
    check_replaceable(out, (source, *([data_path] if data_path else [])))  # before the work
    if not source.exists():
        raise ExportError(f"{source}: no such checkpoint or IR directory")
    ir, _ = _run_compile(source, data_path, mode, dims, energy, prune_method, min_item_count,
                         max_recall_drop, min_agreement, force, QUANT[quantize], quiet,
                         distill_epochs=distill_epochs)
    extra: dict[str, bytes] = {}
    if with_eval:
        extra["eval.json"] = _eval_bytes(source, ir, data_path, eval_users, history_capacity)
    # what the IR holds decides the note (an IR directory keeps its own quantization)
    four = [n for n in ir.serving_tables() if ir.tables[n].bits == 4]
    note = (None if not four else "the item table keeps its" if four == ["item"]
            else "the tables keep their")
    manifests: dict[str, dict[str, Any]] = {}
    with atomic_directory(out) as tmp:
        for t in targets:  # one target: the artifact is ``out`` itself (the empty tmp is replaced)
            dest = tmp if len(targets) == 1 else tmp / t
            manifests[t] = export_ir(ir, dest, t, k=k, history_capacity=history_capacity,
                                     extra_files=extra, metrics=ir.metrics, overwrite=True)
            if not quiet:
                click.echo(f"{t}: " + ("written (the reference format itself)" if t == "numpy"
                                       else "verified against the numpy reference"), err=True)
                if note and t != "tflite":
                    click.echo(f"{t}: note: {note} 4-bit values in int8 storage "
                               "(only the TFLite file packs them two a byte)", err=True)
    return manifests


def _eval_bytes(source: Path, ir: Any, data_path: Path | None, users: int, capacity: int) -> bytes:
    from device_bench.evalfile import encode_eval
    from edgerec.checkpoint import load_checkpoint
    from edgerec.data import load_data
    from edgerec.errors import ExportError
    from edgerec.evalset import eval_records
    from edgerec.passes.precompute import precompute

    if not (source / "config.json").is_file():
        raise ExportError("--with-eval needs a checkpoint as the source (it holds the held-out interactions)")
    ckpt = load_checkpoint(source)
    data = load_data(data_path) if data_path is not None else ckpt.data
    float_ir, _ = precompute(ckpt)
    recs = eval_records(float_ir, data, users=users, history_capacity=capacity)
    if len(set(ir.item_ids)) != len(float_ir.item_ids):  # cold items dropped: keep known ids only
        known = set(ir.item_ids)
        for r in recs:
            r["history"] = [i for i in r["history"] if i in known]
            r["reference"] = {m: [i for i in v if i in known] for m, v in r["reference"].items()}
        recs = [r for r in recs if r["history"]]
    return encode_eval(recs, k=20, item_ids=ir.item_ids, user_ids=ir.user_ids,
                       source={"checkpoint": ckpt.fingerprint, "data": data.source, "split": "test",
                               "synthetic": data.synthetic})


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--target", default="tflite", show_default=True,
              help="tflite, onnx, numpy (the reference backend's format), or all (tflite and onnx).")
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--quantize", type=click.Choice(list(QUANT)), default="int8", show_default=True,
              help="int4-item: the item table (the scoring matmul) in int4, packed in the TFLite "
                   "file; the gathered tables int8. int4: every table in int4 (smallest file).")
@click.option("--k", default=50, show_default=True, help="Top-k the model returns.")
@click.option("--history-capacity", default=50, show_default=True, type=click.IntRange(1, 10_000),
              help="Most recent history items the history signature reads.")
@click.option("--with-eval", is_flag=True, help="Add eval.json (held-out users) for on-device accuracy.")
@click.option("--eval-users", default=500, show_default=True, type=click.IntRange(1))
@_compile_options
def export(source: Path, target: str, out: Path, quantize: str, k: int, history_capacity: int,
           with_eval: bool, eval_users: int, data_path: Path | None, mode: str, dims: str,
           energy: float | None, prune_method: str, min_item_count: int, max_recall_drop: float,
           min_agreement: float | None, force: bool, overwrite: bool, as_json: bool,
           distill_epochs: int) -> None:
    """Compile SOURCE (checkpoint or IR dir) and write verified on-device model files."""
    refuse_compile_options_for_ir(source)
    targets = ["tflite", "onnx"] if target == "all" else [target]
    manifests = export_artifacts(
        source, out, targets, quantize=quantize, mode=mode, dims=dims, energy=energy,
        prune_method=prune_method, min_item_count=min_item_count, k=k,
        history_capacity=history_capacity, max_recall_drop=max_recall_drop,
        min_agreement=min_agreement, force=force, data_path=data_path, with_eval=with_eval,
        eval_users=eval_users, overwrite=overwrite, quiet=as_json, distill_epochs=distill_epochs)
    if as_json:
        _echo_json(manifests)
        return
    rows = []
    for t, m in manifests.items():
        root = out if len(targets) == 1 else out / t
        model_files = _model_files(m)
        parity = m.get("metrics", {}).get("parity", {})
        pk = parity.get("k", m["k"])
        row = {"target": t, "quantization": m["quantization"]["weights"], "dims": m["dim"],
               "model bytes": _fmt_bytes(sum((root / f).stat().st_size for f in model_files))}
        for md, v in parity.get("modes", {}).items():
            row[f"{md} parity@{pk}"] = v.get(f"agreement@{pk}")
            row[f"{md} vs float@{pk}"] = v.get(f"agreement@{pk}_vs_float")
        rows.append(row)
    _table(rows, title=f"edgerec export -> {out}")


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
@click.option("--json", "as_json", is_flag=True)
def bench(artifacts: tuple[Path, ...], report_dir: Path, checkpoint: Path | None, eval_file: Path | None,
          requests: int, baseline_requests: int, batch: int, threads: int, ssh: str | None,
          identity: Path | None, remote_python: str, exact: bool, as_json: bool) -> None:
    """Measure artifacts with device_bench (here or over ssh); write report.json/.md/.png."""
    from edgerec.bench import NUMPY_REFERENCE, check_bench_args, run_bench

    arts = list(artifacts)
    # cheap checks first: the baselines below take minutes on a large graph
    check_bench_args(arts, requests=requests, batch=batch, threads=threads, eval_file=eval_file)
    baselines = []
    tmp = None
    try:
        if checkpoint is not None:
            tmp = Path(tempfile.mkdtemp(prefix="edgerec-bench-"))
            baselines.append(pyg_baseline(checkpoint, baseline_requests, threads))
            ref = tmp / NUMPY_REFERENCE
            export_artifacts(checkpoint, ref, ["numpy"], quantize="float32", dims="full",
                             with_eval=eval_file is None, quiet=True)
            arts.append(ref)
        report = run_bench(arts, report_dir, ssh=ssh, identity=identity, remote_python=remote_python,
                           requests=requests, batch=batch, threads=threads, baselines=baselines,
                           eval_file=eval_file, exact=exact)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    if as_json:
        _echo_json(report)
    else:
        click.echo((report_dir / "report.md").read_text())
        click.echo(f"report: {report_dir / 'report.md'}, {report_dir / 'report.png'}")


def _model_files(manifest: dict[str, Any]) -> list[str]:
    """What the device loads to score: the model file(s), or a numpy target's tables."""
    files = {s["file"] for s in manifest["signatures"].values() if s.get("file")}
    files |= {t[key] for t in (manifest.get("tables") or {}).values()
              for key in ("file", "scale_file") if t.get(key)}
    return sorted(files)


_PYG_CHILD = """
import json, sys
from pathlib import Path
from edgerec.commands import measure_pyg
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
    root = str(Path(__file__).resolve().parent.parent)  # edgerec importable without an install
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
    from edgerec.train import evaluate_checkpoint_model

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

    from edgerec.bench import NUMPY_REFERENCE
    from edgerec.checkpoint import save_checkpoint
    from edgerec.data import load_data
    from edgerec.synthetic import write_synthetic
    from edgerec.train import TrainConfig, evaluate_checkpoint_model, train

    t0 = time.perf_counter()
    steps = ["data", "train", "export", "bench"]
    with tqdm(total=len(steps), desc="demo", unit="step") as bar:
        bar.set_postfix_str("synthetic data")
        data_dir = write_synthetic(out / "data", num_users=users, num_items=items, seed=0)
        data = load_data(data_dir)
        bar.update(1)
        bar.set_postfix_str("train LightGCN")
        cfg = TrainConfig(dim=32, layers=2, epochs=epochs, batch_size=4096, lr=2e-2, eval_every=10, patience=3)
        ebar = tqdm(total=epochs, desc="  train", unit="epoch", leave=False)
        result = train(data, cfg, lambda row: (ebar.update(1), ebar.set_postfix(loss=f"{row['loss']:.3f}")))
        ebar.close()
        conf = result.checkpoint_config()
        conf["metrics"]["test"] = evaluate_checkpoint_model(result.model, data, "test")
        ckpt = save_checkpoint(out / "checkpoint", result.model, data, conf)
        bar.update(1)
        arts = []
        for q in ("int8", "float32"):
            bar.set_postfix_str(f"export tflite+onnx {q}")
            dims = "auto" if q == "int8" else "full"
            export_artifacts(ckpt, out / f"artifacts-{q}", ["tflite", "onnx"], quantize=q, dims=dims,
                             with_eval=True, eval_users=200, quiet=True)
            arts += [out / f"artifacts-{q}" / "tflite", out / f"artifacts-{q}" / "onnx"]
        bar.update(1)
        bar.set_postfix_str("bench")
        from edgerec.bench import run_bench

        ref = out / NUMPY_REFERENCE  # the name the report's gains table looks for
        export_artifacts(ckpt, ref, ["numpy"], quantize="float32", dims="full", with_eval=True,
                         eval_users=200, quiet=True)
        baselines = [pyg_baseline(ckpt, 30, 1)]
        run_bench([*arts, ref], out / "report", requests=requests, batch=64, threads=1,
                  baselines=baselines)
        bar.update(1)
    click.echo((out / "report" / "report.md").read_text())
    click.echo(f"demo finished in {time.perf_counter() - t0:.0f} s on SYNTHETIC data; "
               f"report: {out / 'report' / 'report.md'} and report.png")
