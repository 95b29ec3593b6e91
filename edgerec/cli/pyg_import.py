"""``edgerec import``: a model trained in the user's own PyG code, from safetensors files."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgerec.cli import cli


def _read_safetensors(path: Path, what: str) -> dict:
    """The tensors of a safetensors file; anything else (a pickle above all) is refused
    unread, in one line."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from edgerec.errors import EdgerecError

    if not path.is_file():
        raise EdgerecError(f"{path}: no such file ({what})")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise EdgerecError(f"{path}: not a safetensors file ({what}; edgerec never unpickles: "
                           f"write it with safetensors.torch.save_file): {e}") from None


def _one_tensor(tensors: dict, path: Path, key: str) -> object:
    """The tensor named ``key``, or the file's only tensor."""
    from edgerec.errors import EdgerecError

    value = tensors.get(key, next(iter(tensors.values())) if len(tensors) == 1 else None)
    if value is None:
        raise EdgerecError(f"{path}: no tensor named {key!r}")
    return value


@cli.command("import")
@click.option("--pyg-model", "model_path", required=True, type=click.Path(path_type=Path),
              help="The model's state dict, written by safetensors.torch.save_file.")
@click.option("--edge-index", "edge_path", required=True, type=click.Path(path_type=Path),
              help="A safetensors file with the [2, E] training graph (key 'edge_index').")
@click.option("--num-users", required=True, type=click.IntRange(1))
@click.option("--num-items", required=True, type=click.IntRange(1))
@click.option("--model", "kind", type=click.Choice(["lightgcn", "sage", "gcn", "gat"]),
              default="lightgcn", show_default=True,
              help="PyG's LightGCN, or its GraphSAGE / GCN / GAT encoder: rebuilt from the state "
                   "dict's tensors with PyG's default options (act relu, SAGE mean; GAT slope: "
                   "--negative-slope); a model built otherwise goes through edgerec.from_pyg in Python.")
@click.option("--x", "x_path", type=click.Path(path_type=Path), default=None,
              help="sage/gcn/gat: a safetensors file with the [U + I, c] node input (key 'x'): "
                   "the embedding table or the node features.")
@click.option("--negative-slope", type=float, default=None,
              help="gat: the LeakyReLU slope the model was built with (a state dict does not "
                   "record it). (default: 0.2, GATConv's)")
@click.option("--data", "data_path", type=click.Path(path_type=Path), default=None,
              help="A LightGCN folder with the same users and items: its ids, and its valid/test "
                   "splits as held-out interactions.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Checkpoint directory.")
@click.option("--overwrite", is_flag=True)
def import_cmd(model_path: Path, edge_path: Path, num_users: int, num_items: int, kind: str,
               x_path: Path | None, negative_slope: float | None, data_path: Path | None,
               out: Path, overwrite: bool) -> None:
    """Import a PyG LightGCN, GraphSAGE, GCN or GAT (users are nodes 0..U-1, items
    U..U+I-1) as a checkpoint."""
    import torch

    import edgerec
    from edgerec.api import check_output
    from edgerec.checkpoint import save_checkpoint
    from edgerec.errors import EdgerecError
    from edgerec.frontend.state_dict import rebuild

    inputs = (model_path, edge_path, *(p for p in (x_path, data_path) if p is not None))
    check_output(out, overwrite, inputs)
    if (x_path is None) != (kind == "lightgcn"):
        raise EdgerecError("--x is the node input of --model sage/gcn/gat (LightGCN learns its own)"
                           if x_path is not None else f"--model {kind} needs --x (its node input)")
    model = rebuild(kind, _read_safetensors(model_path, "--pyg-model"), str(model_path),
                    negative_slope=negative_slope)
    edge_index = _one_tensor(_read_safetensors(edge_path, "--edge-index"), edge_path, "edge_index")
    x = None if x_path is None else _one_tensor(_read_safetensors(x_path, "--x"), x_path, "x")
    ids = valid = test = None
    if data_path is not None:
        data = edgerec.load_data(data_path)
        if (data.num_users, data.num_items) != (num_users, num_items):
            raise EdgerecError(f"{data_path}: {data.num_users} users / {data.num_items} items, "
                               f"not --num-users {num_users} / --num-items {num_items}")
        ids = (data.user_ids, data.item_ids)
        valid, test = ([torch.as_tensor(s.users), torch.as_tensor(s.items) + num_users]
                       for s in (data.valid, data.test))
        valid, test = torch.stack(valid), torch.stack(test)
    ckpt = edgerec.from_pyg(model, edge_index, num_users=num_users, num_items=num_items,
                            user_ids=ids[0] if ids else None, item_ids=ids[1] if ids else None,
                            valid=valid, test=test, x=x)
    # save_checkpoint recomputes the counts, data record and hashes of the config it is given
    save_checkpoint(out, ckpt.model, ckpt.data, ckpt.config, overwrite=overwrite)
    click.echo(json.dumps({"checkpoint": str(out), "model": kind, "users": num_users,
                           "items": num_items, "dim": ckpt.config["dim"],
                           "layers": ckpt.config["layers"], "training edges": len(ckpt.data.train),
                           "held-out valid": len(ckpt.data.valid), "held-out test": len(ckpt.data.test)},
                          indent=2))
