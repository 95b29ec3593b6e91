"""Interaction data: loaders for the LightGCN text format and CSV/TSV, validated line by line.

Every split is stored as two aligned int64 arrays (user index, item index) over one dense id
space. Whatever a loader drops (duplicate interactions) is counted in ``Interactions.dropped``;
valid/test interactions of users or items that never occur in train are kept (the published
protocol ranks the whole catalogue and counts them as misses) and counted in
``Interactions.cold``. Whatever a loader cannot read is a :class:`~edgerec.errors.DataError`
naming file and line.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgerec.errors import DataError

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Split:
    """One split as aligned (user, item) index arrays."""

    users: np.ndarray
    items: np.ndarray

    def __len__(self) -> int:
        return int(self.users.size)

    def csr(self, num_users: int) -> tuple[np.ndarray, np.ndarray]:
        """(indptr int64 [U+1], indices int32) of each user's items, in file order."""
        order = np.argsort(self.users, kind="stable")
        counts = np.bincount(self.users, minlength=num_users)
        indptr = np.zeros(num_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return indptr, self.items[order].astype(np.int32)


@dataclass(frozen=True)
class Interactions:
    """A dataset: dense ids, the three splits, and what loading dropped."""

    num_users: int
    num_items: int
    train: Split
    valid: Split
    test: Split
    user_ids: list[str]
    item_ids: list[str]
    source: str
    synthetic: bool = False
    dropped: dict[str, int] = field(default_factory=dict)
    cold: dict[str, int] = field(default_factory=dict)

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; choose one of {SPLITS}")
        return getattr(self, name)

    def fingerprint(self) -> str:
        """SHA-256 over the splits' contents: ties a checkpoint to the data it was trained on."""
        h = hashlib.sha256()
        h.update(f"{self.num_users},{self.num_items}".encode())
        for s in (self.train, self.valid, self.test):
            h.update(s.users.astype(np.int64).tobytes())
            h.update(s.items.astype(np.int64).tobytes())
        return h.hexdigest()

    def summary(self) -> dict[str, object]:
        return {
            "source": self.source, "synthetic": self.synthetic,
            "users": self.num_users, "items": self.num_items,
            "train": len(self.train), "valid": len(self.valid), "test": len(self.test),
            "dropped": dict(self.dropped), "cold": dict(self.cold),
        }


# ---------------------------------------------------------------------------------------------
# LightGCN text format


def _read_text(path: Path) -> str:
    """The file's text; a binary or empty file is a one-line DataError."""
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file") from None
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    return text


# Ids are plain ASCII decimals: int() alone would also take '1_0', '+5' or '٣' and refuses '²'.
_ID = re.compile(r"-?[0-9]+")
_ID_LINE = re.compile(r"(?:-?[0-9]+\s+)*-?[0-9]+\s*")
# Ids index dense arrays (and int32 CSR indices), so one id bounds the memory a file costs.
MAX_ID = 2**31 - 2


def _parse_ids(path: Path, lineno: int, line: str) -> list[int]:
    """The ids of one stripped line; the first malformed, negative or huge token is a DataError."""
    fields = line.split()
    if not _ID_LINE.fullmatch(line):
        bad = next(f for f in fields if not _ID.fullmatch(f))
        raise DataError(f"{path}:{lineno}: non-numeric id {bad[:40]!r}")
    ids = [int(f) for f in fields]
    if min(ids) < 0:
        raise DataError(f"{path}:{lineno}: negative id {min(ids)}")
    if max(ids) > MAX_ID:
        raise DataError(f"{path}:{lineno}: id {max(ids)} is too large (ids must be dense, at most {MAX_ID})")
    return ids


def _read_lightgcn_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse ``user item item ...`` lines; a user line with no items is allowed (no rows)."""
    users: list[int] = []
    items: list[int] = []
    text = _read_text(path)
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        ids = _parse_ids(path, lineno, line)
        users.extend([ids[0]] * (len(ids) - 1))
        items.extend(ids[1:])
    return np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)


def _check_dense(root: Path, raw: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Refuse an id space far sparser than its ids: the loader allocates ``max id + 1`` rows, so
    one stray id (a phone number, a hash) would cost gigabytes. Allowed: max id < 10 x distinct
    ids + 1000, i.e. at most ~90% of the id range unused (dense LightGCN data uses all of it)."""
    for col, kind in ((0, "user"), (1, "item")):
        ids = np.concatenate([arrs[col] for arrs in raw.values()])
        distinct = np.unique(ids).size
        top = int(ids.max())
        if top >= 10 * distinct + 1000:
            name = next(n for n, arrs in raw.items() if arrs[col].size and int(arrs[col].max()) == top)
            where = _line_of(root / f"{name}.txt", top, first=col == 0)
            raise DataError(f"{where}: {kind} id {top} is far above the {distinct} distinct {kind} ids "
                            f"(ids must be dense: max id < 10 x distinct + 1000)")


def _line_of(path: Path, value: int, first: bool) -> str:
    """``path:line`` of the first line holding ``value`` as its user (``first``) or as an item."""
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        ids = [int(f) for f in line.split()]
        if ids and (ids[0] == value if first else value in ids[1:]):
            return f"{path}:{lineno}"
    return str(path)


def _dedupe(users: np.ndarray, items: np.ndarray, num_items: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Drop repeated (user, item) pairs, keeping the first occurrence and the order."""
    key = users * (num_items + 1) + items
    _, first = np.unique(key, return_index=True)
    first.sort()
    return users[first], items[first], int(users.size - first.size)


def load_lightgcn_dir(path: str | Path) -> Interactions:
    """Load ``train.txt`` (+ ``valid.txt``, ``test.txt`` when present) from a LightGCN folder.

    Ids are taken as given (dense, 0-based) over all three files; an id space mostly unused
    (max id >= 10 x distinct ids + 1000) is refused. Valid/test interactions whose user or item
    never occurs in train are kept and counted in ``cold``.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    train_file = root / "train.txt"
    if not train_file.is_file():
        raise DataError(f"{root}: no train.txt (expected LightGCN text format: 'user item item ...')")
    tu, ti = _read_lightgcn_file(train_file)
    if tu.size == 0:
        raise DataError(f"{train_file}: no interactions")
    raw = {"train": (tu, ti)}
    for name in ("valid", "test"):
        f = root / f"{name}.txt"
        raw[name] = _read_lightgcn_file(f) if f.is_file() else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    _check_dense(root, raw)
    # Ids are dense over the three files (as in the reference LightGCN loader): the catalogue
    # includes items that only occur in valid/test, and they count in Recall's denominator.
    num_users = max(int(u.max()) + 1 for u, _ in raw.values() if u.size)
    num_items = max(int(i.max()) + 1 for _, i in raw.values() if i.size)
    dropped: Counter[str] = Counter()
    cold: Counter[str] = Counter()
    in_train_u = np.zeros(num_users, bool)
    in_train_u[tu] = True
    in_train_i = np.zeros(num_items, bool)
    in_train_i[ti] = True
    splits = {}
    for name, (u, i) in raw.items():
        u, i, dup = _dedupe(u, i, num_items)
        dropped[f"{name}_duplicates"] += dup
        if name != "train":
            cold[f"{name}_interactions_of_items_not_in_train"] += int((~in_train_i[i]).sum())
            cold[f"{name}_interactions_of_users_not_in_train"] += int((~in_train_u[u]).sum())
        splits[name] = Split(u, i)
    return Interactions(
        num_users=num_users, num_items=num_items, train=splits["train"], valid=splits["valid"],
        test=splits["test"], user_ids=[str(u) for u in range(num_users)],
        item_ids=[str(i) for i in range(num_items)], source=str(root),
        dropped={k: v for k, v in dropped.items() if v}, cold={k: v for k, v in cold.items() if v},
    )


# ---------------------------------------------------------------------------------------------
# CSV / TSV with arbitrary string ids


def load_csv(path: str | Path, *, valid_frac: float = 0.1, test_frac: float = 0.2,
             split: str = "time", seed: int = 0, sep: str | None = None) -> Interactions:
    """Load ``user,item[,timestamp]`` rows (header optional) and split per user.

    ``split="time"`` holds out each user's latest interactions (needs the timestamp column);
    ``split="random"`` holds out a seeded random fraction. Users with fewer than 3 interactions
    stay entirely in train. Ids are mapped to dense indices in order of first appearance.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if split not in ("time", "random"):
        raise DataError(f"unknown split method {split!r}; choose 'time' or 'random'")
    if not (0 <= valid_frac < 1 and 0 <= test_frac < 1 and valid_frac + test_frac < 1):
        raise DataError("valid_frac and test_frac must be in [0, 1) and sum to less than 1")
    text = _read_text(path)
    if sep is None:
        sep = "\t" if path.suffix.lower() in (".tsv", ".tab") or "\t" in text.splitlines()[0] else ","
    rows = list(csv.reader(text.splitlines(), delimiter=sep))
    start = 0
    header = [c.strip().lower() for c in rows[0]]
    if header[:2] in (["user", "item"], ["user_id", "item_id"]) or (
            len(header) == 3 and not _is_number(header[2])):
        start = 1  # a header row: named columns, or a non-numeric timestamp column
    width = len(rows[start]) if len(rows) > start else 0
    if width not in (2, 3):
        raise DataError(f"{path}:{start + 1}: expected 2 or 3 columns (user, item[, timestamp]), got {width}")
    if split == "time" and width != 3:
        raise DataError(f"{path}: a time split needs a timestamp column; split it randomly (edgerec train "
                        "--split random, or split='random' in the API)")
    user_index: dict[str, int] = {}
    item_index: dict[str, int] = {}
    us: list[int] = []
    its: list[int] = []
    ts: list[float] = []
    for lineno, row in enumerate(rows[start:], start + 1):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != width:
            raise DataError(f"{path}:{lineno}: expected {width} columns, got {len(row)}")
        u, i = row[0].strip(), row[1].strip()
        if not u or not i:
            raise DataError(f"{path}:{lineno}: empty user or item id")
        if width == 3:
            try:
                ts.append(float(row[2]))
            except ValueError:
                raise DataError(f"{path}:{lineno}: non-numeric timestamp {row[2][:40]!r}") from None
        us.append(user_index.setdefault(u, len(user_index)))
        its.append(item_index.setdefault(i, len(item_index)))
    if not us:
        raise DataError(f"{path}: no interactions")
    users = np.asarray(us, np.int64)
    items = np.asarray(its, np.int64)
    times = np.asarray(ts, np.float64) if ts else np.arange(users.size, dtype=np.float64)
    num_items = len(item_index)
    users, items, dup = _dedupe_with(users, items, times, num_items)
    dropped = {"duplicates": dup[1]} if dup[1] else {}
    times = dup[0]
    rng = np.random.default_rng(seed)
    part = np.zeros(users.size, np.int8)  # 0 train, 1 valid, 2 test
    order = np.lexsort((times, users)) if split == "time" else np.lexsort((rng.random(users.size), users))
    bounds = np.flatnonzero(np.diff(users[order])) + 1
    for group in np.split(order, bounds):
        n = group.size
        if n < 3:
            continue
        n_test = max(1, int(round(n * test_frac))) if test_frac > 0 else 0
        n_valid = max(1, int(round(n * valid_frac))) if valid_frac > 0 else 0
        n_test = min(n_test, n - 1 - n_valid) if n - 1 - n_valid > 0 else 0
        part[group[n - n_test:]] = 2
        part[group[n - n_test - n_valid:n - n_test]] = 1
    # An item that lands only in valid/test cannot be scored: move it to train instead.
    in_train = np.zeros(num_items, bool)
    in_train[items[part == 0]] = True
    moved = (~in_train[items]) & (part > 0)
    if moved.any():
        first = {}
        for idx in np.flatnonzero(moved):
            first.setdefault(int(items[idx]), idx)
        part[list(first.values())] = 0
        dropped["moved_to_train_unseen_item"] = len(first)
        in_train[items[part == 0]] = True
        still = (~in_train[items]) & (part > 0)
        part[still] = 0
    splits = [Split(users[part == p], items[part == p]) for p in range(3)]
    return Interactions(
        num_users=len(user_index), num_items=num_items, train=splits[0], valid=splits[1],
        test=splits[2], user_ids=list(user_index), item_ids=list(item_index), source=str(path),
        dropped=dropped,
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _dedupe_with(users: np.ndarray, items: np.ndarray, times: np.ndarray,
                 num_items: int) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, int]]:
    key = users * (num_items + 1) + items
    _, first = np.unique(key, return_index=True)
    first.sort()
    return users[first], items[first], (times[first], int(users.size - first.size))


# ---------------------------------------------------------------------------------------------
# Entry point


def load_data(path: str | Path, **csv_options: object) -> Interactions:
    """Load a LightGCN folder, a synthetic folder, or a CSV/TSV file, by what ``path`` is."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file or directory")
    if p.is_dir():
        data = load_lightgcn_dir(p)
        meta = p / "synthetic.json"
        if meta.is_file():
            try:
                info = json.loads(meta.read_text())
            except json.JSONDecodeError:
                raise DataError(f"{meta}: invalid JSON") from None
            data = Interactions(**{**data.__dict__, "synthetic": True,
                                   "source": f"synthetic({info.get('seed')}) {p}"})
        return data
    return load_csv(p, **csv_options)  # type: ignore[arg-type]


def write_lightgcn_dir(data: Interactions, path: str | Path) -> Path:
    """Write ``data`` in LightGCN text format (used for the synthetic generator's output)."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        s = data.split(name)
        indptr, indices = s.csr(data.num_users)
        lines = []
        for u in range(data.num_users):
            row = indices[indptr[u]:indptr[u + 1]]
            if row.size:
                lines.append(" ".join(map(str, [u, *row.tolist()])))
        (root / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return root
