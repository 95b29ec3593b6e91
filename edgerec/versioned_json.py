"""Reading the JSON of an on-disk format (checkpoint, IR): its header with the name and version
checked, and its id maps.

One place, so every format says the same thing about a bad, foreign or newer file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgerec._version import __version__


def read_header(file: Path, fmt: str, version: int, what: str, error: type[Exception]) -> dict[str, Any]:
    """The object in ``file`` if its ``format`` is ``fmt`` and its ``format_version`` is
    ``version``; otherwise ``error`` with a one-line message naming the file and ``what`` it is."""
    try:
        meta = json.loads(file.read_text())
    except (ValueError, RecursionError) as e:  # bad JSON or UTF-8; a forged [[[[... nesting
        raise error(f"{file}: invalid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise error(f"{file}: not an edgerec {what}")
    if meta.get("format_version") != version:
        raise error(f"{file}: {what} format version {meta.get('format_version')!r} is not supported "
                    f"(edgerec {__version__} reads version {version})")
    return meta


def read_id_list(file: Path, text: str | bytes, error: type[Exception]) -> list[str]:
    """An id map (position = dense index) from ``file``'s ``text``: a JSON list of strings, or
    ``error`` with a one-line message naming the file."""
    try:
        ids = json.loads(text)
    except (ValueError, RecursionError) as e:  # bad JSON or UTF-8; a forged [[[[... nesting
        raise error(f"{file}: invalid JSON ({e})") from None
    if not isinstance(ids, list):
        raise error(f"{file}: expected a JSON list of ids, got {type(ids).__name__}")
    bad = next((n for n, x in enumerate(ids) if not isinstance(x, str)), None)
    if bad is not None:
        raise error(f"{file}: id #{bad} is {type(ids[bad]).__name__}, not a string")
    return ids
