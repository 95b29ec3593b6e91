"""Commands that compile and export: ``compile`` and ``export``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from edgerec.cli import cli
from edgerec.cli._format import echo_json, fmt_bytes, table
from edgerec.cli._options import api_compile_args, compile_options, refuse_compile_options_for_ir
from edgerec.schemes import FORMATS


def _stderr(message: str) -> None:
    click.echo(message, err=True)


def _guard_basis(params: dict[str, Any]) -> str:
    floor = params.get("min_agreement")
    return f"max drop {params.get('max_recall_drop')}" + (f", agreement >= {floor}" if floor else "")


def pass_rows(reports: list[Any]) -> list[dict[str, Any]]:
    """One row per pass: what it did to size and accuracy."""
    rows = []
    base = reports[0].bytes_after if reports else 0
    for r in reports:
        m = r.metrics_after
        p = r.params
        what = {"precompute": f"layers={p.get('layers')}", "prune": f"{p.get('method')} {p.get('from_dims')}->{p.get('dims')}",
                "quantize": str(p.get("scheme")), "guard": _guard_basis(p),
                "drop_cold_items": f"min count {p.get('min_count')}",
                "prune_head": f"hidden {p.get('from')}->{p.get('keep')}",
                "prune_channels": f"channels {p.get('from')}->{p.get('keep')}",
                "finetune_head": f"{p.get('epochs')} epochs",
                "distill": f"{p.get('epochs')} epochs"}.get(r.name, "")
        rows.append({"pass": r.name, "what": what, "bytes": fmt_bytes(r.bytes_after),
                     "x smaller": f"{base / r.bytes_after:.1f}" if r.bytes_after else "",
                     "lookup R@20": m.get("lookup/recall@20", ""), "history R@20": m.get("history/recall@20", ""),
                     "lookup agr@20": m.get("lookup/agreement@20", ""),
                     "history agr@20": m.get("history/agreement@20", "")})
    return rows


@cli.command("compile")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--quantize", type=click.Choice(["auto", *FORMATS, "none"]), default="auto", show_default=True,
              help="The number format; auto searches int8, int4-item, int4 and int4-pq with --dims auto for "
                   "the smallest TFLite file the guard accepts ('none' is an old name of float32).")
@click.option("--head-keep", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="MLP head: fraction of hidden neurons kept (structured pruning by activation).")
@click.option("--channel-keep", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="sage/gat/gcn: fraction of encoder output channels kept (structured pruning).")
@click.option("--finetune-epochs", type=click.IntRange(0), default=0, show_default=True,
              help="MLP head: BPR epochs on the pruned head (encoder frozen).")
@click.option("--new-user", type=click.Choice(["mean", "bias"]), default="mean", show_default=True,
              help="sage/gcn history mode: a new user's base vector (mean of known users, or x_u = 0).")
@compile_options
def compile_cmd(checkpoint: Path, out: Path, overwrite: bool, as_json: bool, quantize: str,
                **options: Any) -> None:
    """Compile a checkpoint into an IR directory (precompute, prune, quantize, guard)."""
    import edgerec
    from edgerec.api import check_output

    refuse_compile_options_for_ir(checkpoint)
    check_output(out, overwrite, (checkpoint, *([options["data_path"]] if options["data_path"] else [])))
    quantize = "float32" if quantize == "none" else quantize
    compiled = edgerec.compile(checkpoint, log=None if as_json else _stderr, progress=not as_json,
                               **api_compile_args(checkpoint, quantize=quantize, **options))
    compiled.save(out, overwrite=overwrite)
    ir = compiled.ir
    if as_json:
        from edgerec.ir import describe

        echo_json({"ir": str(out), "summary": describe(ir), "passes": [r.to_json() for r in compiled.reports]})
    else:
        _search_table(ir.metrics.get("search"), compiled.search)
        table(pass_rows(compiled.reports), title=f"edgerec compile -> {out}")
        click.echo(f"wrote {out}: {ir.dim} dims, {fmt_bytes(ir.nbytes)} of tables")


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--target", default="tflite", show_default=True,
              help="tflite, onnx, numpy (the reference backend's format), or all (tflite and onnx).")
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--quantize", type=click.Choice(["auto", *FORMATS]), default="auto", show_default=True,
              help="auto: search the format with --dims auto for the smallest file of --target "
                   "the guard accepts (all: the larger of the two files). int4-item: the item "
                   "table (the scoring matmul) in int4, packed in the TFLite and ONNX files; the "
                   "gathered tables int8. int4: every table in int4. int4-pq: the item table in "
                   "int4, the user and history rows in product codes (3 bits a value).")
@click.option("--k", default=50, show_default=True, help="Top-k the model returns.")
@click.option("--history-capacity", default=50, show_default=True, type=click.IntRange(1, 10_000),
              help="Most recent history items the history signature reads.")
@click.option("--with-eval", is_flag=True, help="Add eval.json (held-out users) for on-device accuracy.")
@click.option("--eval-users", default=500, show_default=True, type=click.IntRange(1))
@compile_options
def export(source: Path, target: str, out: Path, k: int, history_capacity: int, with_eval: bool,
           eval_users: int, overwrite: bool, as_json: bool, **options: Any) -> None:
    """Compile SOURCE (checkpoint or IR dir) and write verified on-device model files."""
    import edgerec

    refuse_compile_options_for_ir(source)
    compile_args = api_compile_args(source, **options)
    if compile_args:
        compile_args["progress"] = not as_json
    edgerec.export(source, out, target=target, k=k, history_capacity=history_capacity,
                   with_eval=with_eval, eval_users=eval_users, overwrite=overwrite,
                   log=None if as_json else _stderr, **compile_args)
    targets = ["tflite", "onnx"] if target == "all" else [target]
    roots = {t: out if len(targets) == 1 else out / t for t in targets}
    manifests = {t: json.loads((r / "manifest.json").read_text()) for t, r in roots.items()}
    if as_json:
        echo_json(manifests)
        return
    first = manifests[targets[0]].get("metrics") or {}
    _search_table(first.get("search"), None)
    from runtime.artifact import model_files  # numpy: not at CLI import

    rows = []
    for t, m in manifests.items():
        parity = m.get("metrics", {}).get("parity", {})
        pk = parity.get("k", m["k"])
        row = {"target": t, "quantization": m["quantization"]["weights"], "dims": m["dim"],
               "model bytes": fmt_bytes(sum((roots[t] / f).stat().st_size for f in model_files(m)))}
        for md, v in parity.get("modes", {}).items():
            row[f"{md} parity@{pk}"] = v.get(f"agreement@{pk}")
            row[f"{md} vs float@{pk}"] = v.get(f"agreement@{pk}_vs_float")
        rows.append(row)
    table(rows, title=f"edgerec export -> {out}")


def _search_table(record: dict[str, Any] | None, timed: list[dict[str, Any]] | None) -> None:
    """The candidates the search tried (with their times when the search ran in this process;
    the record in the IR and the manifest has none)."""
    from edgerec.search import table_rows

    if record:
        table(table_rows(timed or record["candidates"], record["float"]),
              title=f"search: ranked by {record['ranked_by']}; metrics on valid (% of float)")


