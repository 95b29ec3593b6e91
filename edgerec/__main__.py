"""``python -m edgerec``: the same as the ``edgerec`` command."""

from edgerec.optional import run_cli

run_cli()
