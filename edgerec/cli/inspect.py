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
    import edgerec

    info = edgerec.inspect(path)
    if info["kind"] == "ir":
        _print_ir(path, info["summary"], as_json)
    elif info["kind"] == "artifact":
        _print_artifact(path, info, as_json)
    elif info["kind"] == "artifacts":  # an ``export --target all`` directory
        if as_json:
            echo_json({name: a["manifest"] for name, a in info["artifacts"].items()})
        else:
            for name, a in info["artifacts"].items():
                _print_artifact(path / name, a, as_json=False)
    else:
        echo_json(info["config"])


def _print_ir(path: Path, info: dict, as_json: bool) -> None:
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


def _print_artifact(path: Path, info: dict, as_json: bool) -> None:
    m = info["manifest"]
    if as_json:
        echo_json(m)
        return
    q = m["quantization"]
    click.echo(f"artifact {path}: {m['target']}, {m['num_users']} users, {m['num_items']} items, "
               f"dim {m['dim']}, modes {', '.join(m['modes'])}, top-{m['k']}, "
               f"{q['weights']} / {q['activations']}; files verified")
    table([{"file": f, "bytes": fmt_bytes(n)} for f, n in info["file_bytes"].items()])
    parity = m.get("metrics", {}).get("parity", {})
    for mode, v in parity.get("modes", {}).items():
        click.echo(f"parity {mode}: " + json.dumps(v))
