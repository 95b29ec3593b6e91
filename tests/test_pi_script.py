"""``python -m device_bench.pi``: argument handling, refusals, parity rules, the probe.

Fast and offline: nothing here builds the arm64 root or runs qemu (that takes minutes and is
run by hand, see docs/pi.md); missing tools are simulated with an injected ``which`` or PATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from device_bench.pi import __main__ as pi_main
from device_bench.pi import parity, probe
from device_bench.pi import root as pi_root
from tests.factories import make_ir

ALL_TOOLS = {t: f"/usr/bin/{t}" for t in pi_root.TOOLS}


def fake_artifact(tmp_path: Path, name: str = "art") -> Path:
    """Enough of an artifact for argument checks (they only look for manifest.json)."""
    art = tmp_path / name
    art.mkdir()
    (art / "manifest.json").write_text("{}", encoding="utf-8")
    return art


def run_main(capsys, argv, which=ALL_TOOLS.get, euid=lambda: 0) -> tuple[int, str]:
    code = pi_main.main(argv, which=which, euid=euid)
    return code, capsys.readouterr().err


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_missing_debootstrap_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    art = fake_artifact(tmp_path)
    monkeypatch.setattr(pi_main, "run_check", lambda *a: pytest.fail("must not start"))
    which = {**ALL_TOOLS, "debootstrap": None}.get
    code, err = run_main(capsys, [str(art), "--out", str(tmp_path / "c.json")], which=which)
    assert code == 2
    line = one_line(err)
    assert "missing debootstrap:" in line and "apt-get install -y debootstrap" in line
    assert not (tmp_path / "c.json").exists()


def test_missing_qemu_names_the_debian_package(tmp_path, capsys):
    art = fake_artifact(tmp_path)
    which = {**ALL_TOOLS, "qemu-aarch64-static": None, "debootstrap": None}.get
    code, err = run_main(capsys, [str(art), "--out", str(tmp_path / "c.json")], which=which)
    assert code == 2
    line = one_line(err)
    assert "debootstrap, qemu-aarch64-static" in line
    assert "apt-get install -y debootstrap qemu-user-static" in line


def test_refusal_through_path_in_a_real_process(tmp_path):
    """The installed entry point, with a PATH that holds nothing but python."""
    art = fake_artifact(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bin_dir),
           "PYTHONPATH": str(Path(pi_main.__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-m", "device_bench.pi", str(art), "--out",
                           str(tmp_path / "c.json")], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    assert line.startswith("device_bench.pi: error: missing debootstrap, qemu-aarch64-static")
    assert proc.stdout == ""


def test_non_root_is_refused(tmp_path, capsys):
    art = fake_artifact(tmp_path)
    code, err = run_main(capsys, [str(art), "--out", str(tmp_path / "c.json")],
                         euid=lambda: 1000)
    assert code == 2
    assert "needs root" in one_line(err)


@pytest.mark.parametrize("extra, message", [
    (["--requests", "0"], "--requests must be at least 1"),
    (["--queries", "0"], "--queries must be at least 1"),
    (["--warmup", "-1"], "--warmup must be at least 0"),
    (["--atol", "-1"], "--rtol and --atol must be non-negative"),
    (["--x86-report", "/nonexistent/r.json"], "--x86-report /nonexistent/r.json: no such file"),
])
def test_bad_arguments_fail_before_any_work(tmp_path, capsys, extra, message):
    art = fake_artifact(tmp_path)
    code, err = run_main(capsys, [str(art), "--out", str(tmp_path / "c.json"), *extra],
                         which=lambda _t: pytest.fail("tools looked up before args checked"))
    assert code == 2
    assert message in one_line(err)


def test_artifact_and_out_checks(tmp_path, capsys):
    code, err = run_main(capsys, [str(tmp_path / "nope"), "--out", str(tmp_path / "c.json")])
    assert code == 2 and "not an artifact directory" in one_line(err)
    art = fake_artifact(tmp_path)
    code, err = run_main(capsys, [str(art), "--out", str(tmp_path / "no" / "c.json")])
    assert code == 2 and "does not exist" in one_line(err)
    (tmp_path / "other").mkdir()
    twin = fake_artifact(tmp_path / "other", "art")
    code, err = run_main(capsys, [str(art), str(twin), "--out", str(tmp_path / "c.json")])
    assert code == 2 and "names must be distinct" in one_line(err)


def test_x86_report_must_be_a_device_bench_report_of_these_artifacts(tmp_path, capsys):
    art = fake_artifact(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}', encoding="utf-8")
    code, err = run_main(capsys, [str(art), "--out", str(tmp_path / "c.json"),
                                  "--x86-report", str(bad)])
    assert code == 2 and f"--x86-report {bad}:" in one_line(err)


def test_usage_errors_exit_2_via_argparse(capsys):
    with pytest.raises(SystemExit) as e:
        pi_main.main([])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        pi_main.main(["art"])  # --out is required
    assert e.value.code == 2
    assert "--out" in capsys.readouterr().err


def test_defaults():
    args = pi_main.parser().parse_args(["a", "--out", "c.json"])
    assert args.root_cache.endswith(".cache/edgerec/arm64-root")
    assert args.suite == "bookworm" and args.x86_report is None
    assert args.requests >= 1 and args.queries >= 1 and args.k == 20


def test_check_tools_and_platform_tags():
    assert pi_root.check_tools(ALL_TOOLS.get) == ALL_TOOLS
    tags = pi_root.platform_tags("2.36")
    assert tags[0] == "manylinux2014_aarch64"
    assert "manylinux_2_27_aarch64" in tags and "manylinux_2_36_aarch64" in tags
    assert "manylinux_2_37_aarch64" not in tags
    with pytest.raises(pi_root.PiCheckError, match="older than manylinux2014"):
        pi_root.platform_tags("2.12")


def test_commands_in_the_root_have_no_network_and_a_clean_env():
    cmd = pi_root.in_root(Path("/r"), ["/opt/edgerec/bin/python", "-V"], env={"A": "b"},
                          cwd="/tmp/w")
    assert cmd[:4] == ["unshare", "--mount", "--net", "--fork"]
    assert "chroot" in cmd[6] and "env -i" in cmd[6]
    assert "/r" in cmd and "A=b" in cmd and "PATH=/usr/local/bin:/usr/bin:/bin" in cmd
    assert cmd[-2:] == ["/opt/edgerec/bin/python", "-V"] and "/tmp/w" in cmd


def test_binfmt_states(tmp_path):
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /x\n", encoding="ascii")
    assert pi_root.ensure_binfmt("/usr/bin/qemu-aarch64-static", tmp_path) == "already registered"
    (tmp_path / "qemu-aarch64").write_text("disabled\n", encoding="ascii")
    with pytest.raises(pi_root.PiCheckError, match="registered but disabled"):
        pi_root.ensure_binfmt("/usr/bin/qemu-aarch64-static", tmp_path)


def test_label_emulated_marks_the_machine():
    report = {"machine": {"hostname": "h", "cpu": "aarch64"}}
    pi_main.label_emulated(report, "Intel Xeon")
    assert report["machine"]["emulated"] == "qemu-user"
    assert report["machine"]["cpu"].startswith("emulated (qemu-user)")
    assert "qemu-user" in report["machine"]["hostname"]


# ----------------------------------------------------------------------------- parity rules


def ans(items, scores):
    return {"input": ["x"], "items": items, "scores": scores}


def test_int8_needs_identical_items():
    a = ans(["a", "b", "c"], [3.0, 2.0, 1.0])
    assert parity.compare_answer(a, a, exact=True, rtol=0, atol=0)["ok"]
    swapped = ans(["b", "a", "c"], [3.0, 3.0, 1.0])
    assert not parity.compare_answer(a, swapped, exact=True, rtol=1, atol=1)["ok"]


def test_float_allows_only_near_tie_swaps():
    a = ans(["a", "b", "c"], [3.0, 2.0000001, 2.0])
    tie_swap = ans(["a", "c", "b"], [3.0, 2.0000001, 2.0])
    r = parity.compare_answer(a, tie_swap, exact=False, rtol=1e-4, atol=1e-5)
    assert r["ok"] and not r["same_items"]
    real_swap = ans(["b", "a", "c"], [3.0, 2.0000001, 2.0])
    assert not parity.compare_answer(a, real_swap, exact=False, rtol=1e-4, atol=1e-5)["ok"]
    drift = ans(["a", "b", "c"], [3.01, 2.0000001, 2.0])
    assert not parity.compare_answer(a, drift, exact=False, rtol=1e-4, atol=1e-5)["ok"]
    cutoff = ans(["a", "b", "d"], [3.0, 2.0000001, 2.0000002])  # a different pick at the tie
    assert parity.compare_answer(a, cutoff, exact=False, rtol=1e-4, atol=1e-5)["ok"]


def probe_doc(items, weights="int8-per-row", name="art"):
    return {"artifacts": [{"name": name, "target": "tflite", "error": None,
                           "quantization": {"weights": weights},
                           "modes": {"history": [ans(items, [2.0, 1.0])]}}]}


def test_compare_probes_and_recall():
    ok = parity.compare_probes(probe_doc(["a", "b"]), probe_doc(["a", "b"]))
    assert ok[0]["ok"] and ok[0]["modes"]["history"]["identical_topk"] == 1
    bad = parity.compare_probes(probe_doc(["a", "b"]), probe_doc(["b", "a"]))
    assert not bad[0]["ok"]
    with pytest.raises(ValueError, match="order"):
        parity.compare_probes(probe_doc(["a"]), probe_doc(["a"], name="other"))
    rep = {"targets": [{"artifact": {"name": "art"},
                        "accuracy": {"modes": {"history": {"recall@20": 0.25}}}}]}
    other = json.loads(json.dumps(rep))
    assert parity.compare_recall(rep, other)[0]["ok"]
    other["targets"][0]["accuracy"]["modes"]["history"]["recall@20"] = 0.26
    assert not parity.compare_recall(rep, other)[0]["ok"]


# ----------------------------------------------------------------------------- the probe


def test_probe_is_deterministic_and_self_consistent(tmp_path):
    from exporters import export_ir

    ir = make_ir(num_users=30, num_items=120, dim=8, seed=3, string_ids=True)
    art = tmp_path / "art-numpy"
    export_ir(ir, art, "numpy", k=20, history_capacity=16)
    out = tmp_path / "p.json"
    assert probe.main([str(art), "--out", str(out), "--queries", "12", "--k", "10"]) == 0
    doc = json.loads(out.read_text())
    again = probe.probe([art], queries=12, seed=0, k=10)
    assert doc["format"] == probe.PROBE_FORMAT
    (a,) = doc["artifacts"]
    assert a["error"] is None and set(a["modes"]) == set(ir.modes)
    assert all(len(r["items"]) == 10 and r["scores"] == sorted(r["scores"], reverse=True)
               for rows in a["modes"].values() for r in rows)
    verdict = parity.compare_probes(doc, again)
    assert verdict[0]["ok"] and all(m["identical_topk"] == 12
                                    for m in verdict[0]["modes"].values())
    broken = probe.probe([tmp_path / "missing"], queries=2, seed=0, k=5)
    assert broken["artifacts"][0]["error"].startswith("TargetError")


def test_summary_labels_arm_timings_as_emulated():
    def report(p50):
        return {"targets": [{"artifact": {"name": "art"}, "error": None,
                             "modes": {"history": {"latency": {"p50_ms": p50}}}}]}

    topk = parity.compare_probes(probe_doc(["a", "b"]), probe_doc(["a", "b"]))
    recall = parity.compare_recall(
        {"targets": [{"artifact": {"name": "art"},
                      "accuracy": {"modes": {"history": {"recall@20": 0.5}}}}]},
        {"targets": [{"artifact": {"name": "art"},
                      "accuracy": {"modes": {"history": {"recall@20": 0.5}}}}]})
    check = {"ok": True, "parity": {"topk": topk, "recall@20": recall},
             "arm": {"cpu": "cortex-a76", "report": report(9.0),
                     "root": {"suite": "bookworm", "python": "3.11", "glibc": "2.36"}},
             "x86": {"report": report(0.3)}}
    lines = pi_main.summary_lines(check)
    assert "not how fast a Raspberry Pi is" in lines[0]
    assert lines[1].startswith("ok ") and "9.000 ms emulated (qemu-user)" in lines[1]
    assert "0.300 ms x86" in lines[1] and lines[-1] == "parity: HOLDS"


def test_int4_item_weights_take_the_integer_rule_and_exact_reaches_the_probe():
    bad = parity.compare_probes(probe_doc(["a", "b"], weights="int8-per-row+int4-item"),
                                probe_doc(["b", "a"], weights="int8-per-row+int4-item"))
    assert bad[0]["rule"] == "identical top-k" and not bad[0]["ok"]
    args = pi_main.parser().parse_args(["a", "--out", "c.json", "--exact"])
    assert "--exact" in pi_main._probe_args(args)
    assert "--exact" not in pi_main._probe_args(pi_main.parser().parse_args(["a", "--out", "c.json"]))
    assert probe.parser().parse_args(["a", "--out", "o", "--exact"]).exact
