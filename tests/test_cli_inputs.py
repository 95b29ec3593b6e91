"""Bad input to synth / train / evaluate: one `error:` line and exit 2, never a traceback, never a
checkpoint from a failed run; catalogues smaller than K are ranked whole instead of crashing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgerec.cli import main
from edgerec.data import load_lightgcn_dir
from edgerec.errors import DataError
from edgerec.metrics import evaluate_embeddings, topk_full_ranking
from edgerec.synthetic import make_synthetic, write_synthetic
from edgerec.trainer import TrainConfig, check_config

FAST = ("--dim", "4", "--layers", "1", "--epochs", "2", "--eval-every", "1", "--threads", "1")


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        *args: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``edgerec ARGS`` through the real entry point, in process."""
    monkeypatch.delenv("EDGEREC_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", ["edgerec", *args])
    try:
        main()
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def last_error(code: int, err: str) -> str:
    """The one `error:` line a failed command printed (after any progress lines)."""
    assert code == 2 and "Traceback" not in err, err
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()]
    assert lines[-1].startswith("error: ") and sum("error" in ln.lower() for ln in lines) == 1, err
    return lines[-1]


def lightgcn(root: Path, train: str, valid: str = "", test: str = "") -> Path:
    root.mkdir(parents=True)
    for name, text in (("train", train), ("valid", valid), ("test", test)):
        if text:
            (root / f"{name}.txt").write_text(text)
    return root


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 items: fewer than the K=40 every validation pass asks for."""
    return write_synthetic(tmp_path_factory.mktemp("small") / "d", num_users=40, num_items=30,
                           communities=3, seed=2)


# 1. tokens int() refuses or isdigit() misjudges -------------------------------------------------


@pytest.mark.parametrize("token", ["--5", "\u00b2", "\u0663", "1_0", "+3", "-"])
def test_malformed_id_names_file_line_and_token(tmp_path: Path, token: str) -> None:
    root = lightgcn(tmp_path / "d", f"0 1 2\n1 {token} 3\n")
    with pytest.raises(DataError) as e:
        load_lightgcn_dir(root)
    assert str(e.value).endswith(f"train.txt:2: non-numeric id {token!r}")


def test_train_on_malformed_id_is_one_line(monkeypatch, capsys, tmp_path: Path) -> None:
    root = lightgcn(tmp_path / "d", "0 1 2\n1 --5\n")
    code, _, err = run(monkeypatch, capsys, "train", "--data", str(root), "--out", str(tmp_path / "ck"))
    assert err.strip().endswith("train.txt:2: non-numeric id '--5'") and len(err.strip().splitlines()) == 1
    assert last_error(code, err) and not (tmp_path / "ck").exists()


# 2. ids too large for int64, or far sparser than the dense id space allows ------------------------


@pytest.mark.parametrize(("train", "needle"), [
    ("0 1 2\n1 999999999999999999999999\n", "train.txt:2: id 999999999999999999999999 is too large"),
    ("0 1 2\n1 99999999999\n", "train.txt:2: id 99999999999 is too large"),
    ("0 1 2\n1 3\n2 5000\n", "train.txt:3: item id 5000 is far above the 4 distinct item ids"),
    ("0 1\n77777 2\n", "train.txt:2: user id 77777 is far above the 2 distinct user ids"),
])
def test_absurd_ids_are_refused(monkeypatch, capsys, tmp_path: Path, train: str, needle: str) -> None:
    root = lightgcn(tmp_path / "d", train)
    code, _, err = run(monkeypatch, capsys, "train", "--data", str(root), "--out", str(tmp_path / "ck"), *FAST)
    assert needle in last_error(code, err)


def test_sparse_id_named_in_the_file_that_holds_it(tmp_path: Path) -> None:
    root = lightgcn(tmp_path / "d", "0 1 2\n1 3\n", valid="0 3\n1 90000\n")
    with pytest.raises(DataError, match=r"valid.txt:2: item id 90000 is far above"):
        load_lightgcn_dir(root)


def test_gaps_within_the_rule_still_load(tmp_path: Path) -> None:
    d = load_lightgcn_dir(lightgcn(tmp_path / "d", "0 1 2\n1 3 999\n"))
    assert d.num_items == 1000


# 3. top-K over catalogues smaller than K ---------------------------------------------------------


def test_topk_wider_than_catalogue_ranks_it_whole() -> None:
    users = np.arange(3)
    exclude = (np.array([0, 1, 1, 1]), np.array([0]))  # user 0 has seen item 0
    top = topk_full_ranking(lambda b: torch.ones(b.size, 5), users, exclude, k=40)
    assert top.shape == (3, 5) and sorted(top[1].tolist()) == [0, 1, 2, 3, 4]
    truth = (np.array([0, 1, 2, 3]), np.array([1, 2, 4]))
    m = evaluate_embeddings(np.eye(3, 4), np.eye(5, 4), exclude, truth, ks=(2, 5, 40))
    assert m["recall@5"] == m["recall@40"] == 1.0 and m["ndcg@5"] == m["ndcg@40"] <= 1.0


def test_train_and_evaluate_on_fewer_items_than_k(monkeypatch, capsys, small_dir: Path,
                                                  tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    code, out, err = run(monkeypatch, capsys, "train", "--data", str(small_dir), "--out", str(ck), *FAST)
    assert code == 0, err
    assert json.loads(out)["valid"]["recall@40"] == 1.0
    code, out, err = run(monkeypatch, capsys, "evaluate", str(ck), "--k", "30", "--k", "31", "--k", "500")
    assert code == 0, err
    ev = json.loads(out)
    assert ev["recall@500"] == ev["recall@31"] == ev["recall@30"] == 1.0
    assert ev["ndcg@500"] == ev["ndcg@30"]


def test_compile_two_item_catalogue(monkeypatch, capsys, tmp_path: Path) -> None:
    root = lightgcn(tmp_path / "d", "0 0\n1 1\n2 0\n3 1\n", valid="0 1\n1 0\n", test="2 1\n3 0\n")
    ck = tmp_path / "ck"
    code, _, err = run(monkeypatch, capsys, "train", "--data", str(root), "--out", str(ck), *FAST)
    assert code == 0, err
    code, out, err = run(monkeypatch, capsys, "compile", str(ck), "--out", str(tmp_path / "ir"),
                         "--dims", "full", "--json")
    assert code == 0, err
    assert json.loads(out)["passes"][-1]["name"] == "guard"
    # exported with --dims auto (wider than the rank-2 score matrix) and served
    art = tmp_path / "art"
    code, _, err = run(monkeypatch, capsys, "export", str(ck), "--out", str(art), "--k", "2", "--target", "all")
    assert code == 0, err
    import runtime

    for target in ("tflite", "onnx"):
        rec = runtime.load(art / target)
        assert [i for i, _ in rec.recommend_from_history(["0"], k=2)] == ["1"]  # "0" is excluded
        assert rec.recommend_from_history(["0", "1"], k=2) == []  # every item excluded: agreed, empty


# 4. training hyperparameters ---------------------------------------------------------------------


@pytest.mark.parametrize(("option", "value"), [
    ("--dim", "-4"), ("--dim", "0"), ("--layers", "-1"), ("--batch-size", "0"), ("--batch-size", "-1"),
    ("--eval-every", "0"), ("--eval-every", "-1"), ("--threads", "-1"), ("--threads", "0"),
    ("--epochs", "0"), ("--epochs", "-1"), ("--max-minutes", "-1"), ("--max-minutes", "nan"),
    ("--patience", "0"), ("--lr", "0"), ("--lr", "-1"), ("--lr", "nan"), ("--lr", "inf"),
    ("--reg", "-1"), ("--reg", "nan"), ("--reg", "inf"), ("--seed", "-1"),
])
def test_train_option_out_of_range(monkeypatch, capsys, small_dir: Path, tmp_path: Path,
                                   option: str, value: str) -> None:
    ck = tmp_path / "ck"
    code, out, err = run(monkeypatch, capsys, "train", "--data", str(small_dir), "--out", str(ck),
                         *FAST, option, value)
    assert f"Invalid value for '{option}'" in last_error(code, err)
    assert len(err.strip().splitlines()) == 1 and not out and not ck.exists()


def test_diverged_training_writes_no_checkpoint(monkeypatch, capsys, small_dir: Path,
                                                tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    code, out, err = run(monkeypatch, capsys, "train", "--data", str(small_dir), "--out", str(ck),
                         "--dim", "4", "--layers", "1", "--epochs", "5", "--threads", "1", "--lr", "1e30")
    assert "training diverged" in last_error(code, err) and "--lr" in err
    assert not out and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [{"batch_size": 0}, {"eval_every": 0}, {"epochs": 0}, {"dim": 0},
                                 {"lr": float("nan")}, {"reg": -1.0}, {"max_minutes": 0.0}])
def test_train_api_refuses_bad_config(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        check_config(TrainConfig(**bad))  # type: ignore[arg-type]


# 5. evaluate: empty split, no train split ---------------------------------------------------------


def test_evaluate_empty_split_is_refused(monkeypatch, capsys, tmp_path: Path) -> None:
    root = write_synthetic(tmp_path / "d", num_users=20, num_items=50, communities=2)
    (root / "test.txt").unlink()
    ck = tmp_path / "ck"
    assert run(monkeypatch, capsys, "train", "--data", str(root), "--out", str(ck), *FAST)[0] == 0
    code, out, err = run(monkeypatch, capsys, "evaluate", str(ck))
    assert last_error(code, err).startswith("error: this checkpoint holds no held-out test "
                                            "interactions") and "--data" in err and not out
    code, out, err = run(monkeypatch, capsys, "evaluate", str(ck), "--split", "valid")
    assert code == 0 and json.loads(out)["split"] == "valid"


def test_evaluate_has_no_train_split(monkeypatch, capsys, tmp_path: Path) -> None:
    code, out, err = run(monkeypatch, capsys, "evaluate", str(tmp_path), "--split", "train")
    assert "Invalid value for '--split'" in last_error(code, err) and not out


# 6. synth bounds --------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [("--users", "100000000000"), ("--items", "100000000000"),
                                  ("--users", "1"), ("--communities", "0"), ("--communities", "1001"),
                                  ("--seed", "-1")])
def test_synth_counts_are_bounded(monkeypatch, capsys, tmp_path: Path, args: tuple[str, ...]) -> None:
    code, out, err = run(monkeypatch, capsys, "synth", str(tmp_path / "s"), *args)
    assert "Invalid value for" in last_error(code, err) and not out and not (tmp_path / "s").exists()


def test_make_synthetic_refuses_huge_counts() -> None:
    with pytest.raises(ValueError, match="users"):
        make_synthetic(100_000_000_000, 100)


def test_gnn_needs_a_layer(monkeypatch, capsys, small_dir: Path, tmp_path: Path) -> None:
    """LightGCN with 0 layers is matrix factorisation; a sage/gcn/gat encoder needs one."""
    code, _, err = run(monkeypatch, capsys, "train", "--data", str(small_dir), "--out", str(tmp_path / "ck"),
                       "--model", "sage", "--layers", "0")
    assert last_error(code, err) == "error: a sage encoder needs at least one layer (--layers)"
    assert not (tmp_path / "ck").exists()


def test_cli_thread_cap_is_the_runtimes_and_the_cli_stays_light(monkeypatch, capsys) -> None:
    """--threads is bounded by runtime.MAX_THREADS itself (no copy of it); importing the CLI
    loads no numpy (``edgerec --help`` took 129 ms instead of 21 when it did)."""
    import subprocess

    import runtime

    code, _, err = run(monkeypatch, capsys, "train", "--data", "x", "--out", "y", "--threads",
                       str(runtime.MAX_THREADS + 1))
    assert code == 2 and f"1<=x<={runtime.MAX_THREADS}" in err
    code = "import sys, edgerec.cli; print('numpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
