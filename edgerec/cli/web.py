"""``edgerec web``: a static site that recommends with an artifact inside the browser."""

from __future__ import annotations

from pathlib import Path

import click

from edgerec.cli import cli
from edgerec.cli._format import echo_json, fmt_bytes


@cli.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The site directory.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier edgerec web site at --out.")
@click.option("--json", "as_json", is_flag=True)
def web(artifact: Path, out: Path, overwrite: bool, as_json: bool) -> None:
    """Write a static site recommending with ARTIFACT in the browser (demo + selftest.html)."""
    from edgerec.web_site import build_site

    rep = build_site(artifact, out, overwrite=overwrite)
    if as_json:
        echo_json(rep.to_json())
        return
    click.echo(f"site: {rep.out} ({rep.target} artifact, {rep.backend} wasm in the page; "
               f"Python answers from {rep.python_backend} for {rep.eval_users} eval users)")
    click.echo(f"the page downloads {rep.download_bytes:,} bytes ({fmt_bytes(rep.download_bytes)}): "
               + ", ".join(f"{k} {fmt_bytes(v)}" for k, v in rep.parts.items())
               + " (the interpreter's wasm outweighs the model)")
    click.echo(f"serve it, e.g. python -m http.server -d {rep.out} 8000 --bind 127.0.0.1, "
               "and open /index.html or /selftest.html")
