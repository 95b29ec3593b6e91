"""``python -m device_bench.pi ARTIFACT... --out check.json``: the Arm check without a Pi.

Steps: check the host tools (debootstrap, qemu-user-static; a one-line refusal if missing),
build or reuse the cached arm64 root (:mod:`device_bench.pi.root`), copy ``runtime``,
``device_bench`` and the artifacts in, run ``python -m device_bench`` and the parity probe
inside it under qemu-user with no network, run the same here (or take ``--x86-report``), and
compare: identical top-k for int8 artifacts, float artifacts within tolerance, same Recall@20.
Exit status: 0 parity holds, 1 it does not (or a target failed), 2 the check could not run.
Arm timings in the output are emulated (qemu-user) and say so; they are not device figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import runtime
from device_bench.__main__ import timing_options
from device_bench.pi import parity
from device_bench.pi.root import (
    DEFAULT_CACHE,
    MIRROR,
    PACKAGES,
    SUITE,
    VENV,
    PiCheckError,
    RootInfo,
    check_root_user,
    check_tools,
    in_root,
    prepare,
)
from device_bench.report import ReportError, validate_report, write_report

CHECK_FORMAT = "edgerec-pi-check"
CHECK_FORMAT_VERSION = 1
EMULATED = "emulated (qemu-user)"
CPUS = {"cortex-a76": "Raspberry Pi 5 (BCM2712)", "cortex-a72": "Raspberry Pi 4 (BCM2711)",
        "max": "every feature qemu implements (SVE included; no Pi has it)"}
TIMING_NOTE = (f"Arm timings are {EMULATED} on an x86 host: they show the code runs, "
               "not how fast a Raspberry Pi is. Measure a Pi with `edgerec bench --ssh`.")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m device_bench.pi",
        description="Run device_bench and a per-query parity probe on an emulated arm64 "
                    "Debian userland (qemu-user) and compare with this x86 machine.")
    timing_options(p, requests=200, warmup=10, batch=16)
    p.add_argument("--out", required=True, metavar="FILE", help="check report JSON to write")
    p.add_argument("--root-cache", default=str(DEFAULT_CACHE), metavar="DIR",
                   help="where the arm64 root and wheels are cached (default: %(default)s)")
    p.add_argument("--x86-report", default=None, metavar="FILE",
                   help="device_bench report of the same artifacts on x86 (default: run it here)")
    p.add_argument("--queries", type=int, default=200, help="parity-probe requests per mode")
    p.add_argument("--k", type=int, default=20, help="top-k compared by the probe")
    p.add_argument("--exact", action="store_true",
                   help="TFLite: device_bench and the probe use the builtin kernels (no XNNPACK) on "
                        "both machines: the arithmetic the manifest describes, bit for bit")
    p.add_argument("--rtol", type=float, default=1e-4, help="float artifacts: relative score tol")
    p.add_argument("--atol", type=float, default=1e-5, help="float artifacts: absolute score tol")
    p.add_argument("--cpu", default="cortex-a76", choices=sorted(CPUS),
                   help="CPU qemu emulates, i.e. the instruction set the kernels see: "
                        "cortex-a76 = Raspberry Pi 5, cortex-a72 = Pi 4 (default: %(default)s)")
    p.add_argument("--suite", default=SUITE, help="Debian suite of the root (default: %(default)s)")
    p.add_argument("--mirror", default=MIRROR, help="Debian mirror (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=7200.0, help="seconds allowed per step")
    return p


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PiCheckError(f"{what} {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PiCheckError(f"{what} {path}: unreadable ({e})") from None


def check_args(args: argparse.Namespace) -> None:
    """Everything that can be checked before anything slow happens."""
    for name in ("requests", "batch", "queries", "k"):
        if getattr(args, name) < 1:
            raise PiCheckError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.warmup < 0:
        raise PiCheckError(f"--warmup must be at least 0, got {args.warmup}")
    if not (args.rtol >= 0 and args.atol >= 0):
        raise PiCheckError("--rtol and --atol must be non-negative")
    names = []
    for a in args.artifacts:
        if not (Path(a) / "manifest.json").is_file():
            raise PiCheckError(f"{a}: not an artifact directory (no manifest.json)")
        names.append(Path(a).resolve().name)
    if len(set(names)) != len(names):
        raise PiCheckError("artifact directory names must be distinct (reports match by name)")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise PiCheckError(f"--out {out}: directory {out.parent} does not exist")
    if args.x86_report:
        report = _read_json(Path(args.x86_report), "--x86-report")
        try:
            validate_report(report)
        except ReportError as e:
            raise PiCheckError(f"--x86-report {args.x86_report}: {e}") from None
        have = [(t.get("artifact") or {}).get("name") for t in report["targets"]]
        if have != names:
            raise PiCheckError(f"--x86-report covers {have}, not the artifacts given ({names})")


def _bench_args(args: argparse.Namespace) -> list[str]:
    return ["--requests", str(args.requests), "--warmup", str(args.warmup), "--batch",
            str(args.batch), "--threads", "1", "--seed", str(args.seed),
            *(["--exact"] if args.exact else [])]


def _probe_args(args: argparse.Namespace) -> list[str]:
    return ["--queries", str(args.queries), "--k", str(args.k), "--seed", str(args.seed),
            *(["--exact"] if args.exact else [])]


def _package_roots() -> list[Path]:
    return [Path(m.__file__).resolve().parent for m in (runtime, sys.modules["device_bench"])]


def _ran(proc: subprocess.CompletedProcess[str], what: str, out: Path) -> Any:
    """The JSON a step wrote (exit 1 = some target failed, still a report), else an error."""
    if proc.returncode in (0, 1) and out.is_file():
        return _read_json(out, what)
    lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    raise PiCheckError(f"{what} failed (exit {proc.returncode}): "
                       f"{lines[-1] if lines else 'no output'}")


def _call(cmd: list[str], what: str, timeout: float,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              check=False)
    except subprocess.TimeoutExpired:
        raise PiCheckError(f"{what} timed out after {timeout:g} s") from None


def run_host(args: argparse.Namespace, tmp: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """device_bench (unless ``--x86-report``) and the probe on this machine."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(p.parent) for p in _package_roots()]
                                        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    arts = [str(Path(a).resolve()) for a in args.artifacts]
    if args.x86_report:
        report = _read_json(Path(args.x86_report), "--x86-report")
    else:
        out = tmp / "x86_report.json"
        proc = _call([sys.executable, "-m", "device_bench", *arts, *_bench_args(args),
                      "--out", str(out)], "device_bench on this machine", args.timeout, env)
        report = _ran(proc, "device_bench on this machine", out)
    out = tmp / "x86_probe.json"
    proc = _call([sys.executable, "-m", "device_bench.pi.probe", *arts, *_probe_args(args),
                  "--out", str(out)], "the probe on this machine", args.timeout, env)
    return report, _ran(proc, "the probe on this machine", out)


def _ignore_caches(_dir: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "__pycache__"]


def run_arm(args: argparse.Namespace, info: RootInfo,
            say: Callable[[str], None]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Copy packages and artifacts into the root, run device_bench and the probe there."""
    work = Path(tempfile.mkdtemp(prefix="edgerec-pi-", dir=info.path / "tmp"))
    inner = "/" + str(work.relative_to(info.path))
    try:
        for pkg in _package_roots():
            shutil.copytree(pkg, work / "pkg" / pkg.name, ignore=_ignore_caches)
        arts = []
        for i, a in enumerate(args.artifacts):
            src = Path(a).resolve()
            shutil.copytree(src, work / "artifacts" / str(i) / src.name, ignore=_ignore_caches)
            arts.append(f"{inner}/artifacts/{i}/{src.name}")
        env = {"PYTHONPATH": f"{inner}/pkg", "QEMU_CPU": args.cpu}
        py = f"{VENV}/bin/python"
        say(f"device_bench inside the arm64 root, {EMULATED} as {args.cpu} (slow) ...")
        t0 = time.monotonic()
        proc = _call(in_root(info.path, [py, "-m", "device_bench", *arts, *_bench_args(args),
                                         "--out", f"{inner}/arm_report.json"], env=env,
                             cwd=inner), "device_bench in the arm64 root", args.timeout)
        report = _ran(proc, "device_bench in the arm64 root", work / "arm_report.json")
        say(f"  done in {time.monotonic() - t0:.0f} s; the parity probe ...")
        proc = _call(in_root(info.path, [py, "-m", "device_bench.pi.probe", *arts,
                                         *_probe_args(args), "--out", f"{inner}/arm_probe.json"],
                             env=env, cwd=inner), "the probe in the arm64 root", args.timeout)
        probe = _ran(proc, "the probe in the arm64 root", work / "arm_probe.json")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report, probe


def label_emulated(report: dict[str, Any], host_cpu: str | None, cpu: str = "aarch64") -> None:
    """Mark an Arm report's machine as emulated so no merge can pass it off as a device."""
    m = report["machine"]
    m["emulated"] = "qemu-user"
    m["cpu"] = f"{EMULATED} {cpu} on {host_cpu or 'an x86 host'}"
    m["hostname"] = f"{m.get('hostname')}-arm64-qemu-user"


def _p50(report: dict[str, Any], name: str) -> dict[str, float]:
    for t in report["targets"]:
        if t["artifact"]["name"] == name and not t.get("error"):
            return {m: v["latency"]["p50_ms"] for m, v in t["modes"].items()}
    return {}


def summary_lines(check: dict[str, Any]) -> list[str]:
    """The human-readable verdict, one artifact per line."""
    arm, x86 = check["arm"]["report"], check["x86"]["report"]
    recall = {r["name"]: r for r in check["parity"]["recall@20"]}
    lines = [f"arm64 root: Debian {check['arm']['root']['suite']}, qemu -cpu "
             f"{check['arm']['cpu']}, Python "
             f"{check['arm']['root']['python']}, glibc {check['arm']['root']['glibc']}; "
             f"{TIMING_NOTE}"]
    for row in check["parity"]["topk"]:
        name = row["name"]
        if row.get("error"):
            lines.append(f"FAIL {name}: {row['error']}")
            continue
        topk = ", ".join(f"{m} {v.get('identical_topk', 0)}/{v.get('queries', 0)} identical"
                         f" (max |d score| {v.get('max_abs_score_diff', float('nan')):.2g})"
                         for m, v in row["modes"].items())
        rec = recall.get(name, {})
        rc = ", ".join(f"{m} {v['other']:.4f} vs x86 {v['ref']:.4f}"
                       if v["ref"] is not None and v["other"] is not None else f"{m} n/a"
                       for m, v in rec.get("modes", {}).items())
        lat_a, lat_x = _p50(arm, name), _p50(x86, name)
        lat = ", ".join(f"{m} p50 {lat_a[m]:.3f} ms {EMULATED} vs {lat_x.get(m, float('nan')):.3f}"
                        " ms x86" for m in lat_a)
        ok = row["ok"] and rec.get("ok", False)
        lines.append(f"{'ok  ' if ok else 'FAIL'} {name} [{row['rule']}]: top-k {topk}; "
                     f"Recall@20 {rc or 'n/a'}; {lat}")
    lines.append("parity: " + ("HOLDS" if check["ok"] else "BROKEN"))
    return lines


def run_check(args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    info = prepare(Path(args.root_cache).expanduser(), suite=args.suite, mirror=args.mirror,
                   packages=PACKAGES, say=say)
    with tempfile.TemporaryDirectory(prefix="edgerec-pi-host-") as tmp:
        say("device_bench and the probe on this machine ...")
        x86_report, x86_probe = run_host(args, Path(tmp))
    arm_report, arm_probe = run_arm(args, info, say)
    label_emulated(arm_report, x86_report["machine"].get("cpu"), args.cpu)
    try:
        topk = parity.compare_probes(x86_probe, arm_probe, rtol=args.rtol, atol=args.atol)
    except ValueError as e:
        raise PiCheckError(f"probe files do not line up: {e}") from None
    recall = parity.compare_recall(x86_report, arm_report)
    failed = [t for r in (x86_report, arm_report) for t in r["targets"] if t.get("error")]
    ok = not failed and all(r["ok"] for r in topk) and all(r["ok"] for r in recall)
    return {
        "format": CHECK_FORMAT, "format_version": CHECK_FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": ["python", "-m", "device_bench.pi", *sys.argv[1:]],
        "timing_note": TIMING_NOTE,
        "ok": ok,
        "parity": {"rules": {"int8": "identical top-k ids for every query",
                             "float": f"scores within {args.atol:g} + {args.rtol:g}*|s|, ids "
                                      "equal up to near-ties", "recall@20": "equal (1e-9)"},
                   "topk": topk, "recall@20": recall},
        "arm": {"emulation": EMULATED, "cpu": args.cpu, "cpu_stands_for": CPUS[args.cpu],
                "root": {"path": str(info.path), "suite": info.suite, "python": info.python,
                         "glibc": info.glibc, "packages": info.packages},
                "report": arm_report, "probe": arm_probe},
        "x86": {"source": args.x86_report or "run here", "report": x86_report,
                "probe": x86_probe},
    }


def main(argv: Sequence[str] | None = None,
         which: Callable[[str], str | None] = shutil.which,
         euid: Callable[[], int] = os.geteuid) -> int:
    args = parser().parse_args(argv)

    def say(msg: str) -> None:
        print(f"device_bench.pi: {msg}", file=sys.stderr, flush=True)

    try:
        check_args(args)
        check_tools(which)
        check_root_user(euid)
        check = run_check(args, say)
    except PiCheckError as e:
        print(f"device_bench.pi: error: {e}", file=sys.stderr)
        return 2
    write_report(args.out, check)
    for line in summary_lines(check):
        print(line)
    return 0 if check["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
