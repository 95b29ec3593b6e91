"""Are the artifacts of two commits byte-identical? (issue 19: "behaviour unchanged").

Checks out ``--base`` (default ``main``) with ``git worktree add`` into a temporary directory,
trains one small synthetic LightGCN checkpoint with the *current* tree, then runs
``edgerec export`` from that checkpoint with the same options under both trees, in this one
Python environment (``PYTHONPATH`` selects the tree), and compares every file of every artifact
byte for byte. The matrix: tflite, onnx and numpy in int8 and float32, tflite and onnx in
int4-item and int4 (ONNX int4 differs from bases older than the commit that packs it, on
purpose). Exit status 0 when all are identical, 1 otherwise (each differing file is named).

    python experiments/byte_identical.py [--base COMMIT] [--keep DIR]
"""

from __future__ import annotations

import argparse
import filecmp
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# (target, quantize): each exported with the same options under both trees
MATRIX = [("tflite", "int8"), ("tflite", "float32"), ("tflite", "int4-item"), ("tflite", "int4"),
          ("onnx", "int8"), ("onnx", "float32"), ("onnx", "int4-item"), ("onnx", "int4"),
          ("numpy", "int8"), ("numpy", "float32")]
OPTIONS = ["--dims", "full", "--k", "5", "--history-capacity", "12", "--force"]


def _run(tree: Path, args: list[str], cwd: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "edgerec", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"edgerec {' '.join(args)} failed under {tree}:\n{proc.stderr.strip()[-2000:]}")


def _checkpoint(work: Path) -> Path:
    """A small synthetic dataset and checkpoint, made once by the current tree (2,000 items so
    that the TFLite two-stage top-k is used at k=5; width 17 so int4 rows pad a column)."""
    data, ckpt = work / "data", work / "ckpt"
    _run(ROOT, ["synth", str(data), "--users", "300", "--items", "2000",
                "--communities", "6", "--seed", "3"], work)
    _run(ROOT, ["train", "--data", str(data), "--out", str(ckpt), "--dim", "17", "--layers", "2",
                "--epochs", "10", "--eval-every", "5", "--seed", "0", "--threads", "1"], work)
    return ckpt


def _export_all(tree: Path, ckpt: Path, out: Path) -> None:
    for target, quantize in MATRIX:
        _run(tree, ["export", str(ckpt), "--target", target, "--quantize", quantize,
                    "--out", str(out / f"{target}-{quantize}"), *OPTIONS], out.parent)


def _differences(a: Path, b: Path) -> list[str]:
    """Relative paths that differ between two directory trees (missing on one side included)."""
    files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    out = [f"{p} (only in base)" for p in sorted(files_a - files_b)]
    out += [f"{p} (only in current)" for p in sorted(files_b - files_a)]
    out += [str(p) for p in sorted(files_a & files_b)
            if not filecmp.cmp(a / p, b / p, shallow=False)]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="main", help="commit to compare with (default: main)")
    ap.add_argument("--keep", type=Path, help="keep the artifacts in this directory")
    args = ap.parse_args()
    base = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", args.base + "^{commit}"],
                          capture_output=True, text=True)
    if base.returncode:
        raise SystemExit(f"unknown commit {args.base!r}")
    commit = base.stdout.strip()
    with tempfile.TemporaryDirectory(prefix="byte-identical-") as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        tree = work / "base-tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit],
                       check=True, capture_output=True)
        try:
            ckpt = _checkpoint(work)
            for name, src in (("base", tree), ("current", ROOT)):
                (work / name).mkdir(exist_ok=True)
                _export_all(src, ckpt, work / name)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                           check=False, capture_output=True)
        bad = 0
        for target, quantize in MATRIX:
            name = f"{target}-{quantize}"
            diff = _differences(work / "base" / name, work / "current" / name)
            bad += bool(diff)
            print(f"{name:18s} {'identical' if not diff else 'DIFFERS: ' + ', '.join(diff)}")
        print(f"base {commit[:10]} vs current tree: "
              f"{'all byte-identical' if not bad else f'{bad} of {len(MATRIX)} artifacts differ'}")
        return int(bool(bad))


if __name__ == "__main__":
    sys.exit(main())
