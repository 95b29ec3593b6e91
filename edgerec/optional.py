"""A missing optional dependency is one line naming what to install, never a traceback.

The extras that provide each module are read from edgerec's own install metadata (the
``Requires-Dist`` lines pip wrote from ``pyproject.toml``), so this module never repeats the
dependency lists. :func:`run_cli` is the ``edgerec`` command: it imports the CLI itself inside
the guard, because the CLI needs ``click``, which only the ``compiler`` extra installs.
"""

from __future__ import annotations

import json
import os
import re
import sys
from importlib import metadata
from pathlib import Path

DIST = "edgerec"
# The CLI is the workstation's: when a module comes with several extras, name this one.
CLI_EXTRA = "compiler"
# Distributions whose import name is not their normalised name (deptry's map says the same).
MODULE_OF = {"tensorflow_cpu": "tensorflow", "faiss_cpu": "faiss", "import_linter": "importlinter"}
_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def module_of(requirement_name: str) -> str:
    """The top-level import name of a distribution, as pip normalises names.

    Args:
        requirement_name: a distribution name as written in a requirement (``torch-geometric``).
    """
    name = re.sub(r"[-_.]+", "_", requirement_name).lower()
    return MODULE_OF.get(name, name)


def extras_providing(module: str, requires: list[str]) -> list[str]:
    """The extras of edgerec that install ``module`` (``""`` for the bare install), in
    declaration order.

    Args:
        module: a top-level import name (``torch``).
        requires: edgerec's ``Requires-Dist`` lines (:func:`importlib.metadata.requires`).
    """
    out: list[str] = []
    for req in requires:
        name = _NAME.match(req)
        if name is None or name.group(1).lower() == DIST or module_of(name.group(1)) != module:
            continue
        extra = _EXTRA.search(req)
        key = extra.group(1) if extra else ""
        if key not in out:
            out.append(key)
    return out


def _install_target() -> str:
    """What to give pip: the checkout edgerec was installed from (``-e PATH`` if editable), if
    it is still there, else the distribution's name."""
    try:
        direct = json.loads(metadata.distribution(DIST).read_text("direct_url.json") or "{}")
    except (metadata.PackageNotFoundError, ValueError):
        return f'"{DIST}[{{}}]"'
    url = direct.get("url", "")
    if "dir_info" in direct and url.startswith("file://"):
        path = Path(url[len("file://"):])
        if (path / "pyproject.toml").is_file():
            flag = "-e " if direct["dir_info"].get("editable") else ""
            return f'{flag}"{path}[{{}}]"'
    return f'"{DIST}[{{}}]"'


def install_hint(module: str, requires: list[str], prefer: str = CLI_EXTRA) -> str | None:
    """The pip command that installs ``module`` with edgerec, or None when no extra declares it.

    Args:
        module: a module name, dotted or not (``torch_geometric.nn``).
        requires: edgerec's ``Requires-Dist`` lines (:func:`importlib.metadata.requires`).
        prefer: the extra to name when several install ``module``.
    """
    extras = [e for e in extras_providing(module.split(".")[0], requires) if e != "all"]
    if not extras:
        return None
    extra = prefer if prefer in extras else extras[0]
    return "pip install " + _install_target().format(extra).replace("[]", "")


def missing_message(err: ModuleNotFoundError) -> str:
    """One line for a module that is not installed: which one, and the command that installs it.

    Args:
        err: the import's error (its ``name`` is the missing module).
    """
    name = err.name or "?"
    top = name.split(".")[0]
    if top in (DIST, "exporters", "runtime", "device_bench"):
        return f"edgerec's own module '{name}' is missing: reinstall edgerec"
    try:
        requires = metadata.requires(DIST) or []
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return f"'{top}' is not installed; in the checkout: pip install -e \".[all]\""
    hint = install_hint(name, requires)
    if hint is None:
        return f"'{top}' is not installed and edgerec does not declare it: please report this"
    return f"'{top}' is not installed; {hint}"


def run_cli() -> None:
    """The ``edgerec`` command: :func:`edgerec.cli.main`, with a missing module as one line."""
    try:
        from edgerec.cli import main

        main()
    except ModuleNotFoundError as e:
        if os.environ.get("EDGEREC_DEBUG"):
            raise
        print(f"error: {missing_message(e)}", file=sys.stderr)
        sys.exit(2)
