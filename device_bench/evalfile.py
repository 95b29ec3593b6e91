"""The evaluation file (``eval.json``) that travels inside an artifact.

It lets a device measure accuracy without the training data: a sample of held-out users, each
with the history the model may see, the items it should find, and the float model's own top-k
(so the device can report how far the compiled model drifted from its float reference).

Format (``format_version`` 1)::

    {"format": "edgerec-eval", "format_version": 1, "k": 20,
     "source": {...free-form provenance: dataset, split, checkpoint fingerprint...},
     "users": [
       {"user": "u42" | null,            # external user id (null: not a known user; lookup skipped)
        "history": ["i7", "i3", ...],    # external item ids, most recent last (history mode input)
        "test": ["i9", ...],             # held-out items (non-empty, no duplicates)
        "reference": {"history": [...], "lookup": [...]}}   # float model's top-k per mode
     ]}

Ids are strings or integers, exactly as in the artifact's ``users.json`` / ``items.json``.
``reference`` holds at most ``k`` distinct ids per mode, best first; a mode may be absent.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.artifact import default_mode

EVAL_FORMAT = "edgerec-eval"
EVAL_FORMAT_VERSION = 1
EVAL_MODES = ("history", "lookup")

Id = str | int


class EvalFileError(ValueError):
    """An evaluation file or its records are malformed; the message names what and where."""


@dataclass(frozen=True)
class EvalRecord:
    """One held-out user."""

    user: Id | None
    history: tuple[Id, ...]
    test: tuple[Id, ...]
    reference: dict[str, tuple[Id, ...]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"user": self.user, "history": list(self.history), "test": list(self.test),
                "reference": {m: list(v) for m, v in self.reference.items()}}


@dataclass(frozen=True)
class EvalSet:
    """A parsed evaluation file."""

    k: int
    records: tuple[EvalRecord, ...]
    source: dict[str, Any] = field(default_factory=dict)


def _is_id(x: Any) -> bool:
    return (isinstance(x, str) and x != "") or (isinstance(x, int) and not isinstance(x, bool))


def _ids(value: Any, where: str, *, unique: bool) -> tuple[Id, ...]:
    if not isinstance(value, list | tuple):
        raise EvalFileError(f"{where}: expected a list of ids, got {type(value).__name__}")
    for x in value:
        if not _is_id(x):
            raise EvalFileError(f"{where}: ids must be non-empty strings or integers, got {x!r}")
    if unique and len(set(value)) != len(value):
        raise EvalFileError(f"{where}: duplicate ids")
    return tuple(value)


def _record(raw: Any, i: int, k: int) -> EvalRecord:
    where = f"users[{i}]"
    if isinstance(raw, EvalRecord):
        raw = raw.to_json()
    if not isinstance(raw, Mapping):
        raise EvalFileError(f"{where}: expected an object, got {type(raw).__name__}")
    unknown = set(raw) - {"user", "history", "test", "reference"}
    if unknown:
        raise EvalFileError(f"{where}: unknown keys {sorted(unknown)}")
    user = raw.get("user")
    if user is not None and not _is_id(user):
        raise EvalFileError(f"{where}.user: expected an id or null, got {user!r}")
    history = _ids(raw.get("history", []), f"{where}.history", unique=False)
    test = _ids(raw.get("test"), f"{where}.test", unique=True) if "test" in raw else ()
    if not test:
        raise EvalFileError(f"{where}.test: at least one held-out item is required")
    if user is None and not history:
        raise EvalFileError(f"{where}: needs a user id or a non-empty history")
    ref_raw = raw.get("reference", {}) or {}
    if not isinstance(ref_raw, Mapping):
        raise EvalFileError(f"{where}.reference: expected an object of mode -> ids")
    reference: dict[str, tuple[Id, ...]] = {}
    for mode, ids in ref_raw.items():
        if mode not in EVAL_MODES:
            raise EvalFileError(f"{where}.reference: unknown mode {mode!r} (expected {EVAL_MODES})")
        got = _ids(ids, f"{where}.reference.{mode}", unique=True)
        if len(got) > k:
            raise EvalFileError(f"{where}.reference.{mode}: {len(got)} ids, more than k={k}")
        reference[mode] = got
    return EvalRecord(user=user, history=history, test=test, reference=reference)


def _check_k(k: Any) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise EvalFileError(f"k: expected a positive integer, got {k!r}")
    return k


def validate(doc: Any) -> EvalSet:
    """Parse and check a decoded ``eval.json`` document."""
    if not isinstance(doc, Mapping):
        raise EvalFileError("expected a JSON object at the top level")
    if doc.get("format") != EVAL_FORMAT:
        raise EvalFileError(f"format: expected {EVAL_FORMAT!r}, got {doc.get('format')!r}")
    if doc.get("format_version") != EVAL_FORMAT_VERSION:
        raise EvalFileError(f"format_version: this reader understands {EVAL_FORMAT_VERSION}, "
                            f"got {doc.get('format_version')!r}")
    k = _check_k(doc.get("k"))
    users = doc.get("users")
    if not isinstance(users, list) or not users:
        raise EvalFileError("users: expected a non-empty list")
    source = doc.get("source", {}) or {}
    if not isinstance(source, Mapping):
        raise EvalFileError("source: expected an object")
    return EvalSet(k=k, records=tuple(_record(r, i, k) for i, r in enumerate(users)),
                   source=dict(source))


def read_eval(path: str | os.PathLike[str]) -> EvalSet:
    """Read and validate an evaluation file; raises :class:`EvalFileError` naming the file."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvalFileError(f"{p}: no such evaluation file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EvalFileError(f"{p}: not a readable JSON file ({e})") from None
    try:
        return validate(doc)
    except EvalFileError as e:
        raise EvalFileError(f"{p}: {e}") from None


def encode_eval(records: Iterable[Mapping[str, Any] | EvalRecord], *, k: int = 20,
                source: Mapping[str, Any] | None = None, item_ids: Sequence[Id] | None = None,
                user_ids: Sequence[Id] | None = None) -> bytes:
    """Validate ``records`` and return the bytes of an evaluation file.

    For exporters that write files themselves (``export_ir(..., extra_files={"eval.json": ...})``).
    ``item_ids`` / ``user_ids`` (the artifact's id maps), when given, must contain every history
    and reference id and every user id, so a device never meets an id it cannot map. Held-out
    test items may be missing from ``item_ids`` (pruned items still count as misses).
    """
    k = _check_k(k)
    recs = [_record(r, i, k) for i, r in enumerate(records)]
    if not recs:
        raise EvalFileError("users: expected at least one record")
    if item_ids is not None:
        known = set(item_ids)
        for i, r in enumerate(recs):
            for name, ids in [("history", r.history), *((f"reference.{m}", v)
                                                         for m, v in r.reference.items())]:
                missing = [x for x in ids if x not in known]
                if missing:
                    raise EvalFileError(f"users[{i}].{name}: unknown item id {missing[0]!r}")
    if user_ids is not None:
        known_u = set(user_ids)
        for i, r in enumerate(recs):
            if r.user is not None and r.user not in known_u:
                raise EvalFileError(f"users[{i}].user: unknown user id {r.user!r}")
    doc = {"format": EVAL_FORMAT, "format_version": EVAL_FORMAT_VERSION, "k": k,
           "source": dict(source or {}), "users": [r.to_json() for r in recs]}
    try:
        return json.dumps(doc, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise EvalFileError(f"source: not JSON-serialisable ({e})") from None


def write_eval(path: str | os.PathLike[str], records: Iterable[Mapping[str, Any] | EvalRecord], *,
               k: int = 20, source: Mapping[str, Any] | None = None,
               item_ids: Sequence[Id] | None = None, user_ids: Sequence[Id] | None = None,
               overwrite: bool = False) -> Path:
    """Validate ``records`` (see :func:`encode_eval`) and write them atomically to ``path``."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise EvalFileError(f"{p}: already exists (pass overwrite=True to replace it)")
    data = encode_eval(records, k=k, source=source, item_ids=item_ids, user_ids=user_ids)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".eval-", suffix=".json", dir=p.parent)
    try:
        os.fchmod(fd, default_mode())  # not mkstemp's 0600: the file travels with the artifact
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def recall_ndcg(ranked: Sequence[Id], test: Sequence[Id], k: int) -> tuple[float, float]:
    """Recall@k (hits / |test|, the LightGCN convention) and binary NDCG@k of one ranked list."""
    relevant = set(test)
    top = list(ranked[:k])
    hits = [1.0 if x in relevant else 0.0 for x in top]
    recall = sum(hits) / len(relevant)
    dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits))
    idcg = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return recall, dcg / idcg


def agreement(ranked: Sequence[Id], reference: Sequence[Id], k: int) -> float:
    """Share of the reference top-k that the compiled model also returns in its top-k."""
    ref = list(reference[:k])
    if not ref:
        return float("nan")
    return len(set(ranked[:k]) & set(ref)) / len(ref)
