"""The ``edgerec`` command line: a thin layer over the Python API (:mod:`edgerec.api`).

Each command parses its options, calls one API function and prints. Every user-fixable problem
surfaces as one line on stderr and exit status 2; Ctrl-C exits 130. ``EDGEREC_DEBUG=1`` shows
the traceback instead. Nothing is written unless the command succeeds (outputs are built beside
the target and renamed).
"""

from __future__ import annotations

import os
import sys

import click

from edgerec._version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgerec")
def cli() -> None:
    """edgerec: compile graph-neural-network recommenders into small, verified on-device models."""


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
        from edgerec.cli._options import pass_hint

        what = "" if isinstance(e, EdgerecError | _RtErr) else f"{e.__class__.__name__}: "
        click.echo("error: " + what + " ".join(str(e).split()) + pass_hint(e), err=True)
        sys.exit(2)


# each module registers its commands on ``cli``
from edgerec.cli import bench, compile, data, demo, inspect, pyg_import, web  # noqa: E402,F401
