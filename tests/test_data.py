"""Loaders: every malformed input is a one-line DataError naming file and line; drops are counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgerec.data import load_csv, load_data, load_lightgcn_dir
from edgerec.errors import DataError
from edgerec.synthetic import make_synthetic, write_synthetic


def _write(root: Path, **files: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / f"{name}.txt").write_text(text)
    return root


def test_lightgcn_format_counts_and_drops(tmp_path: Path) -> None:
    root = _write(tmp_path / "d", train="0 1 2 2\n1 0 3\n2 1\n", valid="0 3\n1 9\n", test="0 0\n7 1\n")
    d = load_lightgcn_dir(root)
    # ids are dense over all three files: item 9 and user 7 exist, though never in train
    assert (d.num_users, d.num_items) == (8, 10)
    assert len(d.train) == 5 and d.dropped == {"train_duplicates": 1}
    assert d.cold == {"valid_interactions_of_items_not_in_train": 1,
                      "test_interactions_of_users_not_in_train": 1}
    assert d.valid.users.tolist() == [0, 1] and d.valid.items.tolist() == [3, 9]
    indptr, indices = d.train.csr(d.num_users)
    assert indptr.tolist()[:4] == [0, 2, 4, 5] and indices.tolist() == [1, 2, 0, 3, 1]


@pytest.mark.parametrize(("text", "needle"), [
    ("0 1\n1 x 2\n", "train.txt:2: non-numeric id 'x'"),
    ("0 1\n1 -2\n", "train.txt:2: negative id -2"),
    ("0 1.5\n", "train.txt:1: non-numeric id '1.5'"),
    ("   \n\n", "train.txt: file is empty"),
])
def test_lightgcn_bad_lines(tmp_path: Path, text: str, needle: str) -> None:
    root = _write(tmp_path / "d", train=text)
    with pytest.raises(DataError) as e:
        load_lightgcn_dir(root)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_lightgcn_bad_valid_file_names_it(tmp_path: Path) -> None:
    root = _write(tmp_path / "d", train="0 1\n", valid="0 zz\n")
    with pytest.raises(DataError, match=r"valid.txt:1: non-numeric"):
        load_lightgcn_dir(root)


def test_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_data(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no train.txt"):
        load_data(tmp_path / "empty")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(DataError, match="not a text file"):
        load_data(tmp_path / "bin.csv")


def test_csv_string_ids_time_split(tmp_path: Path) -> None:
    rows = ["user,item,timestamp"]
    for u in range(5):
        for t in range(10):
            rows.append(f"alice{u},song-{(u + t) % 12},{t}")
    rows.append("alice0,song-0,0")  # duplicate
    f = tmp_path / "x.csv"
    f.write_text("\n".join(rows) + "\n")
    d = load_csv(f, valid_frac=0.1, test_frac=0.2, split="time")
    assert d.user_ids[0] == "alice0" and d.num_users == 5
    assert d.dropped.get("duplicates") == 1
    assert len(d.train) + len(d.valid) + len(d.test) == 50
    # time split: every held-out interaction is later than every training one of the same user
    for u in range(5):
        tr = set(d.train.items[d.train.users == u].tolist())
        te = d.test.items[d.test.users == u].tolist()
        assert te and not (set(te) & tr)
    again = load_csv(f, split="random", seed=3)
    assert load_csv(f, split="random", seed=3).test.items.tolist() == again.test.items.tolist()


@pytest.mark.parametrize(("text", "needle"), [
    ("u,i,t\na,b,1\na,b\n", "x.csv:3: expected 3 columns, got 2"),
    ("u,i,t\na,b,yesterday\n", "x.csv:2: non-numeric timestamp"),
    ("a\n", "x.csv:1: expected 2 or 3 columns"),
    ("a,,1\n", "x.csv:1: empty user or item id"),
])
def test_csv_bad_rows(tmp_path: Path, text: str, needle: str) -> None:
    f = tmp_path / "x.csv"
    f.write_text(text)
    with pytest.raises(DataError) as e:
        load_csv(f)
    assert needle in str(e.value)


def test_csv_time_split_needs_timestamp(tmp_path: Path) -> None:
    f = tmp_path / "x.tsv"
    f.write_text("a\tb\nc\td\n")
    with pytest.raises(DataError, match="needs a timestamp"):
        load_csv(f)
    assert load_csv(f, split="random").num_users == 2


def test_synthetic_is_seeded_and_labelled(tmp_path: Path) -> None:
    a = make_synthetic(100, 300, seed=5)
    b = make_synthetic(100, 300, seed=5)
    c = make_synthetic(100, 300, seed=6)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert a.synthetic and "synthetic" in a.source
    counts = np.bincount(a.train.items, minlength=300)
    assert counts.max() > 5 * max(1, np.median(counts))  # long tail
    root = write_synthetic(tmp_path / "s", num_users=100, num_items=300, seed=5)
    loaded = load_data(root)
    assert loaded.synthetic and "synthetic" in loaded.source
    assert len(loaded.train) == len(a.train)


def test_real_lastfm_matches_published_counts(lastfm_dir: Path) -> None:
    d = load_data(lastfm_dir)
    assert (d.num_users, d.num_items) == (1885, 17388)
    assert (len(d.train), len(d.valid), len(d.test)) == (64315, 9143, 18321)
