"""``edgerec inspect``: summarise an IR, an artifact or a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgerec.cli import cli
from edgerec.cli._format import echo_json, fmt_bytes, table


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
            echo_json(info)
            return
        click.echo(f"IR {path}: {info['users']} users, {info['items']} items, dim {info['dim']}, "
                   f"modes {', '.join(info['modes'])}, serving bytes {fmt_bytes(info['serving_bytes'])}")
        table([{"table": n, "shape": "x".join(map(str, t["shape"])), "dtype": t["dtype"],
                 "bytes": fmt_bytes(t["bytes"])} for n, t in info["tables"].items()])
        click.echo("passes: " + " -> ".join(info["passes"]))
        if info["metrics"].get("compiled"):
            click.echo("metrics: " + json.dumps(info["metrics"]["compiled"]))
    elif (path / "manifest.json").is_file():
        _inspect_artifact(path, as_json)
    elif kids := artifact_children(path):
        if as_json:  # an ``export --target all`` directory: one artifact per target
            from runtime.artifact import load_artifact

            echo_json({c.name: load_artifact(c).manifest for c in kids})
        else:
            for child in kids:
                _inspect_artifact(child, as_json=False)
    elif (path / "config.json").is_file():
        from edgerec.checkpoint import load_checkpoint

        c = load_checkpoint(path).config
        echo_json({k: c[k] for k in ("model", "num_users", "num_items", "dim", "layers", "train",
                                      "metrics", "data") if k in c})
    else:
        raise EdgerecError(f"{path}: not an IR, artifact or checkpoint directory")


def _inspect_artifact(path: Path, as_json: bool) -> None:
    """Load the artifact as a device would (checksums included), then summarise it."""
    from runtime.artifact import load_artifact

    m = load_artifact(path).manifest
    if as_json:
        echo_json(m)
        return
    q = m["quantization"]
    click.echo(f"artifact {path}: {m['target']}, {m['num_users']} users, {m['num_items']} items, "
               f"dim {m['dim']}, modes {', '.join(m['modes'])}, top-{m['k']}, "
               f"{q['weights']} / {q['activations']}; files verified")
    table([{"file": f, "bytes": fmt_bytes((path / f).stat().st_size)} for f in sorted(m["files"])])
    parity = m.get("metrics", {}).get("parity", {})
    for mode, v in parity.get("modes", {}).items():
        click.echo(f"parity {mode}: " + json.dumps(v))
