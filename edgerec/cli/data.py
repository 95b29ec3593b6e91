"""Commands about data and training: ``synth``, ``train``, ``evaluate``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from edgerec.cli import cli
from edgerec.cli._format import SEED, FiniteFloatRange, ThreadCount, echo_json
from edgerec.limits import MAX_COMMUNITIES, MAX_ITEMS, MAX_USERS


@cli.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--users", default=1000, show_default=True, type=click.IntRange(2, MAX_USERS))
@click.option("--items", default=2000, show_default=True, type=click.IntRange(10, MAX_ITEMS))
@click.option("--communities", default=None, type=click.IntRange(1, MAX_COMMUNITIES),
              help="Taste groups [default: 12; 40 with --dense].")
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--dense", is_flag=True, help="Long histories: a median of ~60 training items per user "
              "(and 40 communities unless --communities is given).")
def synth(out: Path, users: int, items: int, communities: int | None, seed: int, dense: bool) -> None:
    """Write a SYNTHETIC dataset (LightGCN text format) to OUT: no download needed."""
    import edgerec

    edgerec.synthesize(out, users=users, items=items, communities=communities, seed=seed, dense=dense)
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
@click.option("--lr", default=5e-3, show_default=True, type=FiniteFloatRange(0, min_open=True))
@click.option("--reg", default=1e-4, show_default=True, type=FiniteFloatRange(0))
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--eval-every", default=5, show_default=True, type=click.IntRange(1))
@click.option("--patience", default=5, show_default=True, type=click.IntRange(1),
              help="Evaluations without improvement.")
@click.option("--max-minutes", type=FiniteFloatRange(0, min_open=True), default=None,
              help="Wall-time budget for training.")
@click.option("--threads", type=ThreadCount(), default=None)
@click.option("--split", type=click.Choice(["time", "random"]), default="time", show_default=True,
              help="For CSV input: how valid/test are held out.")
@click.option("--overwrite", is_flag=True)
def train(data_path: Path, model: str, out: Path, overwrite: bool, split: str, head: str,
          features_path: Path | None, **kw: Any) -> None:
    """Train a reference recommender with BPR; early stopping on valid NDCG@20.

    A run whose loss or weights become NaN/inf stops with an error and writes no checkpoint.
    """
    from tqdm import tqdm

    import edgerec
    from edgerec.api import check_output

    check_output(out, overwrite, (data_path, *([features_path] if features_path else [])))
    data = edgerec.load_data(data_path, split=split)
    click.echo(f"data: {json.dumps(data.summary())}", err=True)
    if model == "lightgcn" and (head != "dot" or features_path is not None):
        raise click.UsageError("--head mlp and --features need --model sage, gat or gcn")
    bar = tqdm(total=kw["epochs"], desc="train", unit="epoch", file=sys.stderr)
    shown: dict[str, str] = {}

    def progress(row: dict[str, float]) -> None:
        shown["loss"] = f"{row['loss']:.4f}"
        if "valid_ndcg@20" in row:
            shown["valid_recall@20"] = f"{row['valid_recall@20']:.4f}"
            shown["valid_ndcg@20"] = f"{row['valid_ndcg@20']:.4f}"
        bar.set_postfix(shown)
        bar.update(1)

    try:
        ckpt = edgerec.train(data, out=out, model=model, head=head, features=features_path,
                             progress=progress, overwrite=overwrite, **kw)
    finally:
        bar.close()
    t = ckpt.config["train"]
    click.echo(json.dumps({"checkpoint": str(out), "best_epoch": t["best_epoch"],
                           "epochs_run": t["epochs_run"], "wall_seconds": round(t["wall_seconds"], 1),
                           **ckpt.config["metrics"]}, indent=2))


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
    import edgerec

    ckpt = edgerec.load_checkpoint(checkpoint)
    data = edgerec.load_data(data_path) if data_path is not None else None
    echo_json({"split": split, **edgerec.evaluate(ckpt, split=split, ks=ks, data=data)})
