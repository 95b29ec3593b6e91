"""export / bench / demo from the command line: verified artifacts, refusals that leave nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.factories import assert_one_line_error, run


@pytest.fixture(scope="module")
def artifacts(trained_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("art") / "art"
    p = run("export", str(trained_ckpt), "--target", "all", "--out", str(out), "--with-eval",
            "--eval-users", "50", "--k", "20", "--json")
    manifests = json.loads(p.stdout)
    assert set(manifests) == {"tflite", "onnx"}
    return out


def test_export_all_writes_verified_artifacts(artifacts: Path) -> None:
    import runtime

    weights = {"int8": "int8-per-row", "int4-item": "int8-per-row+int4-item", "int4": "int4-per-row"}
    searched = json.loads((artifacts / "tflite" / "manifest.json").read_text())["metrics"]["search"]
    chosen = [r for r in searched["candidates"] if r["chosen"]]
    assert len(chosen) == 1 and searched["ranked_by"].startswith("the larger of the tflite and onnx")
    # one IR for both targets, chosen by the larger of the two files
    assert chosen[0]["file_bytes"] == max(sum(f.stat().st_size for f in (artifacts / t).glob(f"*.{t}"))
                                          for t in ("tflite", "onnx"))
    for target in ("tflite", "onnx"):
        m = json.loads((artifacts / target / "manifest.json").read_text())
        # ONNX may keep 4-bit values in int8 storage
        assert m["target"] == target and m["quantization"]["weights"] in (
            {weights[chosen[0]["format"]]} if target == "tflite" else {weights[chosen[0]["format"]], "int8-per-row"})
        assert m["metrics"]["search"] == searched and m["dim"] == chosen[0]["dims"]
        assert m["eval"] == "eval.json" and "eval.json" in m["files"]
        for mode in ("lookup", "history"):
            assert m["metrics"]["parity"]["modes"][mode]["agreement@20"] >= 0.99
        rec = runtime.load(artifacts / target)
        ev = json.loads((artifacts / target / "eval.json").read_text())
        user = ev["users"][0]
        got = rec.recommend(user["user"], k=10)
        assert len(got) == 10 and not {i for i, _ in got} & set(map(str, []))
        hist = rec.recommend_from_history(user["history"], k=10)
        assert len(hist) == 10 and not {i for i, _ in hist} & set(user["history"])
    assert not list(artifacts.parent.glob(".art.*"))  # no temp dirs left behind


@pytest.mark.parametrize(("args", "needle"), [
    (["--target", "coreml"], "unknown target 'coreml'"),
    (["--dims", "1", "--max-recall-drop", "0"], "accuracy guard refused"),
    (["--quantize", "int3"], "Invalid value for '--quantize'"),
])
def test_export_refusals_leave_nothing(trained_ckpt: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    out = tmp_path / "out"
    p = run("export", str(trained_ckpt), "--out", str(out), *args, ok=False)
    assert p.returncode != 0 and needle in p.stderr and "Traceback" not in p.stderr
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_export_int4_packs_the_tflite_and_onnx_files(trained_ckpt: Path, tmp_path: Path) -> None:
    import runtime

    out = tmp_path / "int4"
    p = run("export", str(trained_ckpt), "--target", "all", "--quantize", "int4", "--dims", "full",
            "--out", str(out), "--k", "20")
    assert p.returncode == 0 and "Traceback" not in p.stderr
    assert "int8 storage" not in p.stderr
    for target in ("tflite", "onnx"):
        m = json.loads((out / target / "manifest.json").read_text())
        assert m["quantization"]["weights"] == "int4-per-row"
        for mode in ("lookup", "history"):
            assert m["metrics"]["parity"]["modes"][mode]["agreement@20"] >= 0.99
        rec = runtime.load(out / target)
        assert len(rec.recommend(rec.artifact.user_ids[0], k=10)) == 10
    p = run("export", str(trained_ckpt), "--target", "numpy", "--quantize", "int4", "--dims", "full",
            "--out", str(tmp_path / "n"), "--k", "20")
    assert p.returncode == 0 and "numpy: note: the tables keep their 4-bit values in int8 storage" in p.stderr


def test_export_numpy_target_prints_its_table_size(trained_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "ref"
    p = run("export", str(trained_ckpt), "--target", "numpy", "--quantize", "float32", "--dims", "full",
            "--out", str(out))
    from edgerec.cli._format import fmt_bytes as _fmt_bytes

    assert p.returncode == 0 and "Traceback" not in p.stderr and "numpy" in p.stdout
    tables = sum(f.stat().st_size for f in (out / "tables").glob("*.npy"))
    assert tables > 0 and _fmt_bytes(tables) in p.stdout  # the tables are the model here


def test_export_missing_checkpoint_and_existing_out(trained_ckpt: Path, tmp_path: Path, artifacts: Path) -> None:
    assert_one_line_error(run("export", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), ok=False),
                          "no such checkpoint")
    assert_one_line_error(run("export", str(trained_ckpt), "--out", str(artifacts), ok=False), "exists")


def test_bench_with_baselines(artifacts: Path, trained_ckpt: Path, tmp_path: Path) -> None:
    report = tmp_path / "report"
    p = run("bench", str(artifacts / "tflite"), str(artifacts / "onnx"), "--checkpoint", str(trained_ckpt),
            "--report", str(report), "--requests", "30", "--baseline-requests", "5", "--json")
    rep = json.loads(p.stdout)
    names = json.dumps(rep)
    assert "PyG LightGCN" in names and "numpy" in names
    faiss = [b["quantization"] for b in rep["baselines"] if b.get("target") == "faiss"]
    assert faiss[:3] == ["float32", "SQ8", "SQ4"] and faiss[3].startswith("PQ")
    tfl = next(g for g in rep["gains"] if g["path"] == str(artifacts / "tflite"))
    tfl_row = next(r for r in rep["rows"] if r.get("path") == str(artifacts / "tflite"))
    assert tfl["x_faster_than_faiss_flat"] > 0 and tfl["recall_vs_faiss_equal_bytes"] is not None
    assert rep["bandwidth"]["memory"]["bytes_per_s"] > 0 and tfl_row["floor_ms"] > 0 and "Against FAISS" in (report / "report.md").read_text()
    for f in ("report.json", "report.md", "report.png"):
        assert (report / f).stat().st_size > 0


def test_demo_small(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    p = run("demo", "--out", str(out), "--users", "150", "--items", "300", "--epochs", "6", "--requests", "20")
    assert "SYNTHETIC" in p.stdout
    assert (out / "report" / "report.png").is_file()
    rep = json.loads((out / "report" / "report.json").read_text())
    assert len(json.dumps(rep)) > 1000
    for g in rep["gains"]:  # the reference is recognised: every ratio is a number
        assert g["x_less_memory_than_numpy_float32"] > 0
        assert all(v > 0 for v in g["x_faster_than_numpy_float32"].values())
    pyg = next(b for b in rep["baselines"] if "PyG" in b["name"])
    assert pyg["peak_rss_increase_bytes"] > 1 << 20  # measured in a fresh process, not after training
    # a refused re-run leaves the earlier demo as it was
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert_one_line_error(run("demo", "--out", str(out), "--overwrite", "--users", "1", ok=False), "--users")
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_overwrite_replaces_only_an_earlier_output(trained_ckpt: Path, tmp_path: Path) -> None:
    """--overwrite never deletes a directory of other files, a file, or the command's input."""
    precious = tmp_path / "precious"
    (precious / "sub").mkdir(parents=True)
    (precious / "sub" / "thesis.txt").write_text("mine")
    afile = tmp_path / "afile"
    afile.write_text("mine")
    for cmd in ("compile", "export"):
        for out in (precious, afile):
            assert_one_line_error(run(cmd, str(trained_ckpt), "--out", str(out), "--overwrite", ok=False),
                                  "not an earlier edgerec output")
        assert_one_line_error(run(cmd, str(trained_ckpt), "--out", str(trained_ckpt), "--overwrite",
                                  ok=False), "would replace the input")
    assert (precious / "sub" / "thesis.txt").read_text() == "mine" and afile.read_text() == "mine"
    # an output that cannot be written is refused before the work, naming the user's path
    assert_one_line_error(run("compile", str(trained_ckpt), "--out", str(afile / "sub"), ok=False),
                          f"{afile / 'sub'}: {afile} is not a directory")
    assert (trained_ckpt / "config.json").is_file()
    ir = tmp_path / "ir"
    for _ in range(2):  # an earlier IR is replaced
        run("compile", str(trained_ckpt), "--out", str(ir), "--overwrite", "--dims", "8", "--quantize", "int8")
    assert (ir / "ir.json").is_file()


def test_outputs_are_readable_under_the_umask(artifacts: Path, trained_ckpt: Path) -> None:
    """Temporary files and directories are private (0600/0700); what is renamed into place
    gets the permissions the umask gives any new file, so a service account can load it."""
    import os
    import stat

    mask = os.umask(0)
    os.umask(mask)
    for root in (artifacts / "tflite", trained_ckpt):
        for p in (root, *root.rglob("*")):
            mode = stat.S_IMODE(p.stat().st_mode)
            want = (0o777 if p.is_dir() else 0o666) & ~mask
            assert mode == want, (p, oct(mode), oct(want))


def test_option_bounds_and_options_an_ir_source_cannot_take(trained_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    for args, needle in ((["--max-recall-drop", "nan"], "--max-recall-drop"),  # NaN passed every guard
                         (["--max-recall-drop", "-1"], "--max-recall-drop"),
                         (["--min-agreement", "2"], "--min-agreement"),
                         (["--history-capacity", "1000000000"], "--history-capacity"),  # MemoryError
                         (["--eval-users", "-3", "--with-eval"], "--eval-users")):
        assert_one_line_error(run("export", str(trained_ckpt), "--out", str(out), *args, ok=False), needle)
    ir = tmp_path / "ir"
    run("compile", str(trained_ckpt), "--out", str(ir), "--dims", "8", "--quantize", "int8")
    for cmd in ("export", "compile"):  # an IR is already compiled: no silent no-ops
        assert_one_line_error(run(cmd, str(ir), "--out", str(out), "--quantize", "float16", "--dims", "full",
                                  ok=False), "--quantize, --dims apply when compiling a checkpoint")
    # a flag is named as given
    assert_one_line_error(run("export", str(ir), "--out", str(out), "--no-history-fix", ok=False),
                          "--no-history-fix apply when compiling a checkpoint")
    assert not out.exists()
    run("export", str(ir), "--out", str(out), "--k", "10")  # output options still apply
    assert json.loads((out / "manifest.json").read_text())["dim"] == 8


def test_inspect_verifies_and_summarises_artifacts(artifacts: Path, tmp_path: Path) -> None:
    import shutil

    p = run("inspect", str(artifacts))  # the --target all directory: each artifact
    assert "artifact" in p.stdout and "tflite" in p.stdout and "onnx" in p.stdout and "verified" in p.stdout
    assert set(json.loads(run("inspect", str(artifacts), "--json").stdout)) == {"tflite", "onnx"}
    bad = tmp_path / "bad"
    shutil.copytree(artifacts / "tflite", bad)
    data = (bad / "model.tflite").read_bytes()
    (bad / "model.tflite").write_bytes(data[: len(data) // 2])  # what a device would refuse
    assert_one_line_error(run("inspect", str(bad), ok=False), "model.tflite")


@pytest.mark.parametrize(("args", "needle"), [
    (["--channel-keep", "0.5"], "--channel-keep prunes a sage/gcn/gat encoder"),  # was a --dims message
    (["--head-keep", "0.5"], "act on an MLP head"),
    (["--finetune-epochs", "1"], "act on an MLP head"),
    (["--new-user", "bias"], "--new-user chooses a sage/gcn model's base vector"),  # was ignored
])
def test_options_the_model_does_not_have_are_refused_by_name(trained_ckpt: Path, tmp_path: Path,
                                                             args: list[str], needle: str) -> None:
    out = tmp_path / "ir"
    assert_one_line_error(run("compile", str(trained_ckpt), "--out", str(out), *args, ok=False), needle)
    assert not out.exists()
