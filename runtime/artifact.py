"""The artifact contract: manifest schema, hashes, and a validated in-memory view of a directory.

Everything a device reads is checked here before any of it reaches an interpreter: the manifest
against the schema of ``docs/architecture.md``, the SHA-256 of every file it lists, the id maps,
the popular-items list and the seen-items CSR. The exporters use the same module to write the
contract (:func:`build_manifest`, :func:`write_manifest`), so writer and reader cannot drift.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from runtime.errors import ArtifactError, ChecksumError
from runtime.idmap import DecimalRange, decimal_range_of
from runtime.quant import ProductCodes, pq_codebook_shape
from runtime.schema import first_error, manifest_schema

FORMAT = "edgerec-artifact"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TARGETS = ("tflite", "onnx", "numpy")
MODES = ("lookup", "history")
TABLES = ("item", "user", "history_item", "user_base",
          # sage / gcn / gat history programs and the MLP scorer (docs/architecture.md)
          "user_default", "history_logit", "history_bias", "user_self", "user_logit",
          "mlp_item", "mlp_w1_user", "mlp_b1", "mlp_w2", "mlp_b2")
# The tables a dot-scorer model only gathers rows of (never scores whole): the ones product codes
# may hold.
GATHERED = ("user", "history_item")
# Rows x columns of each numpy-target table: "U" users, "I" items, "d" dim, "h" MLP hidden width.
TABLE_SHAPES: dict[str, tuple[str | int, str | int]] = {
    "item": ("I", "d"), "user": ("U", "d"), "history_item": ("I", "d"), "user_base": ("U", "d"),
    "user_default": (1, "d"), "history_logit": ("I", 1), "history_bias": (1, "d"),
    "user_self": ("U", "d"), "user_logit": ("U", 2), "mlp_item": ("I", "h"),
    "mlp_w1_user": ("d", "h"), "mlp_b1": (1, "h"), "mlp_w2": ("h", 1), "mlp_b2": (1, 1),
}
# The manifest's optional ``scorer`` / ``history`` blocks name the program the model computes
# (absent: a dot product and the LightGCN fold). Interpreted targets carry it in their graph;
# the numpy target's reference backend runs it from these tables.
SCORER_TABLES = {"dot": ("item",), "mlp": ("mlp_item", "mlp_w1_user", "mlp_b1", "mlp_w2", "mlp_b2")}
HISTORY_TABLES = {"lightgcn": ("history_item",), "sage": ("history_item", "user_default"),
                  "gcn": ("history_item", "user_default"),
                  "gat": ("history_item", "history_logit", "history_bias")}
MASK = np.float32(-1e9)
"""What the models add to an excluded item's score (before an int8 row scale: divided by the
smallest scale, so the product stays at or below it)."""
MASKED_SCORE = -1e8
"""Scores at or below this are masked items; the runtime never returns them."""

_MAX_MANIFEST_BYTES = 16 << 20


def index_dtype(num_items: int) -> np.dtype:
    """The smallest dtype for item indices ``[0, num_items]`` (``pad_index`` included): uint16
    halves the seen-items lists of catalogues up to 65,535 items (Gowalla: 2.9 -> 1.4 MB on
    disk and in memory), int32 above."""
    return np.dtype(np.uint16 if num_items < 1 << 16 else np.int32)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (model files can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Signatures


def default_signatures(target: str, modes: list[str] | tuple[str, ...], k: int,
                       history_capacity: int, exclude_capacity: int,
                       external_data: str | None = None) -> dict[str, Any]:
    """The ``signatures`` block the contract fixes for ``target`` (file names, keys, I/O).

    ``external_data``: the file every mode's model reads its tables from (the ONNX target's
    ``tables.bin``, shared by the modes), recorded in each signature so that a runtime fetches
    and hashes it with the model file."""
    out: dict[str, Any] = {}
    for mode in modes:
        if mode == "lookup":
            inputs = {"user": _spec("int32", [1]), "exclude": _spec("int32", [exclude_capacity])}
        else:
            # Not "items": an ONNX graph cannot have an input and an output of the same name.
            inputs = {"history": _spec("int32", [history_capacity]), "length": _spec("int32", [1])}
        file = {"tflite": "model.tflite", "onnx": f"{mode}.onnx"}.get(target)
        out[mode] = {"file": file, "key": mode, "inputs": inputs,
                     "outputs": {"scores": _spec("float32", [k]), "items": _spec("int32", [k])}}
        if external_data is not None:
            out[mode]["external_data"] = external_data
    return out


def model_files(manifest: dict[str, Any]) -> list[str]:
    """The files an interpreter reads to score, sorted: each signature's model file and the
    external data it names (ONNX ``tables.bin``), and a numpy target's tables and scales. A
    manifest not validated yet is read as far as it goes (device_bench describes what it
    measures before loading it)."""
    files = {f for s in (manifest.get("signatures") or {}).values() if isinstance(s, dict)
             for f in (s.get("file"), s.get("external_data")) if isinstance(f, str) and f}
    files |= {f for t in (manifest.get("tables") or {}).values() if isinstance(t, dict)
              for f in (t.get("file"), t.get("scale_file"), t.get("codebook_file"))
              if isinstance(f, str) and f}
    return sorted(files)


def _spec(dtype: str, shape: list[int]) -> dict[str, Any]:
    return {"dtype": dtype, "shape": list(shape)}


def expected_io(manifest: dict[str, Any], mode: str) -> dict[str, dict[str, tuple[str, tuple[int, ...]]]]:
    """``{"inputs"|"outputs": {name: (dtype, shape)}}`` a model must expose for ``mode``."""
    sig = default_signatures(manifest["target"], [mode], manifest["k"],
                             manifest["history_capacity"], manifest["exclude_capacity"])[mode]
    return {side: {n: (s["dtype"], tuple(s["shape"])) for n, s in sig[side].items()}
            for side in ("inputs", "outputs")}


def check_model_io(manifest: dict[str, Any], mode: str,
                   actual: dict[str, dict[str, tuple[str, tuple[int, ...]]]], where: str) -> None:
    """Compare the I/O an interpreter reports for ``mode`` with the contract; raise on mismatch."""
    want = expected_io(manifest, mode)
    for side in ("inputs", "outputs"):
        got = actual.get(side, {})
        if set(got) != set(want[side]):
            raise ArtifactError(f"{where}: signature {mode!r} has {side} {sorted(got)}, "
                                f"the manifest says {sorted(want[side])}")
        for name, (dtype, shape) in want[side].items():
            g_dtype, g_shape = got[name]
            if g_dtype != dtype or tuple(g_shape) != shape:
                raise ArtifactError(f"{where}: signature {mode!r} {side[:-1]} {name!r} is "
                                    f"{g_dtype}{list(g_shape)}, the manifest says {dtype}{list(shape)}")


# ---------------------------------------------------------------------------------------------
# Manifest schema


def is_int(v: Any) -> bool:
    """A JSON integer (``true`` is a bool in Python's eyes, not a count)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_finite_number(v: Any) -> bool:
    """A finite JSON number (not a bool, NaN or an infinity)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def validate_manifest(m: Any) -> None:
    """Raise :class:`ArtifactError` unless ``m`` is a manifest this runtime can serve.

    The rules are ``runtime/manifest.schema.json``, the contract's one machine-readable
    description (the browser runtime validates against the same file): the schema, the
    consistency of its numbers (``k <= num_items``, ``pad_index``, the signatures' shapes), and
    that every file it references is listed, with a SHA-256, in ``files``, as a relative path
    inside the artifact. It does not touch the disk.
    """
    try:
        error = first_error(m, manifest_schema())
    except RecursionError:  # a pathologically nested value compared against a const
        error = "nested too deeply"
    if error is not None:
        raise ArtifactError(f"manifest: {error}")


def program(m: dict[str, Any]) -> tuple[str, str]:
    """(scorer kind, history kind) of a validated manifest, from its optional ``scorer`` and
    ``history`` blocks: ``{"kind": "dot"}`` or ``{"kind": "mlp", "hidden": h, "activation":
    "relu"}``; ``{"kind": "lightgcn"|"sage"|"gcn"|"gat", ...}`` (gat: ``negative_slope``).
    Absent blocks mean a dot product and the LightGCN fold."""
    return (str(m.get("scorer", {}).get("kind", "dot")),
            str(m.get("history", {}).get("kind", "lightgcn")))


def build_manifest(*, target: str, num_users: int, num_items: int, dim: int, k: int,
                   history_capacity: int, exclude_capacity: int, modes: list[str] | tuple[str, ...],
                   weights: str, activations: str, seen: bool = True, eval_file: str | None = None,
                   tables: dict[str, dict[str, str | None]] | None = None,
                   metrics: dict[str, Any] | None = None, toolkit: dict[str, Any] | None = None,
                   source: dict[str, Any] | None = None, scorer: dict[str, Any] | None = None,
                   history: dict[str, Any] | None = None,
                   external_data: str | None = None) -> dict[str, Any]:
    """A manifest with the contract's fixed names filled in; ``files`` is left for
    :func:`write_manifest`, which hashes the directory. ``scorer``/``history`` are written only
    when they differ from the defaults (dot product, LightGCN fold); ``external_data`` (the
    file the models read their tables from, see :func:`default_signatures`) only when given."""
    modes = list(modes)
    m: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "target": target,
        "num_users": num_users, "num_items": num_items, "dim": dim, "k": k,
        "history_capacity": history_capacity, "exclude_capacity": exclude_capacity,
        "pad_index": num_items, "modes": modes,
        "signatures": default_signatures(target, modes, k, history_capacity, exclude_capacity,
                                         external_data),
        "quantization": {"weights": weights, "activations": activations},
        "id_maps": {"users": "users.json", "items": "items.json"},
        "popular": "popular.npy",
        "seen": {"indptr": "seen_indptr.npy", "indices": "seen_indices.npy"} if seen else None,
        "eval": eval_file,
        "metrics": metrics or {}, "toolkit": toolkit or {}, "source": source or {},
        "files": {},
    }
    if target == "numpy":
        m["tables"] = tables or {}
    if scorer is not None and scorer.get("kind", "dot") != "dot":
        m["scorer"] = dict(scorer)
    if history is not None and history.get("kind", "lightgcn") != "lightgcn":
        m["history"] = dict(history)
    return m


def default_mode(directory: bool = False) -> int:
    """The permissions ``open``/``mkdir`` would give under the current umask: temporary files
    and directories (0600/0700) are renamed into place, and an artifact must stay readable by
    the service that loads it."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def write_manifest(directory: str | os.PathLike[str], manifest: dict[str, Any]) -> dict[str, Any]:
    """Hash every file under ``directory`` into ``files``, validate, write ``manifest.json``
    atomically, and return the completed manifest (the input is not modified)."""
    root = Path(directory)
    m = json.loads(json.dumps(manifest))  # a deep copy that is also proof it is JSON-able
    m["files"] = {p.relative_to(root).as_posix(): sha256_file(p)
                  for p in sorted(root.rglob("*")) if p.is_file() and p.relative_to(root).as_posix() != MANIFEST}
    validate_manifest(m)
    fd, tmp = tempfile.mkstemp(prefix=".manifest.", dir=root)
    try:
        os.fchmod(fd, default_mode())
        with os.fdopen(fd, "w") as f:
            json.dump(m, f, indent=2, sort_keys=False)
        os.replace(tmp, root / MANIFEST)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return m


# ---------------------------------------------------------------------------------------------
# Reading an artifact


@dataclass(frozen=True)
class Artifact:
    """A validated artifact directory: manifest, id maps, fallback and seen items, tables."""

    root: Path
    manifest: dict[str, Any]
    user_ids: list[str | int] | DecimalRange
    item_ids: list[str | int] | DecimalRange
    popular: np.ndarray
    seen_indptr: np.ndarray | None
    seen_indices: np.ndarray | None
    tables: dict[str, tuple[np.ndarray | ProductCodes, np.ndarray | None]] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return str(self.manifest["target"])

    @property
    def num_items(self) -> int:
        return int(self.manifest["num_items"])

    @property
    def num_users(self) -> int:
        return int(self.manifest["num_users"])

    def path(self, name: str) -> Path:
        return self.root / name

    def seen(self, user: int) -> np.ndarray:
        """Dense item indices the user saw in training (empty if the artifact ships none)."""
        if self.seen_indptr is None or self.seen_indices is None:
            return np.zeros(0, np.int32)
        return self.seen_indices[self.seen_indptr[user]: self.seen_indptr[user + 1]]


def read_manifest(root: Path) -> dict[str, Any]:
    """Parse ``manifest.json`` (size-capped, strict JSON) and validate its schema."""
    f = root / MANIFEST
    if not root.is_dir():
        raise ArtifactError(f"{root}: not an artifact directory")
    if not f.is_file():
        raise ArtifactError(f"{root}: no {MANIFEST} (not an edgerec artifact)")
    if f.stat().st_size > _MAX_MANIFEST_BYTES:
        raise ArtifactError(f"{f}: larger than {_MAX_MANIFEST_BYTES} bytes")

    def no_constants(name: str) -> Any:
        raise ValueError(f"non-standard JSON constant {name}")

    try:
        m = json.loads(f.read_bytes().decode("utf-8"), parse_constant=no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise ArtifactError(f"{f}: invalid JSON ({e.__class__.__name__}: {e})") from None
    try:
        validate_manifest(m)
    except ArtifactError as e:
        raise ArtifactError(f"{f}: {e}") from None
    return m


def verify_files(root: Path, manifest: dict[str, Any]) -> None:
    """Check each listed file exists inside ``root`` and matches its SHA-256."""
    real_root = root.resolve()
    for name, sha in manifest["files"].items():
        p = root / name
        try:
            inside = p.resolve().is_relative_to(real_root)
        except (OSError, RuntimeError):
            inside = False
        if not inside:
            raise ArtifactError(f"{root}: {name} points outside the artifact")
        if not p.is_file():
            raise ArtifactError(f"{root}: {name} is listed in the manifest but missing")
        if sha256_file(p) != sha:
            raise ChecksumError(f"{root}: {name} does not match its SHA-256 in the manifest "
                                "(corrupt, truncated or edited)")


def _load_npy(root: Path, name: str, mmap: bool = False) -> np.ndarray:
    try:
        a = np.load(root / name, allow_pickle=False, mmap_mode="r" if mmap else None)
    except Exception as e:  # numpy raises ValueError/OSError/EOFError... for forged files
        raise ArtifactError(f"{root}: cannot read {name}: {e.__class__.__name__}: {e}") from None
    if not isinstance(a, np.ndarray):
        raise ArtifactError(f"{root}: {name} is not a single array")
    return a


def load_ids(root: Path, name: str, count: int, what: str) -> list[str | int] | DecimalRange:
    """The id list of ``root/name`` (``count`` unique string or integer ids, else ArtifactError);
    ``["0", ..., "n-1"]`` as a :class:`DecimalRange` (no per-id objects)."""
    raw = (root / name).read_bytes()
    compact = decimal_range_of(raw, count)
    if compact is not None:
        return compact
    try:
        ids = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise ArtifactError(f"{root}: {name} is not valid JSON ({e})") from None
    if not isinstance(ids, list) or not all(
            isinstance(x, str) or is_int(x) for x in ids):
        raise ArtifactError(f"{root}: {name} must be a JSON list of string or integer {what} ids")
    if len(ids) != count:
        raise ArtifactError(f"{root}: {name} has {len(ids)} {what} ids, the manifest says {count}")
    if len(set(ids)) != len(ids):
        raise ArtifactError(f"{root}: {name} has duplicate {what} ids")
    return ids


def _int_vector(a: np.ndarray, root: Path, name: str) -> np.ndarray:
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise ArtifactError(f"{root}: {name} must be a 1-D integer array, got {a.dtype}{list(a.shape)}")
    return a


def load_artifact(path: str | os.PathLike[str]) -> Artifact:
    """Read and fully validate an artifact directory; any defect raises :class:`ArtifactError`."""
    root = Path(path)
    try:
        return _load_artifact(root)
    except OSError as e:  # permissions, a directory where a file should be, ...
        raise ArtifactError(f"{root}: {e.__class__.__name__}: {e.strerror or e}") from None


def _load_artifact(root: Path) -> Artifact:
    m = read_manifest(root)
    verify_files(root, m)
    n_items, n_users = m["num_items"], m["num_users"]
    users = load_ids(root, m["id_maps"]["users"], n_users, "user")
    items = load_ids(root, m["id_maps"]["items"], n_items, "item")

    popular = _int_vector(_load_npy(root, m["popular"]), root, m["popular"])
    if popular.size and (popular.min() < 0 or popular.max() >= n_items):
        raise ArtifactError(f"{root}: {m['popular']} has item indices outside [0, {n_items})")
    popular = popular.astype(np.int32)
    ordered = np.sort(popular)  # not np.unique: it imports numpy.ma (1.3 MiB of RSS)
    if (ordered[1:] == ordered[:-1]).any():
        raise ArtifactError(f"{root}: {m['popular']} repeats items")

    indptr = indices = None
    if m.get("seen") is not None:  # optional: absent and null both mean "no seen items"
        indptr = _int_vector(_load_npy(root, m["seen"]["indptr"]), root, m["seen"]["indptr"])
        indices = _int_vector(_load_npy(root, m["seen"]["indices"]), root, m["seen"]["indices"])
        if indptr.shape != (n_users + 1,) or indptr[0] != 0 or indptr[-1] != indices.size \
                or np.any(np.diff(indptr) < 0):
            raise ArtifactError(f"{root}: seen-items CSR indptr is not a monotone [num_users+1] "
                                "array covering the indices")
        if indices.size and (indices.min() < 0 or indices.max() >= n_items):
            raise ArtifactError(f"{root}: seen-items indices outside [0, {n_items})")
        indptr = indptr.astype(np.int64, copy=False)
        indices = indices.astype(index_dtype(n_items), copy=False)

    tables: dict[str, tuple[np.ndarray | ProductCodes, np.ndarray | None]] = {}
    if m["target"] == "numpy":
        for name, t in m["tables"].items():
            tables[name] = _load_table(root, name, t, m)
    return Artifact(root=root, manifest=m, user_ids=users, item_ids=items, popular=popular,
                    seen_indptr=indptr, seen_indices=indices, tables=tables)


def _load_table(root: Path, name: str, t: dict[str, Any], m: dict[str, Any]
                ) -> tuple[np.ndarray | ProductCodes, np.ndarray | None]:
    """A numpy-target table, memory-mapped; rows = num_items/num_users (+1 zero pad row allowed)."""
    values = _load_npy(root, t["file"], mmap=True)
    sizes = {"U": m["num_users"], "I": m["num_items"], "d": m["dim"],
             "h": m.get("scorer", {}).get("hidden", -1)}
    rows, cols = (sizes.get(x, x) for x in TABLE_SHAPES[name])
    padded = (rows, rows + 1) if name in ("item", "user", "history_item", "user_base", "history_logit",
                                          "mlp_item", "user_self", "user_logit") else (rows,)
    if t.get("codebook_file") is not None:
        return _load_codes(root, name, t, values, rows, padded, cols)
    if values.ndim != 2 or values.shape[1] != cols or values.shape[0] not in padded:
        raise ArtifactError(f"{root}: table {name!r} is {list(values.shape)}, expected [{rows}, {cols}]")
    if values.dtype not in (np.int8, np.float16, np.float32):
        raise ArtifactError(f"{root}: table {name!r} has dtype {values.dtype}")
    scale = None
    if values.dtype == np.int8:
        if t.get("scale_file") is None:
            raise ArtifactError(f"{root}: int8 table {name!r} has no scale_file")
        scale = _load_npy(root, t["scale_file"])
        if scale.dtype != np.float32 or scale.shape != (values.shape[0],):
            raise ArtifactError(f"{root}: scale of {name!r} must be float32 [{values.shape[0]}]")
        if not np.all(np.isfinite(scale)):
            raise ArtifactError(f"{root}: scale of {name!r} has NaN or Inf")
    elif t.get("scale_file") is not None:
        raise ArtifactError(f"{root}: {values.dtype} table {name!r} has a scale_file")
    elif not math.isfinite(float(np.abs(values).max(initial=0.0))):
        raise ArtifactError(f"{root}: table {name!r} contains NaN or Inf")
    return values, scale


def _load_codes(root: Path, name: str, t: dict[str, Any], codes: np.ndarray, rows: int,
                padded: tuple[int, ...], width: int) -> tuple[ProductCodes, np.ndarray]:
    """A product-coded gathered table: uint8 codes [rows, M], a finite [M, 256, S] codebook
    covering ``dim`` and a finite float32 scale per row (``runtime.quant.pq_decode``)."""
    if name not in GATHERED:
        raise ArtifactError(f"{root}: table {name!r} cannot be product-coded")
    book = _load_npy(root, t["codebook_file"])
    if codes.ndim != 2 or codes.dtype != np.uint8 or codes.shape[0] not in padded:
        raise ArtifactError(f"{root}: codes of {name!r} must be uint8 [{rows}, M], got "
                            f"{codes.dtype}{list(codes.shape)}")
    m = codes.shape[1]
    want = pq_codebook_shape(width, m)
    if book.dtype != np.float32 or want is None or book.shape != want:
        raise ArtifactError(f"{root}: codebook of {name!r} must be float32 {list(want or ())} for "
                            f"{m} codes of a {width}-wide row, got {book.dtype}{list(book.shape)}")
    if not np.all(np.isfinite(book)):
        raise ArtifactError(f"{root}: codebook of {name!r} has NaN or Inf")
    if t.get("scale_file") is None:
        raise ArtifactError(f"{root}: product-coded table {name!r} has no scale_file")
    scale = _load_npy(root, t["scale_file"])
    if scale.dtype != np.float32 or scale.shape != (codes.shape[0],) or not np.all(np.isfinite(scale)):
        raise ArtifactError(f"{root}: scale of {name!r} must be finite float32 [{codes.shape[0]}]")
    return ProductCodes(codes, book, width), scale
