"""A missing optional dependency is one line naming what to install, for every CLI command.

Each command runs in a subprocess whose import system refuses a module (a meta-path finder that
raises ``ModuleNotFoundError``, as an absent package does), through the same entry point as the
``edgerec`` command.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgerec.optional import extras_providing, install_hint, module_of

ROOT = Path(__file__).resolve().parents[1]

HIDING = textwrap.dedent("""
    import sys
    hidden = set(sys.argv[1].split(","))

    class Hide:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in hidden:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Hide())
    sys.argv = ["edgerec", *sys.argv[2:]]
    from edgerec.optional import run_cli
    run_cli()
""")


def edgerec_without(hidden: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", HIDING, hidden, *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False)


def command_paths() -> list[tuple[str, ...]]:
    """Every leaf command of the CLI, as its words after ``edgerec``."""
    import click

    from edgerec.cli import cli

    out = []

    def walk(group: click.Group, prefix: tuple[str, ...]) -> None:
        for name, cmd in group.commands.items():
            if isinstance(cmd, click.Group):
                walk(cmd, (*prefix, name))
            else:
                out.append((*prefix, name))

    walk(cli, ())
    return sorted(out)


def args_for(tmp: Path, data: Path, ckpt: Path, art: Path) -> dict[tuple[str, ...], list]:
    """Valid arguments for each command: far enough to need its optional imports."""
    return {
        ("synth",): [tmp / "synth", "--users", 20, "--items", 30],
        ("train",): ["--data", data, "--out", tmp / "ckpt", "--epochs", 1],
        ("evaluate",): [ckpt],
        ("compile",): [ckpt, "--out", tmp / "ir"],
        ("inspect",): [ckpt],
        ("export",): [ckpt, "--target", "onnx", "--out", tmp / "art"],
        ("bench",): [art, "--checkpoint", ckpt, "--requests", 5, "--report", tmp / "rep"],
        ("demo",): ["--out", tmp / "demo", "--users", 20, "--items", 30, "--epochs", 1],
        ("import",): ["--pyg-model", ckpt / "weights.safetensors", "--edge-index",
                      ckpt / "graph.safetensors", "--num-users", 300, "--num-items", 600,
                      "--out", tmp / "imported"],
        ("web",): [art, "--out", tmp / "site"],
    }


@pytest.fixture(scope="module")
def onnx_art(tmp_path_factory) -> Path:
    from tests.factories import make_artifact

    return make_artifact(tmp_path_factory.mktemp("art"), "onnx")[0]


def test_every_command_without_torch_is_one_line(synthetic_dir, trained_ckpt, onnx_art,
                                                 tmp_path):
    table = args_for(tmp_path, synthetic_dir, trained_ckpt, onnx_art)
    missing = [p for p in command_paths() if p not in table]
    assert not missing, f"add arguments for {missing} to args_for in this test"
    # The commands that train or read a model's weights cannot do without torch; the others
    # (synth, web...) succeed, or stop on their own one-line error (web: npm packages absent).
    needs_torch = {("train",), ("evaluate",), ("compile",), ("export",), ("demo",), ("import",)}
    for path, args in table.items():
        r = edgerec_without("torch", *path, *args, cwd=tmp_path)
        assert "Traceback" not in r.stderr, (path, r.stderr)
        if r.returncode == 0 and path not in needs_torch:
            continue
        # Progress bars may have started on stderr; the error itself is one line.
        (line,) = [ln.strip() for ln in r.stderr.splitlines() if "error" in ln.lower()]
        assert line.startswith("error: "), (path, line)
        if path in needs_torch or "torch" in line:
            assert line.startswith("error: 'torch' is not installed; pip install "), (path, line)
            assert line.endswith('[compiler]"'), (path, line)


def test_cli_without_click_is_one_line(tmp_path):
    """The bare install (numpy only) has the ``edgerec`` command but not click."""
    r = edgerec_without("click", "--help", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: 'click' is not installed; pip install ")
    assert line.endswith('[compiler]"')


def test_extras_are_read_from_requirements():
    requires = ['numpy>=1.24', 'onnxruntime>=1.17; extra == "runtime-onnx"',
                'torch<2.14,>=2.2; extra == "compiler"', 'onnxruntime>=1.17; extra == "compiler"',
                'tensorflow-cpu>=2.16; platform_machine == "x86_64" and extra == "compiler"',
                'torch-geometric>=2.5; extra == \'compiler\'', 'pytest>=8; extra == "dev"',
                'edgerec[compiler,dev]; extra == "all"']
    assert module_of("torch-geometric") == "torch_geometric"
    assert module_of("tensorflow-cpu") == "tensorflow"
    assert extras_providing("onnxruntime", requires) == ["runtime-onnx", "compiler"]
    assert extras_providing("tensorflow", requires) == ["compiler"]
    assert extras_providing("torch_geometric", requires) == ["compiler"]
    assert extras_providing("numpy", requires) == [""]
    assert extras_providing("scipy", requires) == []
    assert install_hint("onnxruntime", requires).endswith('[compiler]"')
    assert install_hint("onnxruntime", requires, prefer="runtime").endswith('[runtime-onnx]"')
    assert install_hint("pytest.mark", requires).endswith('[dev]"')
    assert install_hint("scipy", requires) is None
