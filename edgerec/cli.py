"""The ``edgerec`` command line: a thin layer over the Python API.

Every user-fixable problem surfaces as one line on stderr and exit status 2; Ctrl-C exits 130.
``EDGEREC_DEBUG=1`` shows the traceback instead.
Nothing is written unless the command succeeds (outputs are built beside the target and renamed).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from edgerec import __version__
from edgerec.limits import MAX_COMMUNITIES, MAX_ITEMS, MAX_THREADS, MAX_USERS
from edgerec.schemes import SCHEMES


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def _table(rows: list[dict[str, Any]], title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    if not rows:
        return
    t = RichTable(title=title)
    cols = list(rows[0])
    for c in cols:
        t.add_column(c, justify="right" if c != cols[0] else "left")
    for r in rows:
        t.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in (r.get(c, "") for c in cols)])
    # piped into a log, rich would cut the table to 80 columns (and hide, e.g., int4 vs int8)
    Console(stderr=False, width=None if sys.stdout.isatty() else 250).print(t)


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return str(n)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgerec")
def cli() -> None:
    """edgerec: compile graph-neural-network recommenders into small, verified on-device models."""


# ---------------------------------------------------------------------------------------------


_SEED = click.IntRange(0, 2**32 - 1)


class _FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses nan and inf: NaN compares false with every bound."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from math import isfinite

        rv = super().convert(value, param, ctx)
        if not isfinite(rv):
            self.fail(f"{rv} is not a finite number.", param, ctx)
        return rv


@cli.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--users", default=1000, show_default=True, type=click.IntRange(2, MAX_USERS))
@click.option("--items", default=2000, show_default=True, type=click.IntRange(10, MAX_ITEMS))
@click.option("--communities", default=12, show_default=True, type=click.IntRange(1, MAX_COMMUNITIES))
@click.option("--seed", default=0, show_default=True, type=_SEED)
def synth(out: Path, users: int, items: int, communities: int, seed: int) -> None:
    """Write a SYNTHETIC dataset (LightGCN text format) to OUT: no download needed."""
    from edgerec.synthetic import write_synthetic

    if out.exists() and any(out.iterdir()):
        raise click.UsageError(f"{out} exists and is not empty")
    write_synthetic(out, num_users=users, num_items=items, communities=communities, seed=seed)
    click.echo(f"wrote synthetic dataset to {out} (not real data)")


@cli.command()
@click.option("--data", "data_path", required=True, type=click.Path(path_type=Path),
              help="LightGCN folder (train/valid/test.txt) or a CSV/TSV of user,item[,timestamp].")
@click.option("--model", default="lightgcn", type=click.Choice(["lightgcn", "sage", "gat", "gcn"]),
              show_default=True)
@click.option("--head", default="dot", type=click.Choice(["dot", "mlp"]), show_default=True,
              help="sage/gat/gcn: score with a dot product or an MLP over [user, item].")
@click.option("--features", "features_path", type=click.Path(path_type=Path), default=None,
              help="sage/gat/gcn: CSV 'kind,id,f1,...' (kind user|item) appended to the input embeddings.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Checkpoint directory.")
@click.option("--dim", default=64, show_default=True, type=click.IntRange(1, 4096))
@click.option("--layers", default=3, show_default=True, type=click.IntRange(0, 16),
              help="0 is matrix factorisation (lightgcn only).")
@click.option("--epochs", default=400, show_default=True, type=click.IntRange(1),
              help="Upper bound; early stopping decides.")
@click.option("--batch-size", default=8192, show_default=True, type=click.IntRange(1))
@click.option("--lr", default=5e-3, show_default=True, type=_FiniteFloatRange(0, min_open=True))
@click.option("--reg", default=1e-4, show_default=True, type=_FiniteFloatRange(0))
@click.option("--seed", default=0, show_default=True, type=_SEED)
@click.option("--eval-every", default=5, show_default=True, type=click.IntRange(1))
@click.option("--patience", default=5, show_default=True, type=click.IntRange(1),
              help="Evaluations without improvement.")
@click.option("--max-minutes", type=_FiniteFloatRange(0, min_open=True), default=None,
              help="Wall-time budget for training.")
@click.option("--threads", type=click.IntRange(1, MAX_THREADS), default=None)
@click.option("--split", type=click.Choice(["time", "random"]), default="time", show_default=True,
              help="For CSV input: how valid/test are held out.")
@click.option("--overwrite", is_flag=True)
def train(data_path: Path, model: str, out: Path, overwrite: bool, split: str, head: str,
          features_path: Path | None, **kw: Any) -> None:
    """Train a reference recommender with BPR; early stopping on valid NDCG@20.

    A run whose loss or weights become NaN/inf stops with an error and writes no checkpoint.
    """
    from tqdm import tqdm

    from edgerec.atomic_dir import check_replaceable
    from edgerec.checkpoint import save_checkpoint
    from edgerec.data import load_data
    from edgerec.errors import CheckpointError
    from edgerec.train import TrainConfig, evaluate_checkpoint_model
    from edgerec.train import train as run_train

    if out.exists() and not overwrite:
        raise CheckpointError(f"{out} exists (use --overwrite to replace it)")
    check_replaceable(out, (data_path, *([features_path] if features_path else [])))  # before training
    data = load_data(data_path, split=split) if data_path.is_file() else load_data(data_path)
    click.echo(f"data: {json.dumps(data.summary())}", err=True)
    if model == "lightgcn" and (head != "dot" or features_path is not None):
        raise click.UsageError("--head mlp and --features need --model sage, gat or gcn")
    features = None
    if features_path is not None:
        from edgerec.gnn import load_features

        features = load_features(features_path, data.user_ids, data.item_ids)
    cfg = TrainConfig(model=model, head=head, **kw)
    bar = tqdm(total=cfg.epochs, desc="train", unit="epoch", file=sys.stderr)
    shown: dict[str, str] = {}

    def progress(row: dict[str, float]) -> None:
        shown["loss"] = f"{row['loss']:.4f}"
        if "valid_ndcg@20" in row:
            shown["valid_recall@20"] = f"{row['valid_recall@20']:.4f}"
            shown["valid_ndcg@20"] = f"{row['valid_ndcg@20']:.4f}"
        bar.set_postfix(shown)
        bar.update(1)

    try:
        result = run_train(data, cfg, progress, features=features)
    finally:
        bar.close()
    conf = result.checkpoint_config()
    if len(data.test):
        conf["metrics"]["test"] = evaluate_checkpoint_model(result.model, data, "test")
    save_checkpoint(out, result.model, data, conf, overwrite=overwrite)
    click.echo(json.dumps({"checkpoint": str(out), "best_epoch": result.best_epoch,
                           "epochs_run": result.epochs_run, "wall_seconds": round(result.wall_seconds, 1),
                           **conf["metrics"]}, indent=2))


@cli.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--data", "data_path", type=click.Path(path_type=Path), default=None,
              help="Evaluate on this data (default: the splits stored in the checkpoint).")
@click.option("--split", default="test", type=click.Choice(["valid", "test"]), show_default=True)
@click.option("--k", "ks", multiple=True, type=click.IntRange(1), default=(10, 20, 40), show_default=True,
              help="A K above the number of items ranks the whole catalogue.")
def evaluate(checkpoint: Path, data_path: Path | None, split: str, ks: tuple[int, ...]) -> None:
    """Full-ranking Recall@K and NDCG@K of a checkpoint, as JSON.

    No 'train' split: training items are excluded from the ranking, so it would always score 0.
    """
    from edgerec.checkpoint import load_checkpoint
    from edgerec.data import load_data
    from edgerec.errors import DataError
    from edgerec.train import evaluate_checkpoint_model

    ckpt = load_checkpoint(checkpoint)
    data = ckpt.data
    if data_path is not None:
        data = load_data(data_path)
        if (data.num_users, data.num_items) != (ckpt.data.num_users, ckpt.data.num_items):
            raise DataError(f"{data_path}: {data.num_users} users / {data.num_items} items do not match "
                            f"the checkpoint's {ckpt.data.num_users} / {ckpt.data.num_items}")
    _echo_json({"split": split, **evaluate_checkpoint_model(ckpt.model, data, split, tuple(sorted(ks)))})


# ---------------------------------------------------------------------------------------------


# options that shape how a checkpoint is compiled: an IR source is exported as compiled
COMPILE_ONLY = ("quantize", "mode", "dims", "energy", "prune_method", "min_item_count",
                "distill_epochs", "max_recall_drop", "min_agreement", "force", "head_keep",
                "channel_keep", "finetune_epochs", "new_user")


def refuse_compile_options_for_ir(source: Path) -> None:
    """An IR directory is already compiled: options that would change it are an error, not
    silently ignored (the audit exported an int8 8-dim artifact for ``--quantize float32``)."""
    if not (source / "ir.json").is_file():
        return
    ctx = click.get_current_context()
    given = [n for n in COMPILE_ONLY if n in ctx.params
             and ctx.get_parameter_source(n) == click.core.ParameterSource.COMMANDLINE]
    if given:
        flags = ", ".join("--" + n.replace("_", "-") for n in given)
        raise click.BadParameter(f"{source} is an IR, exported as it was compiled; {flags} "
                                 "apply when compiling a checkpoint", param_hint="SOURCE")


def _compile_options(f: Any) -> Any:
    opts = [
        click.option("--data", "data_path", type=click.Path(path_type=Path), default=None,
                     help="Guard on this data's valid split (default: the one stored in the checkpoint)."),
        click.option("--mode", type=click.Choice(["lookup", "history", "both"]), default="both", show_default=True),
        click.option("--dims", default="auto", show_default=True,
                     help="Embedding width after pruning: a number, 'auto' (smallest within the guard), or 'full'."),
        click.option("--energy", type=float, default=None, help="Keep this fraction of the score matrix's energy."),
        click.option("--prune-method", type=click.Choice(["svd", "columns"]), default="svd", show_default=True),
        click.option("--min-item-count", type=click.IntRange(0), default=0, show_default=True,
                     help="Drop items with fewer training interactions."),
        click.option("--distill-epochs", type=click.IntRange(0), default=0, show_default=True,
                     help="LightGCN: after pruning, distil the narrower tables against the float "
                          "model's rankings for N epochs (buys width at the same accuracy; slower)."),
        click.option("--max-recall-drop", type=_FiniteFloatRange(0, 1), default=0.02, show_default=True,
                     help="The accuracy guard's budget: a fraction in [0, 1]."),
        click.option("--min-agreement", type=_FiniteFloatRange(0, 1), default=None,
                     help="Also require this top-k agreement with the float model, in [0, 1]."),
        click.option("--force", is_flag=True, help="Emit even if the accuracy guard objects."),
        click.option("--overwrite", is_flag=True),
        click.option("--json", "as_json", is_flag=True, help="Machine-readable output."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _run_compile(source: Path, data_path: Path | None, mode: str, dims: str, energy: float | None,
                 prune_method: str, min_item_count: int, max_recall_drop: float,
                 min_agreement: float | None, force: bool, quantize: str, quiet: bool,
                 head_keep: float | None = None, channel_keep: float | None = None,
                 finetune_epochs: int = 0, new_user: str = "mean", distill_epochs: int = 0):
    """Checkpoint -> IR via the passes; an IR directory is loaded as is."""
    from edgerec.checkpoint import load_checkpoint
    from edgerec.data import load_data
    from edgerec.ir import load_ir
    from edgerec.pipeline import CompileOptions, compile_checkpoint

    if (source / "ir.json").is_file():
        return load_ir(source), []
    ckpt = load_checkpoint(source)
    if energy is not None and dims == "auto":
        dims_opt: int | str | None = None
    elif dims == "full":
        dims_opt = None
    elif dims == "auto":
        dims_opt = "auto"
    else:
        try:
            dims_opt = int(dims)
        except ValueError:
            raise click.BadParameter(f"--dims must be a number, 'auto' or 'full', not {dims!r}") from None
        if not 1 <= dims_opt <= int(ckpt.config["dim"]):
            raise click.BadParameter(f"--dims must be between 1 and {ckpt.config['dim']}")
    opts = CompileOptions(
        modes=("lookup", "history") if mode == "both" else (mode,), dims=dims_opt, energy=energy,
        method=prune_method, quantize=quantize, max_recall_drop=max_recall_drop,
        min_agreement=min_agreement, force=force, min_item_count=min_item_count, head_keep=head_keep,
        channel_keep=channel_keep, finetune_epochs=finetune_epochs, new_user=new_user,
        distill_epochs=distill_epochs)
    data = load_data(data_path) if data_path is not None else None
    log = (lambda _m: None) if quiet else (lambda m: click.echo(m, err=True))
    res = compile_checkpoint(ckpt, opts, data, log)
    return res.ir, res.reports


def _pass_rows(reports: list[Any]) -> list[dict[str, Any]]:
    """One row per pass: what it did to size and accuracy."""
    rows = []
    base = reports[0].bytes_after if reports else 0
    for r in reports:
        m = r.metrics_after
        p = r.params
        what = {"precompute": f"layers={p.get('layers')}", "prune": f"{p.get('method')} {p.get('from_dims')}->{p.get('dims')}",
                "quantize": str(p.get("scheme")), "guard": f"max drop {p.get('max_recall_drop')}",
                "drop_cold_items": f"min count {p.get('min_count')}",
                "prune_head": f"hidden {p.get('from')}->{p.get('keep')}",
                "prune_channels": f"channels {p.get('from')}->{p.get('keep')}",
                "finetune_head": f"{p.get('epochs')} epochs",
                "distill": f"{p.get('epochs')} epochs"}.get(r.name, "")
        rows.append({"pass": r.name, "what": what, "bytes": _fmt_bytes(r.bytes_after),
                     "x smaller": f"{base / r.bytes_after:.1f}" if r.bytes_after else "",
                     "lookup R@20": m.get("lookup/recall@20", ""), "history R@20": m.get("history/recall@20", ""),
                     "lookup agr@20": m.get("lookup/agreement@20", ""),
                     "history agr@20": m.get("history/agreement@20", "")})
    return rows


@cli.command("compile")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--quantize", type=click.Choice(list(SCHEMES)), default="int8",
              show_default=True)
@click.option("--head-keep", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="MLP head: fraction of hidden neurons kept (structured pruning by activation).")
@click.option("--channel-keep", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="sage/gat/gcn: fraction of encoder output channels kept (structured pruning).")
@click.option("--finetune-epochs", type=click.IntRange(0), default=0, show_default=True,
              help="MLP head: BPR epochs on the pruned head (encoder frozen).")
@click.option("--new-user", type=click.Choice(["mean", "bias"]), default="mean", show_default=True,
              help="sage/gcn history mode: a new user's base vector (mean of known users, or x_u = 0).")
@_compile_options
def compile_cmd(checkpoint: Path, out: Path, quantize: str, data_path: Path | None, mode: str, dims: str,
                energy: float | None, prune_method: str, min_item_count: int, max_recall_drop: float,
                min_agreement: float | None, force: bool, overwrite: bool, as_json: bool,
                head_keep: float | None, channel_keep: float | None, finetune_epochs: int,
                new_user: str, distill_epochs: int) -> None:
    """Compile a checkpoint into an IR directory (precompute, prune, quantize, guard)."""
    from edgerec.atomic_dir import check_replaceable
    from edgerec.errors import IRError
    from edgerec.ir import describe, save_ir

    if out.exists() and not overwrite:
        raise IRError(f"{out} exists (use --overwrite to replace it)")
    refuse_compile_options_for_ir(checkpoint)
    check_replaceable(out, (checkpoint, *([data_path] if data_path else [])))  # before the work
    ir, reports = _run_compile(checkpoint, data_path, mode, dims, energy, prune_method, min_item_count,
                               max_recall_drop, min_agreement, force, quantize, as_json, head_keep=head_keep,
                               channel_keep=channel_keep, finetune_epochs=finetune_epochs, new_user=new_user,
                               distill_epochs=distill_epochs)
    save_ir(ir, out, overwrite=overwrite)
    if as_json:
        _echo_json({"ir": str(out), "summary": describe(ir), "passes": [r.to_json() for r in reports]})
    else:
        _table(_pass_rows(reports), title=f"edgerec compile -> {out}")
        click.echo(f"wrote {out}: {ir.dim} dims, {_fmt_bytes(ir.nbytes)} of tables")


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def inspect(path: Path, as_json: bool) -> None:
    """Summarise an IR directory, an artifact or a checkpoint."""
    from edgerec.atomic_dir import artifact_children
    from edgerec.errors import EdgerecError
    from edgerec.ir import describe, load_ir

    if (path / "ir.json").is_file():
        info = describe(load_ir(path))
        if as_json:
            _echo_json(info)
            return
        click.echo(f"IR {path}: {info['users']} users, {info['items']} items, dim {info['dim']}, "
                   f"modes {', '.join(info['modes'])}, serving bytes {_fmt_bytes(info['serving_bytes'])}")
        _table([{"table": n, "shape": "x".join(map(str, t["shape"])), "dtype": t["dtype"],
                 "bytes": _fmt_bytes(t["bytes"])} for n, t in info["tables"].items()])
        click.echo("passes: " + " -> ".join(info["passes"]))
        if info["metrics"].get("compiled"):
            click.echo("metrics: " + json.dumps(info["metrics"]["compiled"]))
    elif (path / "manifest.json").is_file():
        _inspect_artifact(path, as_json)
    elif kids := artifact_children(path):
        if as_json:  # an ``export --target all`` directory: one artifact per target
            from runtime.artifact import load_artifact

            _echo_json({c.name: load_artifact(c).manifest for c in kids})
        else:
            for child in kids:
                _inspect_artifact(child, as_json=False)
    elif (path / "config.json").is_file():
        from edgerec.checkpoint import load_checkpoint

        c = load_checkpoint(path).config
        _echo_json({k: c[k] for k in ("model", "num_users", "num_items", "dim", "layers", "train",
                                      "metrics", "data") if k in c})
    else:
        raise EdgerecError(f"{path}: not an IR, artifact or checkpoint directory")


def _inspect_artifact(path: Path, as_json: bool) -> None:
    """Load the artifact as a device would (checksums included), then summarise it."""
    from runtime.artifact import load_artifact

    m = load_artifact(path).manifest
    if as_json:
        _echo_json(m)
        return
    q = m["quantization"]
    click.echo(f"artifact {path}: {m['target']}, {m['num_users']} users, {m['num_items']} items, "
               f"dim {m['dim']}, modes {', '.join(m['modes'])}, top-{m['k']}, "
               f"{q['weights']} / {q['activations']}; files verified")
    _table([{"file": f, "bytes": _fmt_bytes((path / f).stat().st_size)} for f in sorted(m["files"])])
    parity = m.get("metrics", {}).get("parity", {})
    for mode, v in parity.get("modes", {}).items():
        click.echo(f"parity {mode}: " + json.dumps(v))


def main() -> None:
    """Console entry point: one-line errors, no tracebacks for anything the user can fix."""
    from edgerec.errors import EdgerecError

    try:
        from runtime.errors import RuntimeErrorBase as _RtErr  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - runtime package incomplete
        _RtErr = EdgerecError  # noqa: N806
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted: nothing was written", err=True)
        sys.exit(130)
    except click.UsageError as e:  # one line, like every other error; the help is one flag away
        ctx = e.ctx
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        click.echo("error: " + " ".join(e.format_message().split()) + hint, err=True)
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except (EdgerecError, _RtErr, OSError, ValueError) as e:
        if os.environ.get("EDGEREC_DEBUG"):
            raise
        what = "" if isinstance(e, EdgerecError | _RtErr) else f"{e.__class__.__name__}: "
        click.echo("error: " + what + " ".join(str(e).split()), err=True)
        sys.exit(2)


from edgerec import commands as _commands  # noqa: E402,F401  (registers export, bench, demo)
