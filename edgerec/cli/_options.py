"""The options shared by ``compile`` and ``export``, and their translation to API arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgerec.cli._format import FiniteFloatRange

# options that shape how a checkpoint is compiled: an IR source is exported as compiled
COMPILE_ONLY = ("quantize", "mode", "dims", "energy", "prune_method", "min_item_count",
                "distill_epochs", "max_recall_drop", "recall_margin", "min_agreement", "force", "head_keep",
                "channel_keep", "finetune_epochs", "new_user", "history_fix", "search_budget")


# the options behind each pass, for errors a pass raises in its own words
PASS_OPTIONS = {"drop_cold_items": "--min-item-count", "prune": "--dims / --energy / --prune-method",
                "prune_head": "--head-keep", "prune_channels": "--channel-keep",
                "finetune_head": "--finetune-epochs", "distill": "--distill-epochs",
                "distill_history": "--no-history-fix",
                "quantize": "--quantize", "guard": "--max-recall-drop / --recall-margin / --min-agreement / --force"}


def pass_hint(error: Exception) -> str:
    """`` (option: --x)`` for an error a compiler pass raised, else nothing."""
    option = PASS_OPTIONS.get(getattr(error, "pass_name", ""))
    return f" (option: {option})" if option else ""


def refuse_compile_options_for_ir(source: Path) -> None:
    """An IR directory is already compiled: options that would change it are an error, not
    silently ignored (the audit exported an int8 8-dim artifact for ``--quantize float32``)."""
    if not (source / "ir.json").is_file():
        return
    ctx = click.get_current_context()
    given = [n for n in COMPILE_ONLY if n in ctx.params
             and ctx.get_parameter_source(n) == click.core.ParameterSource.COMMANDLINE]
    if given:
        flags = ", ".join(_flag_as_given(ctx, n) for n in given)
        raise click.BadParameter(f"{source} is an IR, exported as it was compiled; {flags} "
                                 "apply when compiling a checkpoint", param_hint="SOURCE")


def _flag_as_given(ctx: click.Context, name: str) -> str:
    """The option as the user typed it (``--no-history-fix``, not ``--history-fix``)."""
    param = next(p for p in ctx.command.params if p.name == name)
    if getattr(param, "secondary_opts", None) and ctx.params.get(name) is False:
        return param.secondary_opts[0]
    return max(param.opts, key=len)


def compile_options(f: Any) -> Any:
    """Decorate a command with the options every compiling command takes."""
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
        click.option("--distill-epochs", type=click.IntRange(0), default=None,
                     help="LightGCN: after pruning, distil the narrower tables against the float "
                          "model's rankings for N epochs (buys width at the same accuracy; slower). "
                          "Default: the search tries it where it can pay."),
        click.option("--history-fix/--no-history-fix", default=True, show_default=True,
                     help="LightGCN: when history mode keeps less than 97% of lookup's Recall@20 "
                          "on the valid split, train the history tables toward lookup first."),
        click.option("--search-budget", type=FiniteFloatRange(0, min_open=True), default=10.0,
                     show_default=True, metavar="MINUTES",
                     help="Bound the search of --quantize/--dims auto; it keeps its best candidate."),
        click.option("--max-recall-drop", type=FiniteFloatRange(0, 1), default=0.02, show_default=True,
                     help="The accuracy guard's budget: a fraction in [0, 1]."),
        click.option("--recall-margin", type=FiniteFloatRange(0, 0.999), default=0.95, show_default=True,
                     help="Hold this quantile of a bootstrap over validation users of the Recall@20 "
                          "drop to the budget (a margin for unseen users); 0: the measured drop only."),
        click.option("--min-agreement", type=FiniteFloatRange(0, 1), default=None,
                     help="Also require this top-k agreement with the float model, in [0, 1]."),
        click.option("--force", is_flag=True, help="Emit even if the accuracy guard objects."),
        click.option("--overwrite", is_flag=True),
        click.option("--json", "as_json", is_flag=True, help="Machine-readable output."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def api_compile_args(source: Path, *, data_path: Path | None, mode: str, dims: str,
                     energy: float | None, prune_method: str, min_item_count: int,
                     max_recall_drop: float, recall_margin: float, min_agreement: float | None, force: bool,
                     quantize: str, distill_epochs: int | None, history_fix: bool,
                     search_budget: float, **model_options: Any) -> dict[str, Any]:
    """The keyword arguments of :func:`edgerec.compile` for the CLI's compile options; none for
    an IR source (it is exported as it was compiled)."""
    if (source / "ir.json").is_file():
        return {}
    if dims == "full":
        dims_opt: int | str | None = None
    elif dims == "auto":
        dims_opt = "auto"
    else:
        try:
            dims_opt = int(dims)
        except ValueError:
            raise click.BadParameter(f"--dims must be a number, 'auto' or 'full', not {dims!r}") from None
    return dict(modes=("lookup", "history") if mode == "both" else (mode,), dims=dims_opt,
                energy=energy, prune_method=prune_method, quantize=quantize, data=data_path,
                max_recall_drop=max_recall_drop, recall_margin=recall_margin, min_agreement=min_agreement,
                force=force, min_item_count=min_item_count, distill_epochs=distill_epochs,
                history_fix=history_fix, search_budget=search_budget, **model_options)
