"""device_bench end to end on a small exported artifact, plus the eval file and the merging side."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device_bench import evalfile
from device_bench.measure import latency_summary, measure_calls
from device_bench.report import ACCURACY_KEYS, ReportError, validate_report
from tests.factories import make_artifact

REQ = ["--requests", "50", "--warmup", "5", "--batch", "8"]
LATENCY = ("count", "mean_ms", "std_ms", "min_ms", "p5_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms")


def device_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "device_bench", *args], capture_output=True,
                          text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def numpy_artifact(tmp_path_factory) -> tuple[Path, Path]:
    return make_artifact(tmp_path_factory.mktemp("art"), "numpy")


@pytest.fixture(scope="module")
def numpy_report(numpy_artifact, tmp_path_factory) -> dict:
    art, ev = numpy_artifact
    out = tmp_path_factory.mktemp("rep") / "report.json"
    proc = device_bench(str(art), "--eval", str(ev), *REQ, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


def check_number(v, lo=0.0, hi=None, integer=False):
    assert isinstance(v, int if integer else (int, float)) and not isinstance(v, bool), v
    assert v >= lo and (hi is None or v <= hi), v


def test_report_is_complete(numpy_report, numpy_artifact):
    validate_report(numpy_report)
    m = numpy_report["machine"]
    for key in ("hostname", "cpu", "os", "python", "numpy"):
        assert isinstance(m[key], str) and m[key]
    check_number(m["cores"], lo=1, integer=True)
    assert numpy_report["settings"]["requests"] == 50
    (t,) = numpy_report["targets"]
    assert t["error"] is None
    art = t["artifact"]
    assert art["path"] == str(numpy_artifact[0].resolve())
    assert art["target"] == "numpy" and art["modes"] == ["history", "lookup"]
    assert art["quantization"]["weights"] == "float32"
    files = sum(p.stat().st_size for p in numpy_artifact[0].rglob("*") if p.is_file())
    assert art["artifact_bytes"] == files
    assert 0 < art["model_bytes"] < files and art["model_bytes"] == sum(art["model_files"].values())
    assert t["backend"] == "reference" and t["interpreter"]["module"] is None
    check_number(t["init_ms"])
    mem = t["memory"]
    for key in ("peak_rss_bytes", "peak_rss_after_load_bytes", "baseline_peak_rss_bytes",
                "rss_after_load_bytes"):
        check_number(mem[key], lo=1 << 20, integer=True)
    assert mem["peak_rss_bytes"] >= mem["peak_rss_after_load_bytes"]
    assert mem["peak_rss_increase_bytes"] == mem["peak_rss_bytes"] - mem["baseline_peak_rss_bytes"]
    assert numpy_report["baselines"]["none"]["peak_rss_bytes"] == mem["baseline_peak_rss_bytes"]
    check_number(mem["peak_rss_over_preload_bytes"], integer=True)
    for mode in ("history", "lookup"):
        pm = t["modes"][mode]
        check_number(pm["first_ms"])
        assert pm["warmup"]["count"] == 5
        check_number(pm["warmup"]["mean_ms"])
        lat = pm["latency"]
        assert set(LATENCY) <= set(lat) and lat["count"] == 50
        vals = [lat[k] for k in ("min_ms", "p5_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms")]
        assert vals == sorted(vals) and vals[0] > 0
        assert lat["min_ms"] <= lat["mean_ms"] <= lat["max_ms"]
        tp = pm["throughput"]
        assert tp["batch"] == 8 and tp["batches"] == 7
        check_number(tp["recs_per_s"], lo=1)
    assert t["modes"]["lookup"]["throughput"]["method"] == "recommend_many"
    assert t["modes"]["history"]["throughput"]["method"] == "loop"
    check_number(t["modes"]["history"]["history_length_mean"], lo=1, hi=16)


def test_accuracy_matches_float_reference(numpy_report):
    """A float32 numpy artifact reproduces the float top-20, so the metrics are known exactly."""
    acc = numpy_report["targets"][0]["accuracy"]
    assert numpy_report["targets"][0]["accuracy_reason"] is None
    assert acc["source"] == "file" and acc["records"] == 12
    h, lk = acc["modes"]["history"], acc["modes"]["lookup"]
    assert h["users"] == lk["users"] == 12 and h["skipped"] == {}
    for key in ACCURACY_KEYS:
        check_number(h[key], hi=1.0)
        check_number(lk[key], hi=1.0)
    # test items = the float history-mode top-5: all found, in order.
    assert h["recall@10"] == h["recall@20"] == 1.0
    assert h["ndcg@10"] == pytest.approx(1.0)
    assert h["agreement@20"] >= 0.95 and lk["agreement@20"] >= 0.95
    # lookup ranks with the full user embedding, so it finds fewer of the history-mode items.
    assert lk["recall@20"] < 1.0
    # each record's Recall@20, in the file's order: their mean is the reported one
    for m in (h, lk):
        per = m["recall@20_per_record"]
        assert len(per) == 12 and None not in per
        assert sum(per) / 12 == pytest.approx(m["recall@20"])


def test_interpreter_target_gets_its_own_baseline(numpy_artifact, tmp_path):
    """An ONNX artifact runs on onnxruntime; its memory is measured against an onnxruntime-only
    baseline process, the numpy artifact's against a numpy-only one."""
    art, _ = make_artifact(tmp_path, "onnx", embed_eval=True)
    out = tmp_path / "r.json"
    proc = device_bench(str(art), str(numpy_artifact[0]), "--requests", "20",
                        "--warmup", "2", "--batch", "4", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(out.read_text())
    validate_report(rep)
    onnx_t, np_t = rep["targets"]
    assert onnx_t["backend"] == "onnx" and onnx_t["interpreter"]["module"] == "onnxruntime"
    assert onnx_t["interpreter"]["version"] == rep["machine"]["interpreters"]["onnxruntime"]
    assert set(rep["baselines"]) == {"onnxruntime", "onnxruntime+bare-interpreter", "none"}
    bases = {k: v["peak_rss_bytes"] for k, v in rep["baselines"].items()}
    assert bases["onnxruntime"] > bases["none"]
    # a bare interpreter on a one-op model costs more than the import alone
    assert rep["baselines"]["onnxruntime+bare-interpreter"]["bare_interpreter"] is True
    assert bases["onnxruntime+bare-interpreter"] > bases["onnxruntime"]
    assert (onnx_t["memory"]["peak_rss_over_bare_interpreter_bytes"] == onnx_t["memory"]["peak_rss_bytes"]
            - bases["onnxruntime+bare-interpreter"])
    # no interpreter behind the numpy reference: its whole increase is the model's
    assert np_t["memory"]["peak_rss_over_bare_interpreter_bytes"] == np_t["memory"]["peak_rss_increase_bytes"]
    assert onnx_t["memory"]["baseline"] == "onnxruntime" and np_t["memory"]["baseline"] == "none"
    assert (onnx_t["memory"]["peak_rss_increase_bytes"] == onnx_t["memory"]["peak_rss_bytes"]
            - rep["baselines"]["onnxruntime"]["peak_rss_bytes"])
    assert {f.rsplit(".", 1)[-1] for f in onnx_t["artifact"]["model_files"]} == {"onnx", "bin"}
    assert onnx_t["accuracy"]["source"] == "artifact"
    assert onnx_t["accuracy"]["file"] == str(art.resolve() / "eval.json")
    for mode in ("history", "lookup"):
        assert onnx_t["accuracy"]["modes"][mode]["agreement@20"] >= 0.95
    assert np_t["accuracy"] is None and "none given" in np_t["accuracy_reason"]


def test_no_eval_file_gives_null_accuracy_with_reason(numpy_artifact, tmp_path):
    out = tmp_path / "r.json"
    proc = device_bench(str(numpy_artifact[0]), "--requests", "5", "--warmup", "0",
                        "--batch", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    (t,) = json.loads(out.read_text())["targets"]
    assert t["accuracy"] is None and "no evaluation file" in t["accuracy_reason"]


def test_bad_inputs_are_one_line_errors(numpy_artifact, tmp_path):
    proc = device_bench(str(tmp_path / "missing"), "--out", str(tmp_path / "r.json"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "not an artifact directory" in proc.stderr and not (tmp_path / "r.json").exists()
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "edgerec-eval"}')
    proc = device_bench(str(numpy_artifact[0]), "--eval", str(bad), "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and "format_version" in proc.stderr
    proc = device_bench(str(numpy_artifact[0]), "--requests", "0", "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and "--requests" in proc.stderr


def test_corrupt_artifact_is_reported_not_crashed(numpy_artifact, tmp_path):
    """A target the runtime refuses gets an error entry; the other targets are still measured."""
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(numpy_artifact[0], broken)
    with open(broken / "items.json", "a") as f:
        f.write(" ")
    out = tmp_path / "r.json"
    proc = device_bench(str(broken), str(numpy_artifact[0]), "--requests", "5", "--warmup", "0",
                        "--batch", "2", "--out", str(out))
    assert proc.returncode == 1
    rep = json.loads(out.read_text())
    validate_report(rep)
    bad, good = rep["targets"]
    assert "Checksum" in bad["error"] or "sha" in bad["error"].lower()
    assert good["error"] is None and good["modes"]["lookup"]["latency"]["count"] == 5


def test_validate_report_names_the_field(numpy_report):
    rep = json.loads(json.dumps(numpy_report))
    del rep["targets"][0]["modes"]["lookup"]["latency"]["p95_ms"]
    with pytest.raises(ReportError, match=r"targets\[0\]\.modes\.lookup\.latency\.p95_ms"):
        validate_report(rep)
    rep = json.loads(json.dumps(numpy_report))
    rep["targets"][0]["accuracy"]["modes"]["history"]["recall@20"] = 1.5
    with pytest.raises(ReportError, match="recall@20"):
        validate_report(rep)


# ----------------------------------------------------------------------------- eval file


def test_eval_roundtrip_and_validation(tmp_path):
    recs = [{"user": "u1", "history": ["a", "b"], "test": ["c"], "reference": {"history": ["c"]}},
            {"user": None, "history": [3, 4], "test": [5, 6]}]
    p = evalfile.write_eval(tmp_path / "e.json", recs, k=20, source={"split": "last-1"})
    ev = evalfile.read_eval(p)
    assert ev.k == 20 and ev.source == {"split": "last-1"} and len(ev.records) == 2
    assert ev.records[0].history == ("a", "b") and ev.records[1].user is None
    assert ev.records[0].reference == {"history": ("c",)}
    with pytest.raises(evalfile.EvalFileError, match="already exists"):
        evalfile.write_eval(p, recs)
    cases = [
        ([{"user": "u", "history": [], "test": ["x", "x"]}], "duplicate"),
        ([{"user": "u", "history": [], "test": []}], "at least one"),
        ([{"user": None, "history": [], "test": ["x"]}], "user id or a non-empty history"),
        ([{"user": "u", "test": ["x"], "reference": {"lookup": list(range(21))}}], "more than k"),
        ([{"user": "u", "test": ["x"], "reference": {"other": []}}], "unknown mode"),
        ([{"user": True, "test": ["x"]}], "user"),
        ([{"user": "u", "test": ["x"], "extra": 1}], "unknown keys"),
    ]
    for records, msg in cases:
        with pytest.raises(evalfile.EvalFileError, match=msg):
            evalfile.write_eval(tmp_path / "x.json", records)
    assert not (tmp_path / "x.json").exists()
    with pytest.raises(evalfile.EvalFileError, match="unknown item id 'zz'"):
        evalfile.write_eval(tmp_path / "x.json", [{"user": "u", "history": ["zz"], "test": ["a"]}],
                            item_ids=["a", "b"])
    with pytest.raises(evalfile.EvalFileError, match="unknown user id"):
        evalfile.write_eval(tmp_path / "x.json", [{"user": "q", "test": ["a"]}], user_ids=["u"])
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(evalfile.EvalFileError, match="bad.json: not a readable JSON"):
        evalfile.read_eval(tmp_path / "bad.json")


def test_recall_ndcg_agreement_by_hand():
    r, n = evalfile.recall_ndcg(["a", "x", "b"], ["a", "b", "c", "d"], 2)
    assert r == 0.25 and n == pytest.approx(1.0 / (1.0 + 1 / np.log2(3)))
    assert evalfile.recall_ndcg(["a", "b"], ["b", "a"], 10) == (1.0, pytest.approx(1.0))
    assert evalfile.agreement(["a", "b", "c"], ["c", "d"], 20) == 0.5


# ----------------------------------------------------------------------------- measuring


def test_latency_summary_and_measure_calls():
    s = latency_summary([int(x * 1e6) for x in range(1, 101)])
    assert s["count"] == 100 and s["p50_ms"] == pytest.approx(50.5) and s["max_ms"] == 100
    assert s["p5_ms"] < s["p95_ms"] < s["p99_ms"]
    seen = []
    m = measure_calls(seen.append, requests=7, warmup=3)
    assert seen == list(range(11)) and m["latency"]["count"] == 7 and m["warmup"]["count"] == 3
    with pytest.raises(ValueError):
        latency_summary([])


def test_measure_callable_accepts_index_or_nothing():
    from edgerec.benchmark import BenchError, measure_callable

    calls = []
    assert measure_callable(lambda: calls.append(1), 4, 2)["latency"]["count"] == 4
    assert len(calls) == 7
    idx = []
    measure_callable(idx.append, 3, 0)
    assert idx == [0, 1, 2, 3]
    with pytest.raises(BenchError):
        measure_callable(lambda: None, 0, 0)


# ----------------------------------------------------------------------------- workstation side


def test_run_bench_local_writes_report_md_png(numpy_artifact, tmp_path):
    from edgerec.benchmark import BenchError, measure_callable, run_bench

    base = {"name": "pyg-full-graph", "device": "workstation", "target": "pytorch",
            "file_bytes": 123456, "init_ms": 900.0, "peak_rss_increase_bytes": 300 << 20,
            "modes": {"history": measure_callable(lambda: sum(range(100)), 20, 2)},
            "throughput_recs_per_s": {"history": 1000.0},
            "accuracy": {"history": {"recall@20": 1.0, "ndcg@20": 1.0, "agreement@20": 1.0}}}
    art, ev = numpy_artifact
    rep = run_bench([art], tmp_path / "rep", ssh=None, identity=None, remote_python="python3",
                    requests=20, batch=4, threads=1, baselines=[base], warmup=2, eval_file=ev)
    for name in ("report.json", "report.md", "report.png"):
        assert (tmp_path / "rep" / name).stat().st_size > 0
    assert json.loads((tmp_path / "rep" / "report.json").read_text()) == rep
    assert (tmp_path / "rep" / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (run,) = rep["runs"]
    assert run["via"] == "local" and run["device"] == run["report"]["machine"]["hostname"]
    assert run["report"]["settings"]["exact"] is False
    validate_report(run["report"])
    art_row, base_row = rep["rows"]
    assert art_row["kind"] == "artifact" and art_row["target"] == "numpy"
    assert art_row["accuracy"]["history"]["recall@20"] == 1.0
    assert set(art_row["latency_ms"]) == {"history", "lookup"}
    assert base_row["kind"] == "baseline" and base_row["latency_ms"]["history"]["p50"] > 0
    md = (tmp_path / "rep" / "report.md").read_text()
    header = next(ln for ln in md.splitlines() if ln.startswith("| device"))
    for col in ("target", "quantization", "modes", "file size", "init ms", "peak RSS",
                "p50/p95/p99", "throughput", "recall@20", "ndcg@20", "agreement@20"):
        assert col in header
    from edgerec.benchmark.labels import artifact_labels

    label = artifact_labels([art])[art]  # what the artifact is, not its folder
    assert label.startswith("numpy ") and label.endswith(" dims") and art_row["name"] == label
    assert "pyg-full-graph (baseline) (pytorch)" in md and f"| {run['device']} | {label} |" in md
    with pytest.raises(BenchError, match="unknown keys"):
        run_bench([art], tmp_path / "x", baselines=[{"name": "b", "lat": 1}], requests=5)
    with pytest.raises(BenchError, match="not an artifact"):
        run_bench([tmp_path], tmp_path / "x", requests=5)
    with pytest.raises(BenchError, match="user@host"):
        run_bench([art], tmp_path / "x", ssh="a@b@c", requests=5)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("module", ["ai_edge_litert.interpreter", "onnxruntime", "numpy"])
def test_bare_interpreter_models_run(module: str) -> None:
    """The embedded one-op models load and run in their interpreters (the memory baseline)."""
    import importlib

    from device_bench.bare_models import run_bare_interpreter

    assert run_bare_interpreter(module, importlib.import_module(module)) is (module != "numpy")


def test_gains_divide_the_baselines_by_each_target():
    from edgerec.benchmark import NUMPY_REFERENCE, gains, render_markdown

    def art(name, p50, mem, device="pi"):
        return {"kind": "artifact", "device": device, "name": name, "quantization": "q",
                "latency_ms": {"lookup": {"p50": p50}, "history": {"p50": 2 * p50}},
                "peak_rss_over_bare_interpreter_bytes": mem, "error": None}

    pyg = {"kind": "baseline", "device": None, "name": "pyg", "target": "pytorch", "error": None,
           "latency_ms": {"lookup": {"p50": 100.0}}}
    rows = [art("tflite", 0.25, 10 << 20), art(NUMPY_REFERENCE, 1.0, 40 << 20),
            art("other", 0.5, None, device="vm"), pyg]
    g = {(x["device"], x["name"]): x for x in gains(rows, {"pi", "vm"})}
    assert set(g) == {("pi", "tflite"), ("vm", "other")}  # the reference is not its own row
    t = g["pi", "tflite"]
    assert t["x_faster_than_pyg"] == {"lookup": 400.0, "history": 200.0}
    assert t["x_faster_than_numpy_float32"] == {"lookup": 4.0, "history": 4.0}
    assert t["x_less_memory_than_numpy_float32"] == 4.0
    o = g["vm", "other"]  # no reference measured on that device, no memory figure
    assert o["x_faster_than_numpy_float32"] == {"lookup": None, "history": None}
    assert o["x_less_memory_than_numpy_float32"] is None and o["x_faster_than_pyg"]["lookup"] == 200.0
    md = render_markdown({"runs": [], "rows": [], "gains": list(g.values())})
    assert "| pi | tflite (q) | h: 200<br>l: 400 | h: 4.0<br>l: 4.0 | 4.0 |" in md
    assert all(v is None for x in gains(rows, {"vm"}) if x["device"] == "pi"
               for v in x["x_faster_than_pyg"].values())  # PyG ran elsewhere: no ratio
    no_pyg = render_markdown({"runs": [], "rows": [], "gains": gains(rows[:2], {"pi"})})
    assert "| pi | tflite (q) | h: –<br>l: – | h: 4.0<br>l: 4.0 | 4.0 |" in no_pyg
    assert "Gains" not in render_markdown({"runs": [], "rows": [], "gains": []})


def test_exact_runs_tflite_on_the_builtin_kernels(tmp_path):
    """--exact reaches the worker (runtime.load(exact=True): TFLite without XNNPACK) and the
    report says so; the arm64 check relies on it (device_bench.pi --exact)."""
    pytest.importorskip("tensorflow")
    art, _ = make_artifact(tmp_path, "tflite", embed_eval=True)
    out = tmp_path / "r.json"
    proc = device_bench(str(art), "--requests", "10", "--warmup", "1", "--batch", "2",
                        "--exact", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(out.read_text())
    validate_report(rep)
    assert rep["settings"]["exact"] is True and rep["targets"][0]["error"] is None


def test_the_baseline_process_imports_what_the_measuring_does(numpy_artifact, tmp_path):
    """A target's memory is its worker's peak minus the baseline's: every module the worker's own
    measuring imports (numpy.random for the inputs, numpy.ma inside np.percentile) must be in
    the baseline too. Worker-only modules may be the runtime's (the target's own cost) and what
    the report's version lookup loads after the measurement window."""
    art, _ = numpy_artifact
    show = "import json, sys; print(json.dumps(sorted(sys.modules)))"
    worker = (f"import device_bench.worker as w; w.main([{str(art)!r}, '--out', "
              f"{str(tmp_path / 'w.json')!r}, '--requests', '20', '--warmup', '2']); {show}")
    base = (f"import device_bench.baseline as b; b.main(['--out', {str(tmp_path / 'b.json')!r}]); "
            f"{show}")
    mods = [set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                          text=True, check=True).stdout.strip().splitlines()[-1]))
            for code in (worker, base)]
    # mmap: the numpy target memory-maps its tables; importlib.resources/readers: runtime.schema
    # reads the manifest schema it ships (the runtime's own cost, like runtime.*).
    extra = {m for m in mods[0] - mods[1]
             if m != "mmap" and not m.startswith(("runtime.", "email.", "importlib.metadata",
                                                  "importlib.resources", "importlib.readers"))}
    assert not extra, sorted(extra)
