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


@cli.command("import")
@click.option("--pyg-model", "model_path", required=True, type=click.Path(path_type=Path),
              help="The model's state dict, written by safetensors.torch.save_file.")
@click.option("--edge-index", "edge_path", required=True, type=click.Path(path_type=Path),
              help="A safetensors file with the [2, E] training graph (key 'edge_index').")
@click.option("--num-users", required=True, type=click.IntRange(1))
@click.option("--num-items", required=True, type=click.IntRange(1))
@click.option("--model", "kind", type=click.Choice(["lightgcn"]), default="lightgcn",
              show_default=True)
@click.option("--data", "data_path", type=click.Path(path_type=Path), default=None,
              help="A LightGCN folder with the same users and items: its ids, and its valid/test "
                   "splits as held-out interactions.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Checkpoint directory.")
@click.option("--overwrite", is_flag=True)
def import_cmd(model_path: Path, edge_path: Path, num_users: int, num_items: int, kind: str,
               data_path: Path | None, out: Path, overwrite: bool) -> None:
    """Import a PyG LightGCN (users are nodes 0..U-1, items U..U+I-1) as a checkpoint."""
    import torch
    from torch_geometric.nn.models import LightGCN

    import edgerec
    from edgerec.api import check_output
    from edgerec.checkpoint import save_checkpoint
    from edgerec.errors import EdgerecError

    check_output(out, overwrite, (model_path, edge_path, *([data_path] if data_path else [])))
    state = _read_safetensors(model_path, "--pyg-model")
    graph = _read_safetensors(edge_path, "--edge-index")
    edge_index = graph.get("edge_index", next(iter(graph.values())) if len(graph) == 1 else None)
    if edge_index is None:
        raise EdgerecError(f"{edge_path}: no tensor named 'edge_index'")
    weight, alpha = state.get("embedding.weight"), state.get("alpha")
    if weight is None or alpha is None or weight.ndim != 2 or alpha.ndim != 1 or alpha.numel() < 1:
        raise EdgerecError(f"{model_path}: not a PyG LightGCN state dict (needs 'embedding.weight' "
                           f"[N, d] and 'alpha' [K+1]; found {sorted(state)[:6]})")
    model = LightGCN(int(weight.shape[0]), int(weight.shape[1]), int(alpha.numel()) - 1, alpha=alpha)
    model.load_state_dict(state)
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
                            valid=valid, test=test)
    save_checkpoint(out, ckpt.model, ckpt.data, {k: ckpt.config[k] for k in ("model", "dim", "layers",
                                                                             "train", "metrics")},
                    overwrite=overwrite)
    click.echo(json.dumps({"checkpoint": str(out), "model": kind, "users": num_users,
                           "items": num_items, "dim": ckpt.config["dim"],
                           "layers": ckpt.config["layers"], "training edges": len(ckpt.data.train),
                           "held-out valid": len(ckpt.data.valid), "held-out test": len(ckpt.data.test)},
                          indent=2))
