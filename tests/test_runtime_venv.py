"""Each device extra installs alone: a fresh venv with only ``edgerec[runtime]`` (numpy +
ai-edge-litert), another with only ``edgerec[runtime-onnx]`` (numpy + onnxruntime), no torch, no
tensorflow. Each loads artifacts made here, gives the numpy reference's top-k exactly, and runs
``python -m device_bench`` on its interpreter's artifact. A whole-project dependency checker
cannot see an import that one extra misses; this can.

Slow (two venvs and two pip resolves); needs PyPI, nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import runtime
from device_bench.report import validate_report
from runtime.errors import BackendUnavailable
from tests.factories import exported_artifact, numpy_artifact, small_ir

ROOT = Path(__file__).resolve().parents[1]
USERS, HISTORIES = [0, 3, 7, 11], [[1], [5, 9, 2], list(range(40, 60))]

DEVICE_SCRIPT = textwrap.dedent("""
    import json, sys
    import runtime
    out = {}
    for target, path in json.loads(sys.argv[1]).items():
        rec = runtime.load(path, exact=True)  # bit-exact kernels: same indices as the reference
        s = rec.session()
        s.add(int(sys.argv[3]))
        out[target] = {
            "backend": rec.backend_name,
            "lookup": [rec.recommend(u, k=10) for u in json.loads(sys.argv[2])["users"]],
            "history": [rec.recommend_from_history(h, k=10) for h in json.loads(sys.argv[2])["histories"]],
            "session": s.recommend(5),
        }
    bad = sorted(m for m in ("torch", "tensorflow", "edgerec", "torch_geometric") if m in sys.modules)
    out["heavy_modules"] = bad
    print(json.dumps(out))
""")


def _source_tree(dst: Path) -> Path:
    """A copy of what the wheel is built from, so the build never writes into the checkout."""
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, dst / name)
    if not (dst / "README.md").exists():
        (dst / "README.md").write_text("edgerec\n")
    for pkg in ("runtime", "edgerec", "exporters", "device_bench"):
        if (ROOT / pkg).is_dir():
            shutil.copytree(ROOT / pkg, dst / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, **kw)
    assert r.returncode == 0, f"{cmd[:4]} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


def _as_pairs(recs):
    return [[[i, s] for i, s in r] for r in recs]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("arts")
    ir = small_ir(num_users=12, num_items=80)
    return {"numpy": numpy_artifact(ir, root / "art-numpy"),
            "tflite": exported_artifact(ir, root / "art-tflite", "tflite"),
            "onnx": exported_artifact(ir, root / "art-onnx", "onnx")}


@pytest.mark.slow
@pytest.mark.parametrize(("extra", "target", "backend"), [("runtime", "tflite", "litert"),
                                                          ("runtime-onnx", "onnx", "onnx")])
def test_device_extra_alone_runs_runtime_and_bench(extra, target, backend, artifacts, tmp_path):
    (tmp_path / "src").mkdir()
    src = _source_tree(tmp_path / "src")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    py = str(venv / "bin" / "python")
    _run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", f"{src}[{extra}]"])
    freeze = _run([py, "-m", "pip", "freeze"]).stdout.lower()
    assert "torch" not in freeze and "tensorflow" not in freeze, freeze
    arts = {t: artifacts[t] for t in ("numpy", target)}
    script = tmp_path / "device.py"
    script.write_text(DEVICE_SCRIPT)
    args = json.dumps({"users": USERS, "histories": HISTORIES})
    out = json.loads(_run([py, "-I", str(script), json.dumps({t: str(p) for t, p in arts.items()}),
                           args, "17"], cwd=tmp_path).stdout)
    assert out["heavy_modules"] == []
    assert out[target]["backend"] == backend
    for t, art in arts.items():
        # The numpy reference with the target's own activation arithmetic: same items, in order.
        acts = runtime.load(art).manifest["quantization"]["activations"]
        ref = runtime.load(arts["numpy"], backend="reference", activations=acts)
        got = out[t]
        want_lookup = [ref.recommend(u, k=10) for u in USERS]
        want_hist = [ref.recommend_from_history(h, k=10) for h in HISTORIES]
        assert [[i for i, _ in r] for r in got["lookup"]] == [[i for i, _ in r] for r in want_lookup], t
        assert [[i for i, _ in r] for r in got["history"]] == [[i for i, _ in r] for r in want_hist], t
        assert [i for i, _ in got["session"]] == [i for i, _ in ref.recommend_from_history([17], k=5)]
        if t == "numpy":
            assert got["lookup"] == _as_pairs(want_lookup)

    # device_bench in the same venv: its worker and baseline processes need nothing more.
    report = tmp_path / "report.json"
    _run([py, "-I", "-m", "device_bench", str(artifacts[target]), "--requests", "20",
          "--warmup", "2", "--batch", "4", "--out", str(report)], cwd=tmp_path)
    rep = json.loads(report.read_text())
    validate_report(rep)
    (t,) = rep["targets"]
    assert t["error"] is None and t["backend"] == backend
    assert t["memory"]["peak_rss_bytes"] > 0


def test_backends_unavailable_is_one_line(monkeypatch):
    import builtins
    real = builtins.__import__

    def fake(name, *a, **kw):
        if name.startswith(("onnxruntime", "ai_edge_litert", "tflite_runtime")):
            raise ImportError(f"No module named {name!r}")
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", fake)
    from runtime import backends
    with pytest.raises(BackendUnavailable, match="no interpreter for a 'tflite' artifact: litert: ") as e:
        backends.resolve("auto", "tflite")
    assert "\n" not in str(e.value)
    with pytest.raises(BackendUnavailable, match="onnxruntime is not installed"):
        backends.resolve("onnx", "onnx")
