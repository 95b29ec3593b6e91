"""The intermediate representation of a compiled recommender.

An :class:`IR` holds everything a device needs and nothing it does not: the embedding tables of
each serving mode (the graph is gone), how they are quantized, id maps, the popular-items
fallback, each known user's seen items, and the record of the passes that produced it. Passes
are functions ``IR -> (IR, PassReport)``; an IR is never mutated in place.

On disk it is a directory of ``ir.json`` plus ``.npy`` arrays (never pickled); see
``docs/architecture.md`` for the layout and the meaning of each table.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgerec.atomic_dir import atomic_directory
from edgerec.blocks import first_non_finite, release, row_blocks, save_npy
from edgerec.errors import IRError
from edgerec.versioned_json import read_header, read_id_list

# The names the IR shares with the artifact (modes, tables and their shapes, the programs'
# tables) are the artifact contract's, defined once in the runtime (the leaf every layer imports).
from runtime.artifact import (
    GATHERED,
    HISTORY_TABLES,
    MODES,
    SCORER_TABLES,
    TABLE_SHAPES,
    TABLES,
    is_finite_number,
    is_int,
    sha256_file,
)
from runtime.quant import half_codebook, half_scale, pq_codebook_shape, pq_decode

IR_FORMAT = "edgerec-ir"
IR_FORMAT_VERSION = 1
# The history program of each encoder kind: (aggregation, norm) and the tables it needs.
_PROGRAMS = {"lightgcn": ("sum", "rsqrt_len"), "sage": ("mean", "inv_len"),
             "gcn": ("sum", "rsqrt_len_plus_one"), "gat": ("attention", "softmax")}
HISTORY_SPECS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    kind: (*_PROGRAMS[kind], tables) for kind, tables in HISTORY_TABLES.items()}
MLP_TABLES = SCORER_TABLES["mlp"]
SCORERS = tuple(SCORER_TABLES)
_DTYPES = {"float32": np.float32, "float16": np.float16, "int8": np.int8}


@dataclass(frozen=True)
class Table:
    """One embedding table: values plus, for int8, a symmetric per-row scale.

    ``bits`` is 4 for an int4 table (docs/compression.md): values are int8 in [-7, 7] in memory,
    but a device stores two per byte, so :attr:`nbytes` counts ``ceil(d/2)`` bytes per row. The
    scale is float32 here; a model file stores it as float16 when that is exact
    (``runtime.quant.half_scale``), and :attr:`nbytes` counts it that way.

    A product-quantized table (``codebook`` set, ``int4-pq``'s gathered tables) holds uint8
    codes [rows, M], the [M, 256, S] centroids and ``width`` (the decoded width): row ``r`` is
    ``runtime.quant.pq_decode(values[r]) * scale[r]``; :attr:`shape` is the decoded shape.
    """

    values: np.ndarray
    scale: np.ndarray | None = None
    bits: int | None = None
    codebook: np.ndarray | None = None
    width: int | None = None

    @property
    def dtype(self) -> str:
        return str(self.values.dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        if self.codebook is not None:
            return (int(self.values.shape[0]), int(self.width or 0))
        return tuple(self.values.shape)

    @property
    def nbytes(self) -> int:
        scale = 0
        if self.scale is not None:
            scale = int(self.scale.size) * (2 if half_scale(self.scale) is not None else 4)
        if self.codebook is not None:
            book = self.codebook.size * (2 if half_codebook(self.codebook) is not None else 4)
            return int(self.values.nbytes) + scale + int(book)
        if self.bits == 4:
            rows, cols = self.values.shape
            return int(rows * ((cols + 1) // 2)) + scale
        return int(self.values.nbytes) + scale

    def _float_rows(self, values: np.ndarray) -> np.ndarray:
        if self.codebook is not None:
            return pq_decode(values, self.codebook, int(self.width or 0))
        return values.astype(np.float32)

    def dequantize(self) -> np.ndarray:
        """Float32 values (``q * scale`` for int8, decoded rows times the scale for codes)."""
        out = self._float_rows(self.values)
        if self.scale is not None:
            out *= self.scale[:, None]
        return out

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Float32 values of ``rows`` only, equal to ``dequantize()[rows]`` without the whole
        table."""
        out = self._float_rows(self.values[rows])
        release(self.values)  # scattered rows of a mapped table fault in whole readahead windows
        if self.scale is not None:
            out *= self.scale[rows][:, None]
        return out

    def blocks(self, rows: int | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(start, stop, float32 rows)`` over the table in row blocks (:mod:`edgerec.blocks`):
        how a step reads a table that may be a memory-mapped file."""
        for start, stop, view in row_blocks(self.values, rows):
            out = self._float_rows(view)
            if self.scale is not None:
                out *= self.scale[start:stop, None]
            yield start, stop, out


@dataclass(frozen=True)
class PassReport:
    """What one pass did and what it cost."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    bytes_before: int = 0
    bytes_after: int = 0
    metrics_before: dict[str, float] = field(default_factory=dict)
    metrics_after: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class IR:
    """A compiled recommender. Immutable: use :meth:`replace` to derive a new one."""

    num_users: int
    num_items: int
    tables: dict[str, Table]
    modes: tuple[str, ...]
    user_ids: list[str]
    item_ids: list[str]
    popular: np.ndarray
    seen_indptr: np.ndarray
    seen_indices: np.ndarray
    scorer: dict[str, Any] = field(default_factory=lambda: {"kind": "dot"})
    history: dict[str, Any] = field(default_factory=lambda: {"norm": "rsqrt_len"})
    model: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    passes: tuple[dict[str, Any], ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.tables["item"].shape[1])

    @property
    def nbytes(self) -> int:
        """Bytes of the tables a device needs for the IR's modes."""
        return sum(self.tables[n].nbytes for n in self.serving_tables())

    @property
    def history_kind(self) -> str:
        return str(self.history.get("kind", "lightgcn"))

    def serving_tables(self, modes: tuple[str, ...] | None = None) -> list[str]:
        """The tables a device needs to serve ``modes`` (default: every mode of the IR)."""
        modes = self.modes if modes is None else modes
        names = list(MLP_TABLES) if self.scorer.get("kind") == "mlp" else ["item"]
        if "lookup" in modes:
            names.append("user")
        if "history" in modes:
            names += ["history_item", "history_logit", "history_bias", "user_default"]
        return [n for n in names if n in self.tables]

    def seen(self, user: int) -> np.ndarray:
        return self.seen_indices[self.seen_indptr[user] : self.seen_indptr[user + 1]]

    def replace(self, **changes: Any) -> IR:
        return dataclasses.replace(self, **changes)

    def with_pass(self, report: PassReport, **changes: Any) -> IR:
        return dataclasses.replace(self, passes=(*self.passes, report.to_json()), **changes)

    def validate(self) -> None:
        """Raise :class:`IRError` on any inconsistency; a device must never see a bad table."""
        if not set(self.modes) <= set(MODES) or not self.modes:
            raise IRError(f"IR modes must be a non-empty subset of {MODES}, got {list(self.modes)}")
        if "item" not in self.tables:
            raise IRError("IR has no 'item' table")
        if "lookup" in self.modes and "user" not in self.tables:
            raise IRError("IR in lookup mode has no 'user' table")
        if "history" in self.modes and "history_item" not in self.tables:
            raise IRError("IR in history mode has no 'history_item' table")
        dim = self.tables["item"].shape[1] if self.tables["item"].values.ndim == 2 else -1
        self._validate_programs()
        h = self.tables["mlp_b1"].shape[1] if "mlp_b1" in self.tables and self.tables["mlp_b1"].values.ndim == 2 else -1
        sizes: dict[str | int, int] = {"U": self.num_users, "I": self.num_items, "d": dim, "h": h}
        for name, t in self.tables.items():
            if name not in TABLES:
                raise IRError(f"unknown table {name!r}")
            expected = tuple(sizes.get(x, x) for x in TABLE_SHAPES[name])
            rows = expected[0]
            if t.values.ndim != 2 or t.shape != expected:
                raise IRError(f"table {name!r} has shape {list(t.shape)}, expected {list(expected)}")
            if t.codebook is not None or t.width is not None:
                _validate_codes(name, t, rows)
                continue
            if t.dtype not in _DTYPES:
                raise IRError(f"table {name!r} has dtype {t.dtype}, expected one of {list(_DTYPES)}")
            if t.dtype == "int8":
                if t.scale is None or t.scale.shape != (rows,) or t.scale.dtype != np.float32:
                    raise IRError(f"int8 table {name!r} needs a float32 scale of shape [{rows}]")
                if not np.all(np.isfinite(t.scale)) or np.any(t.scale <= 0):
                    raise IRError(f"table {name!r} has a non-finite or non-positive scale")
                if t.bits not in (None, 4):
                    raise IRError(f"int8 table {name!r} has bits {t.bits!r}; only 4 (int4) may be set")
                if t.bits == 4 and t.values.size and max(
                        int(np.abs(b.astype(np.int16)).max()) for _, _, b in row_blocks(t.values)) > 7:
                    raise IRError(f"int4 table {name!r} has values outside [-7, 7]")
            elif t.bits is not None:
                raise IRError(f"table {name!r} is {t.dtype} but declares bits {t.bits!r}")
            elif t.scale is not None:
                raise IRError(f"table {name!r} is {t.dtype} but has a scale")
            elif first_non_finite(t.values) is not None:
                raise IRError(f"table {name!r} contains NaN or Inf")
        if len(self.user_ids) != self.num_users or len(self.item_ids) != self.num_items:
            raise IRError("id maps do not match the numbers of users and items")
        if self.popular.dtype != np.int32 or self.popular.ndim != 1 or (
            self.popular.size and (self.popular.min() < 0 or self.popular.max() >= self.num_items)
        ):
            raise IRError("popular items must be int32 item indices in range")
        ip, ix = self.seen_indptr, self.seen_indices
        if ip.dtype != np.int64 or ix.dtype != np.int32 or ip.shape != (self.num_users + 1,):
            raise IRError("seen items must be CSR int64 indptr [users+1] and int32 indices")
        if ip[0] != 0 or ip[-1] != ix.size or np.any(np.diff(ip) < 0):
            raise IRError("seen-items indptr is not monotone or does not cover the indices")
        if ix.size and (ix.min() < 0 or ix.max() >= self.num_items):
            raise IRError("seen-items indices out of range")

    def _validate_programs(self) -> None:
        """The scorer and the history program are data: check they name a known program whose
        tables are all present."""
        if not isinstance(self.scorer, dict) or self.scorer.get("kind") not in SCORERS:
            raise IRError(f"scorer must be one of {SCORERS}, got {self.scorer!r}")
        mlp = [n for n in MLP_TABLES if n in self.tables]
        if self.scorer["kind"] == "mlp":
            if len(mlp) != len(MLP_TABLES):
                raise IRError(f"an MLP scorer needs the tables {list(MLP_TABLES)}")
            if self.scorer.get("activation", "relu") != "relu":
                raise IRError("the MLP scorer's activation must be 'relu'")
        elif mlp:
            raise IRError(f"tables {mlp} belong to an MLP scorer, but the scorer is {self.scorer['kind']!r}")
        kind = self.history_kind
        if not isinstance(self.history, dict) or kind not in HISTORY_SPECS:
            raise IRError(f"history kind must be one of {list(HISTORY_SPECS)}, got {self.history!r}")
        aggregation, norm, needed = HISTORY_SPECS[kind]
        if self.history.get("norm") != norm or self.history.get("aggregation", aggregation) != aggregation:
            raise IRError(f"a {kind} history program has aggregation {aggregation!r} and norm {norm!r}, "
                          f"got {self.history!r}")
        slope = self.history.get("negative_slope", 0.2)  # scoring and exporters float() it
        if not is_finite_number(slope):
            raise IRError(f"history negative_slope must be a finite number, got {slope!r}")
        if "history" in self.modes:
            missing = [n for n in needed if n not in self.tables]
            if missing:
                raise IRError(f"IR in {kind} history mode lacks tables {missing}")
        if ("user_self" in self.tables) != ("user_logit" in self.tables):
            raise IRError("tables 'user_self' and 'user_logit' come together (a known user's GAT self-loop)")


def _validate_codes(name: str, t: Table, rows: int) -> None:
    """A product-quantized table: uint8 codes [rows, M], a finite [M, 256, S] codebook whose
    subspaces cover ``width`` (``runtime.quant.pq_sizes``), a finite non-negative scale."""
    if name not in GATHERED:
        raise IRError(f"table {name!r} is product-quantized; only the gathered tables may be")
    book, m = t.codebook, t.values.shape[1]
    if t.dtype != "uint8" or book is None or t.width is None or t.bits is not None:
        raise IRError(f"product-quantized table {name!r} needs uint8 codes, a codebook and a width")
    if book.dtype != np.float32 or book.shape != pq_codebook_shape(t.width, m):
        raise IRError(f"table {name!r}: codebook {list(book.shape)} does not fit {m} codes of a "
                      f"{t.width}-wide row")
    if not np.all(np.isfinite(book)):
        raise IRError(f"table {name!r} has a non-finite codebook")
    if t.scale is None or t.scale.shape != (rows,) or t.scale.dtype != np.float32 or not (
            np.all(np.isfinite(t.scale)) and np.all(t.scale >= 0)):
        raise IRError(f"product-quantized table {name!r} needs a finite, non-negative float32 "
                      f"scale of shape [{rows}]")


# ---------------------------------------------------------------------------------------------
# Disk format


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def save_ir(ir: IR, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write ``ir`` to a directory atomically: built beside ``path``, then renamed."""
    ir.validate()
    path = Path(path)
    if path.exists() and not overwrite:
        raise IRError(f"{path} exists (use --overwrite to replace it)")
    with atomic_directory(path) as tmp:
        tables: dict[str, Any] = {}
        for name, t in sorted(ir.tables.items()):
            save_npy(tmp / f"{name}.npy", t.values)
            entry: dict[str, Any] = {"file": f"{name}.npy", "dtype": t.dtype, "shape": list(t.shape),
                                     "scale_file": None, "sha256": sha256_file(tmp / f"{name}.npy")}
            if t.scale is not None:
                np.save(tmp / f"{name}.scale.npy", t.scale, allow_pickle=False)
                entry["scale_file"] = f"{name}.scale.npy"
                entry["scale_sha256"] = sha256_file(tmp / f"{name}.scale.npy")
            if t.bits is not None:
                entry["bits"] = t.bits
            if t.codebook is not None:
                np.save(tmp / f"{name}.codebook.npy", t.codebook, allow_pickle=False)
                entry["codebook_file"] = f"{name}.codebook.npy"
                entry["codebook_sha256"] = sha256_file(tmp / f"{name}.codebook.npy")
                entry["width"] = t.width
            tables[name] = entry
        np.save(tmp / "popular.npy", ir.popular, allow_pickle=False)
        np.save(tmp / "seen_indptr.npy", ir.seen_indptr, allow_pickle=False)
        np.save(tmp / "seen_indices.npy", ir.seen_indices, allow_pickle=False)
        (tmp / "users.json").write_text(json.dumps(ir.user_ids))
        (tmp / "items.json").write_text(json.dumps(ir.item_ids))
        files = {f: sha256_file(tmp / f) for f in
                 ("popular.npy", "seen_indptr.npy", "seen_indices.npy", "users.json", "items.json")}
        meta = {
            "format": IR_FORMAT, "format_version": IR_FORMAT_VERSION,
            "num_users": ir.num_users, "num_items": ir.num_items, "dim": ir.dim,
            "modes": list(ir.modes), "scorer": ir.scorer, "history": ir.history,
            "tables": tables, "files": files, "model": ir.model, "provenance": ir.provenance,
            "passes": list(ir.passes), "metrics": ir.metrics,
        }
        (tmp / "ir.json").write_text(json.dumps(meta, indent=2, default=_json_default))
    return path


def _load_array(root: Path, name: str, expected_sha: str | None) -> np.ndarray:
    f = root / name
    if not f.is_file():
        raise IRError(f"{root}: missing array file {name}")
    if expected_sha is not None and sha256_file(f) != expected_sha:
        raise IRError(f"{root}: {name} does not match its recorded SHA-256 (corrupt or edited)")
    try:
        # Mapping first checks the header's shape against the file's size: a forged header must
        # not make numpy allocate what the file does not hold. The copy detaches from the file.
        return np.array(np.load(f, mmap_mode="r", allow_pickle=False))
    except Exception as e:  # numpy raises several types for truncated or forged files
        raise IRError(f"{root}: cannot read {name}: {e.__class__.__name__}: {e}".splitlines()[0]) from None


def load_ir(path: str | os.PathLike[str]) -> IR:
    """Load and fully validate an IR directory; any defect raises :class:`IRError` (one line)."""
    root = Path(path)
    meta_file = root / "ir.json"
    if not meta_file.is_file():
        raise IRError(f"{root} is not an edgerec IR directory (no ir.json)")
    meta = read_header(meta_file, IR_FORMAT, IR_FORMAT_VERSION, "IR", IRError)
    _check_meta(meta_file, meta)
    try:
        tables: dict[str, Table] = {}
        for name, e in meta["tables"].items():
            values = _load_array(root, e["file"], e["sha256"])
            codebook = width = None
            if e.get("codebook_file"):
                codebook = _load_array(root, e["codebook_file"], e.get("codebook_sha256"))
                width = int(e["width"])
            shape = list(values.shape) if codebook is None else [values.shape[0], width]
            if str(values.dtype) != e["dtype"] or shape != list(e["shape"]):
                raise IRError(f"{root}: table {name!r} is {values.dtype}{shape}, "
                              f"ir.json says {e['dtype']}{e['shape']}")
            scale = None
            if e.get("scale_file"):
                scale = _load_array(root, e["scale_file"], e.get("scale_sha256"))
            bits = e.get("bits")
            tables[name] = Table(values, scale, None if bits is None else int(bits), codebook, width)
        files = meta["files"]
        ir = IR(
            num_users=int(meta["num_users"]), num_items=int(meta["num_items"]), tables=tables,
            modes=tuple(meta["modes"]), user_ids=_read_ids(root, "users.json", files),
            item_ids=_read_ids(root, "items.json", files),
            popular=_load_array(root, "popular.npy", files.get("popular.npy")),
            seen_indptr=_load_array(root, "seen_indptr.npy", files.get("seen_indptr.npy")),
            seen_indices=_load_array(root, "seen_indices.npy", files.get("seen_indices.npy")),
            scorer=dict(meta["scorer"]), history=dict(meta.get("history", {"norm": "rsqrt_len"})),
            model=dict(meta.get("model", {})),
            provenance=dict(meta.get("provenance", {})), passes=tuple(meta.get("passes", [])),
            metrics=dict(meta.get("metrics", {})),
        )
    except IRError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise IRError(f"{meta_file}: malformed IR metadata ({e.__class__.__name__}: {e})") from None
    try:
        ir.validate()
    except IRError as e:  # validate() also serves in-memory IRs, so its messages name no file
        raise IRError(f"{root}: {e}") from None
    return ir


def _is_count(v: Any) -> bool:
    """A non-negative JSON integer."""
    return is_int(v) and v >= 0


def _is_plain_name(v: Any) -> bool:
    """A file name inside the IR directory: ir.json must not point at files elsewhere."""
    return isinstance(v, str) and v not in ("", ".", "..") and "/" not in v and "\\" not in v


def _check_meta(meta_file: Path, meta: dict[str, Any]) -> None:
    """Type-check every field the loader, :meth:`IR.validate` and :func:`describe` read, so a
    hand-edited ir.json fails here with its name instead of an AttributeError later."""
    for key in ("num_users", "num_items"):
        if not _is_count(meta.get(key)):
            raise IRError(f"{meta_file}: {key!r} must be a non-negative integer, got {meta.get(key)!r}"[:300])
    modes = meta.get("modes")
    if not isinstance(modes, list) or not all(isinstance(m, str) for m in modes):
        raise IRError(f"{meta_file}: 'modes' must be a list of strings, got {modes!r}"[:300])
    for key in ("scorer", "tables", "files", "history", "model", "provenance", "metrics"):
        if (key in meta or key in ("scorer", "tables", "files")) and not isinstance(meta.get(key), dict):
            raise IRError(f"{meta_file}: {key!r} must be an object, got {type(meta.get(key)).__name__}")
    if not all(isinstance(v, str) for v in meta["files"].values()):
        raise IRError(f"{meta_file}: 'files' must map file names to SHA-256 strings")
    _check_passes(meta_file, meta.get("passes", []))
    for name, entry in meta["tables"].items():
        _check_table_entry(meta_file, name, entry)


def _check_passes(meta_file: Path, passes: Any) -> None:
    """The pass log: a list of reports, each named (``inspect`` prints the names)."""
    if not isinstance(passes, list):
        raise IRError(f"{meta_file}: 'passes' must be a list of pass reports, got {type(passes).__name__}")
    for n, p in enumerate(passes):
        if not isinstance(p, dict) or not isinstance(p.get("name"), str):
            raise IRError(f"{meta_file}: passes[{n}] must be a report with a string 'name', got {p!r}"[:300])


def _check_table_entry(meta_file: Path, name: str, e: Any) -> None:
    """One entry of ``tables``: where the arrays are, their hashes, dtype, shape and bits."""
    where = f"{meta_file}: table {name!r}"
    if name not in TABLES:
        raise IRError(f"{meta_file}: unknown table {name!r}")
    if not isinstance(e, dict):
        raise IRError(f"{where} must be an object, got {type(e).__name__}")
    if not _is_plain_name(e.get("file")) or not isinstance(e.get("sha256"), str):
        raise IRError(f"{where} needs a plain 'file' name and its 'sha256'")
    if e.get("scale_file") is not None and not _is_plain_name(e["scale_file"]):
        raise IRError(f"{where} has a bad 'scale_file' {e['scale_file']!r}"[:300])
    if e.get("scale_sha256") is not None and not isinstance(e["scale_sha256"], str):
        raise IRError(f"{where} has a bad 'scale_sha256'")
    if not isinstance(e.get("dtype"), str):
        raise IRError(f"{where} has no string 'dtype'")
    shape = e.get("shape")
    if not isinstance(shape, list) or not all(_is_count(x) for x in shape):
        raise IRError(f"{where} has a bad 'shape' {shape!r}"[:300])
    if e.get("bits") is not None and not _is_count(e["bits"]):
        raise IRError(f"{where} has a bad 'bits' {e['bits']!r}"[:300])
    if e.get("codebook_file") is not None and not (
            _is_plain_name(e["codebook_file"]) and isinstance(e.get("codebook_sha256"), str)
            and _is_count(e.get("width"))):
        raise IRError(f"{where} needs a plain 'codebook_file', its 'codebook_sha256' and a 'width'")


def _read_ids(root: Path, name: str, files: dict[str, str]) -> list[str]:
    """An id map (position = dense index): a JSON list of strings; errors name the file."""
    return read_id_list(root / name, _read_checked(root, name, files), IRError)


def _read_checked(root: Path, name: str, files: dict[str, str]) -> bytes:
    """The bytes of ``root/name`` once its recorded SHA-256 matches (decoding is the reader's)."""
    f = root / name
    if not f.is_file():
        raise IRError(f"{root}: missing {name}")
    if name in files and sha256_file(f) != files[name]:
        raise IRError(f"{root}: {name} does not match its recorded SHA-256 (corrupt or edited)")
    return f.read_bytes()


def describe(ir: IR) -> dict[str, Any]:
    """A JSON-able summary for ``edgerec inspect``."""
    return {
        "users": ir.num_users, "items": ir.num_items, "dim": ir.dim, "modes": list(ir.modes),
        "scorer": ir.scorer, "history": ir.history, "model": ir.model,
        "tables": {n: {"shape": list(t.shape), "dtype": _storage(t), "bytes": t.nbytes}
                   for n, t in sorted(ir.tables.items())},
        "serving_bytes": ir.nbytes,
        "passes": [p.get("name") for p in ir.passes],
        "metrics": ir.metrics,
    }


def _storage(t: Table) -> str:
    if t.codebook is not None:
        return f"pq{t.values.shape[1]}x8"
    return "int4" if t.bits == 4 else t.dtype
