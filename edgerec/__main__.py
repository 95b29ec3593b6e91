"""``python -m edgerec``: the same as the ``edgerec`` command."""

from edgerec.cli import main

main()
