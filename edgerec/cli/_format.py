"""How the CLI prints: JSON, rich tables, byte counts, and the numeric option types."""

from __future__ import annotations

import json
import sys
from typing import Any

import click


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def table(rows: list[dict[str, Any]], title: str | None = None) -> None:
    """Print ``rows`` (dicts with the same keys) as a table; the first column left-aligned."""
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


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return str(n)


SEED = click.IntRange(0, 2**32 - 1)


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses nan and inf: NaN compares false with every bound."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from math import isfinite

        rv = super().convert(value, param, ctx)
        if not isfinite(rv):
            self.fail(f"{rv} is not a finite number.", param, ctx)
        return rv


class ThreadCount(click.ParamType):
    """Interpreter threads: 1 to the runtime's cap, which is imported only when the option is
    given (the runtime package imports numpy, which ``edgerec --help`` must not pay for)."""

    name = "integer"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from runtime import MAX_THREADS

        return click.IntRange(1, MAX_THREADS).convert(value, param, ctx)
