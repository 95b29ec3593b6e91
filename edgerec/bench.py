"""Workstation side of ``edgerec bench``: run device_bench here or on a device over ssh, merge.

``device_bench`` (which imports only ``runtime``) does the measuring, in its own processes, on
the machine that will serve. This module starts it — locally with ``python -m device_bench``,
or remotely by copying the artifacts and the ``runtime`` + ``device_bench`` sources into a
``mktemp -d`` directory over ssh, running it there with ``PYTHONPATH`` and removing the
directory afterwards (also on failure) — then merges its report with precomputed baselines
(e.g. the PyG full-graph model, measured with :func:`measure_callable`) into ``report.json``,
``report.md`` and ``report.png``.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import device_bench
import runtime
from device_bench.measure import measure_calls
from device_bench.report import ReportError, check_latency, validate_report
from edgerec.errors import EdgerecError
from runtime.artifact import is_finite_number

BENCH_FORMAT = "edgerec-bench-report"
BENCH_FORMAT_VERSION = 1
MODES = ("history", "lookup")
NUMPY_REFERENCE = "float32-numpy-reference"  # the directory name of the reference artifact


class BenchError(EdgerecError):
    """The benchmark could not run (bad arguments, ssh failure, device_bench refused)."""


# ----------------------------------------------------------------------------- measuring here


def measure_callable(fn: Callable[..., object], requests: int, warmup: int) -> dict[str, Any]:
    """Latency of any callable, in the same shape device_bench reports per mode.

    ``fn`` is called ``1 + warmup + requests`` times, with the call index if it takes one
    argument (so the caller can vary inputs), else with none. Returns ``{"first_ms",
    "warmup": {"count", "mean_ms"}, "latency": {"count", "mean_ms", "std_ms", "min_ms",
    "p5_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms"}}``.
    """
    try:
        takes_index = len(inspect.signature(fn).parameters) >= 1
    except (TypeError, ValueError):
        takes_index = False
    call = fn if takes_index else (lambda _i: fn())
    try:
        return measure_calls(call, requests, warmup)
    except ValueError as e:
        raise BenchError(str(e)) from None


# ----------------------------------------------------------------------------- running device_bench


def _package_root(pkg: Any) -> Path:
    return Path(pkg.__file__).resolve().parent


def _device_bench_args(requests: int, batch: int, threads: int, warmup: int,
                       exact: bool = False) -> list[str]:
    return ["--requests", str(requests), "--batch", str(batch), "--threads", str(threads),
            "--warmup", str(warmup), *(["--exact"] if exact else [])]


def _check_result(proc: subprocess.CompletedProcess[str], where: str) -> None:
    if proc.returncode not in (0, 1):  # 1: report written, some target failed
        lines = [ln for ln in (proc.stderr or "").splitlines() if ln.strip()]
        tail = lines[-1].strip() if lines else f"exit status {proc.returncode}"
        raise BenchError(f"device_bench on {where} failed: {tail}")


def _load_report(text: str, where: str) -> dict[str, Any]:
    try:
        report = json.loads(text)
        validate_report(report)
    except json.JSONDecodeError as e:
        raise BenchError(f"device_bench on {where} returned unreadable JSON ({e})") from None
    except ReportError as e:
        raise BenchError(f"device_bench on {where} returned a malformed report: {e}") from None
    return report


def run_local(artifacts: Sequence[Path], *, requests: int, batch: int, threads: int,
              warmup: int, eval_file: Path | None = None, timeout: float = 3600,
              exact: bool = False) -> dict[str, Any]:
    """``python -m device_bench`` on this machine; its validated report."""
    env = dict(os.environ)
    roots = [str(_package_root(runtime).parent), str(_package_root(device_bench).parent)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(
        roots + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])))
    with tempfile.TemporaryDirectory(prefix="edgerec-bench-") as tmp:
        out = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "device_bench", *map(str, artifacts),
               *_device_bench_args(requests, batch, threads, warmup, exact), "--out", str(out)]
        if eval_file:
            cmd += ["--eval", str(eval_file)]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise BenchError(f"device_bench timed out after {timeout:g} s") from None
        _check_result(proc, "this machine")
        try:
            text = out.read_text(encoding="utf-8")
        except OSError:
            raise BenchError("device_bench on this machine wrote no report") from None
        return _load_report(text, "this machine")


@dataclass(frozen=True)
class SshTarget:
    """``user@host[:port]`` plus how to authenticate."""

    user: str | None
    host: str
    port: int | None
    identity: Path | None = None
    options: tuple[str, ...] = ()

    @property
    def dest(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def __str__(self) -> str:
        return self.dest + (f":{self.port}" if self.port else "")

    def ssh_cmd(self, remote: str) -> list[str]:
        """The ssh command line that runs the shell command ``remote`` on the device."""
        cmd = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20"]
        if self.port:
            cmd += ["-p", str(self.port)]
        if self.identity:
            cmd += ["-i", str(self.identity)]
        return [*cmd, *self.options, self.dest, remote]


_SSH_RE = re.compile(r"^(?:(?P<user>[^@\s:]+)@)?(?P<host>\[[^\]\s]+\]|[^@\s:\[\]]+)(?::(?P<port>\d+))?$")


def parse_ssh(spec: str, identity: Path | None = None,
              options: Sequence[str] = ()) -> SshTarget:
    """Parse ``user@host[:port]`` (``host``, ``[v6addr]:port`` also accepted)."""
    m = _SSH_RE.match(spec.strip())
    if not m:
        raise BenchError(f"--ssh {spec!r}: expected user@host[:port]")
    port = int(m["port"]) if m["port"] else None
    if port is not None and not 0 < port < 65536:
        raise BenchError(f"--ssh {spec!r}: port {port} out of range")
    if identity is not None and not Path(identity).is_file():
        raise BenchError(f"--identity {identity}: no such key file")
    return SshTarget(m["user"], m["host"].strip("[]"), port,
                     Path(identity) if identity else None, tuple(options))


def _ssh(target: SshTarget, remote: str, *, stdin: Any = None, timeout: float = 120,
         what: str) -> str:
    try:
        proc = subprocess.run(target.ssh_cmd(remote), stdin=stdin, capture_output=True,
                              timeout=timeout, check=False)
    except FileNotFoundError:
        raise BenchError("ssh client not found (install openssh-client)") from None
    except subprocess.TimeoutExpired:
        raise BenchError(f"ssh {target}: {what} timed out after {timeout:g} s") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise BenchError(f"ssh {target}: {what} failed: "
                         f"{err[-1] if err else f'exit status {proc.returncode}'}")
    return proc.stdout.decode("utf-8", "replace")


def _bundle(artifacts: Sequence[Path], eval_file: Path | None, dest: Path) -> list[str]:
    """Write the tar.gz sent to the device; the artifacts' names inside it."""
    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if "__pycache__" in info.name.split("/") else info

    names = []
    with tarfile.open(dest, "w:gz") as tar:
        for pkg in (runtime, device_bench):
            root = _package_root(pkg)
            tar.add(root, arcname=f"pkg/{root.name}", filter=keep)
        for i, a in enumerate(artifacts):
            name = f"artifacts/{i}-{a.name}"
            tar.add(a, arcname=name, filter=keep)
            names.append(name)
        if eval_file:
            tar.add(eval_file, arcname="eval.json")
    return names


def _remote_command(path: str) -> str:
    """Quote a remote interpreter path for the remote shell, expanding a leading ``~/``
    (``--remote-python ~/edgerec/bin/python`` is what a user types)."""
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def run_ssh(artifacts: Sequence[Path], target: SshTarget, *, remote_python: str, requests: int,
            batch: int, threads: int, warmup: int, eval_file: Path | None = None,
            timeout: float = 3600, exact: bool = False) -> dict[str, Any]:
    """Copy, run device_bench on the device, fetch its report, remove the remote directory."""
    with tempfile.TemporaryDirectory(prefix="edgerec-bench-") as tmp:
        bundle = Path(tmp) / "bundle.tar.gz"
        names = _bundle(artifacts, eval_file, bundle)
        remote = _ssh(target, 'mktemp -d "${TMPDIR:-/tmp}/edgerec-bench.XXXXXX"',
                      what="mktemp").strip()
        if not remote.startswith("/") or "\n" in remote:
            raise BenchError(f"ssh {target}: mktemp returned {remote!r}")
        d = shlex.quote(remote)
        try:
            with open(bundle, "rb") as f:
                _ssh(target, f"tar -xzf - -C {d}", stdin=f, timeout=timeout, what="copy")
            args = [*(f"{remote}/{n}" for n in names),
                    *_device_bench_args(requests, batch, threads, warmup, exact),
                    "--out", f"{remote}/report.json"]
            if eval_file:
                args += ["--eval", f"{remote}/eval.json"]
            cmd = (f"cd {d} && PYTHONPATH={shlex.quote(remote + '/pkg')} "
                   f"{_remote_command(remote_python)} -m device_bench {shlex.join(args)}"
                   f"; s=$?; if [ $s -gt 1 ]; then exit $s; fi")
            try:
                proc = subprocess.run(target.ssh_cmd(cmd), capture_output=True, text=True,
                                      timeout=timeout, check=False)
            except subprocess.TimeoutExpired:
                raise BenchError(f"device_bench on {target} timed out after {timeout:g} s") from None
            _check_result(proc, str(target))
            text = _ssh(target, f"cat {d}/report.json", what="fetching the report")
        finally:
            try:
                _ssh(target, f"rm -rf -- {d}", what="cleanup", timeout=60)
            except BenchError as e:
                print(f"edgerec bench: warning: {e}", file=sys.stderr)
    report = _load_report(text, str(target))
    for t, local in zip(report["targets"], artifacts, strict=True):
        t["artifact"]["remote_path"] = t["artifact"]["path"]
        t["artifact"]["path"] = str(local)
    return report


# ----------------------------------------------------------------------------- merging


def _quant_label(q: Any) -> str | None:
    if not isinstance(q, Mapping):
        return None if q is None else str(q)
    w, a = q.get("weights"), q.get("activations")
    return f"{w}" if a in (None, "float") else f"{w} / {a}"


def _mode_latency(m: Mapping[str, Any]) -> dict[str, float]:
    lat = m.get("latency", m)
    return {p: lat[f"{p}_ms"] for p in ("p50", "p95", "p99")}


def _target_row(device: str, t: Mapping[str, Any]) -> dict[str, Any]:
    art = t["artifact"]
    row: dict[str, Any] = {"kind": "artifact", "device": device, "name": art.get("name"),
                           "path": art.get("path"), "error": t.get("error")}
    if t.get("error"):
        return row
    acc = (t.get("accuracy") or {}).get("modes", {})
    row.update({
        "target": art["target"], "quantization": _quant_label(art.get("quantization")),
        "modes": art["modes"], "file_bytes": art["model_bytes"],
        "artifact_bytes": art["artifact_bytes"], "init_ms": t["init_ms"],
        "peak_rss_increase_bytes": t["memory"].get("peak_rss_increase_bytes"),
        "peak_rss_over_bare_interpreter_bytes": t["memory"].get("peak_rss_over_bare_interpreter_bytes"),
        "latency_ms": {m: _mode_latency(v) for m, v in t["modes"].items()},
        "throughput_recs_per_s": {m: v["throughput"]["recs_per_s"] for m, v in t["modes"].items()},
        "throughput_method": {m: v["throughput"]["method"] for m, v in t["modes"].items()},
        "accuracy": {m: {k: a.get(k) for k in ("recall@20", "ndcg@20", "agreement@20")}
                     for m, a in acc.items()},
        "accuracy_reason": t.get("accuracy_reason"),
    })
    return row


def baseline_row(b: Mapping[str, Any]) -> dict[str, Any]:
    """Check a precomputed baseline and turn it into a report row.

    Keys: ``name`` (required); optional ``device``, ``target``, ``quantization``,
    ``file_bytes``, ``init_ms``, ``peak_rss_increase_bytes``, ``modes`` ({mode:
    :func:`measure_callable` result}), ``throughput_recs_per_s`` ({mode: float}),
    ``accuracy`` ({mode: {"recall@20", "ndcg@20", "agreement@20"}}).
    """
    if not isinstance(b, Mapping) or not isinstance(b.get("name"), str):
        raise BenchError("baseline: expected an object with a string 'name'")
    known = {"name", "device", "target", "quantization", "file_bytes", "init_ms",
             "peak_rss_increase_bytes", "modes", "throughput_recs_per_s", "accuracy", "note"}
    if set(b) - known:
        raise BenchError(f"baseline {b['name']}: unknown keys {sorted(set(b) - known)}")
    for key in ("file_bytes", "init_ms", "peak_rss_increase_bytes"):
        if b.get(key) is not None and not is_finite_number(b[key]):
            raise BenchError(f"baseline {b['name']}.{key}: expected a number")
    modes = dict(b.get("modes") or {})
    for m, v in modes.items():
        if m not in MODES:
            raise BenchError(f"baseline {b['name']}.modes: unknown mode {m!r}")
        try:
            check_latency(v.get("latency", v) if isinstance(v, Mapping) else v,
                          f"baseline {b['name']}.modes.{m}")
        except ReportError as e:
            raise BenchError(str(e)) from None
    for m, v in (b.get("throughput_recs_per_s") or {}).items():
        if m not in MODES or (v is not None and not is_finite_number(v)):
            raise BenchError(f"baseline {b['name']}.throughput_recs_per_s.{m}: expected a number")
    acc = dict(b.get("accuracy") or {})
    for m, a in acc.items():
        if m not in MODES or not isinstance(a, Mapping):
            raise BenchError(f"baseline {b['name']}.accuracy.{m}: expected a mode -> metrics")
        for k, v in a.items():
            if v is not None and not (is_finite_number(v) and 0 <= v <= 1):
                raise BenchError(f"baseline {b['name']}.accuracy.{m}.{k}: expected 0..1")
    return {"kind": "baseline", "device": b.get("device"), "name": b["name"], "path": None,
            "error": None, "target": b.get("target"), "quantization": b.get("quantization"),
            "modes": [m for m in MODES if m in modes], "file_bytes": b.get("file_bytes"),
            "artifact_bytes": None, "init_ms": b.get("init_ms"),
            "peak_rss_increase_bytes": b.get("peak_rss_increase_bytes"),
            "peak_rss_over_bare_interpreter_bytes": b.get("peak_rss_increase_bytes"),
            "latency_ms": {m: _mode_latency(v) for m, v in modes.items()},
            "throughput_recs_per_s": dict(b.get("throughput_recs_per_s") or {}),
            "throughput_method": {}, "accuracy": acc, "accuracy_reason": b.get("note")}


def merge_reports(runs: Sequence[Mapping[str, Any]],
                  baselines: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """One bench report from device runs (``{"device", "via", "report"}``) and baselines."""
    rows = [_target_row(r["device"], t) for r in runs for t in r["report"]["targets"]]
    rows += [baseline_row(b) for b in baselines or []]
    return {"format": BENCH_FORMAT, "format_version": BENCH_FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "runs": [dict(r) for r in runs], "baselines": [dict(b) for b in baselines or []],
            "rows": rows,
            "gains": gains(rows, {r["device"] for r in runs if r.get("via") == "local"})}


def _ratio(a: Any, b: Any) -> float | None:
    return a / b if is_finite_number(a) and is_finite_number(b) and b > 0 else None


def gains(rows: Sequence[Mapping[str, Any]], local: set[str] | frozenset[str] = frozenset()
          ) -> list[dict[str, Any]]:
    """Per artifact, how many times faster (p50, per mode) than the PyG baseline's request and
    than the float32 numpy reference measured on the same device, and how many times less
    memory over a bare interpreter than that reference: the figures a user picks a target by.

    The PyG baseline runs on the workstation, so its ratio is given only for artifacts measured
    there (``local``: the devices of the local runs); it answers lookup requests only, so both
    modes are divided into its lookup p50."""
    pyg = next((r for r in rows if r["kind"] == "baseline" and r.get("target") == "pytorch"
                and not r.get("error")), None)
    pyg_p50 = ((pyg or {}).get("latency_ms") or {}).get("lookup", {}).get("p50")
    out = []
    for r in rows:
        if r["kind"] != "artifact" or r.get("error") or r["name"] == NUMPY_REFERENCE:
            continue
        ref = next((x for x in rows if x["kind"] == "artifact" and x["name"] == NUMPY_REFERENCE
                    and x["device"] == r["device"] and not x.get("error")), None)
        lat = r.get("latency_ms") or {}
        ref_lat = (ref or {}).get("latency_ms") or {}
        out.append({
            "device": r["device"], "name": r["name"], "path": r.get("path"),
            "quantization": r.get("quantization"),
            "x_faster_than_pyg": {m: _ratio(pyg_p50, v.get("p50")) if r["device"] in local else None
                                  for m, v in lat.items()},
            "x_faster_than_numpy_float32": {m: _ratio(ref_lat.get(m, {}).get("p50"), v.get("p50"))
                                            for m, v in lat.items()},
            "x_less_memory_than_numpy_float32": _ratio(
                (ref or {}).get("peak_rss_over_bare_interpreter_bytes"),
                r.get("peak_rss_over_bare_interpreter_bytes")),
        })
    return out


# ----------------------------------------------------------------------------- writing


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "–" if v is None else format(v, spec)


def _size(n: Any) -> str:
    if n is None:
        return "–"
    for unit, div in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n} B"


def _per_mode(row: Mapping[str, Any], fn: Callable[[Any], str], field: str) -> str:
    vals = row.get(field) or {}
    parts = [f"{m[0]}: {fn(vals[m])}" for m in MODES if m in vals]
    return "<br>".join(parts) if parts else "–"


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as one markdown table, preceded by the machines it was measured on."""
    lines = ["# edgerec bench", ""]
    for r in report["runs"]:
        m, s = r["report"]["machine"], r["report"]["settings"]
        lines.append(f"- **{r['device']}** ({r['via']}): {m.get('cpu')}, {m.get('cores')} cores, "
                     f"{m.get('os')}, Python {m.get('python')}, numpy {m.get('numpy')}; "
                     f"{s['requests']} requests after {s['warmup']} warm-up, batch {s['batch']}, "
                     f"{s['threads']} thread(s)"
                     + ("; TFLite on the builtin kernels (--exact)" if s.get("exact") else ""))
    lines += ["", "Latency p50 / p95 / p99 in ms per mode (h: history, l: lookup); throughput in "
              "recommendations/s at the batch size; accuracy @20 per mode. Peak RSS +: over a "
              "process that imports the same modules (in brackets: over one that also runs a bare "
              "interpreter on a one-op model; the same figure where there is no interpreter).", "",
              "| device | target | quantization | modes | file size | init ms | peak RSS + | "
              "latency p50/p95/p99 ms | throughput /s | recall@20 | ndcg@20 | agreement@20 |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        name = row["name"] + (" (baseline)" if row["kind"] == "baseline" else "")
        if row.get("error"):
            lines.append(f"| {row['device']} | {name} | error: {row['error']} |" + " |" * 9)
            continue
        lat = _per_mode(row, lambda v: f"{v['p50']:.3f} / {v['p95']:.3f} / {v['p99']:.3f}",
                        "latency_ms")
        tput = _per_mode(row, lambda v: _fmt(v, ".0f"), "throughput_recs_per_s")
        acc = {k: _per_mode({"a": {m: a.get(k) for m, a in row["accuracy"].items()}},
                            lambda v: _fmt(v, ".4f"), "a")
               for k in ("recall@20", "ndcg@20", "agreement@20")}
        lines.append(
            f"| {row['device'] or '–'} | {name}{f' ({t})' if (t := row.get('target')) else ''} | "
            f"{row.get('quantization') or '–'} | {', '.join(row.get('modes') or []) or '–'} | "
            f"{_size(row.get('file_bytes'))} | {_fmt(row.get('init_ms'), '.1f')} | "
            f"{_size(row.get('peak_rss_increase_bytes'))}{_bracket(row)} | {lat} | {tput} | "
            f"{acc['recall@20']} | {acc['ndcg@20']} | {acc['agreement@20']} |")
    reasons = {r["accuracy_reason"] for r in report["rows"] if r.get("accuracy_reason")}
    lines += [""] + [f"Accuracy note: {why}" for why in sorted(reasons)]
    found = [g for g in report.get("gains") or []
             if any(v is not None for v in (*g["x_faster_than_pyg"].values(),
                                            *g["x_faster_than_numpy_float32"].values(),
                                            g["x_less_memory_than_numpy_float32"]))]
    if found:
        lines += ["", "Gains (p50 ratios per mode, same device; PyG answers lookup requests "
                  "on the workstation, so both modes are divided into its lookup p50; memory: "
                  "increase over a bare interpreter, the numpy reference's divided by the "
                  "target's):", "",
                  "| device | target | x faster than PyG recommend | x faster than numpy float32 | "
                  "x less memory than numpy float32 |", "|---|---|---|---|---|"]
        for g in found:
            lines.append(
                f"| {g['device']} | {g['name']} ({g.get('quantization') or '–'}) | "
                f"{_per_mode({'v': g['x_faster_than_pyg']}, lambda v: _fmt(v, '.0f'), 'v')} | "
                f"{_per_mode({'v': g['x_faster_than_numpy_float32']}, lambda v: _fmt(v, '.1f'), 'v')} | "
                f"{_fmt(g['x_less_memory_than_numpy_float32'], '.1f')} |")
    return "\n".join(lines).rstrip() + "\n"


def _bracket(row: Mapping[str, Any]) -> str:
    over = row.get("peak_rss_over_bare_interpreter_bytes")
    return f" ({_size(over)})" if over is not None else ""


def _primary(row: Mapping[str, Any], field: str) -> tuple[str | None, Any]:
    vals = row.get(field) or {}
    for m in MODES:
        if vals.get(m) is not None:
            return m, vals[m]
    return None, None


def plot_report(report: Mapping[str, Any], path: Path) -> Path:
    """Recall@20 against file size and against p50 latency: one colour per row, one legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
    devices = {r.get("device") for r in report["rows"]}
    for n, row in enumerate(report["rows"]):
        if row.get("error"):
            continue
        mode, acc = _primary(row, "accuracy")
        recall = (acc or {}).get("recall@20")
        if recall is None:
            continue
        quant = (row.get("quantization") or "").split(" / ")[0]
        label = row["name"] + (f" {quant}" if row["kind"] != "baseline" and quant else "") + (
            f" @ {row['device']}" if len(devices) > 1 and row.get("device") else "") + f" [{mode}]"
        style = {"marker": "s" if row["kind"] == "baseline" else "o", "color": f"C{n % 10}",
                 "label": label, "s": 50, "alpha": 0.85}
        lat = (row.get("latency_ms") or {}).get(mode) or _primary(row, "latency_ms")[1]
        if row.get("file_bytes"):
            axes[0].scatter([row["file_bytes"] / (1 << 20)], [recall], **style)
        if lat:
            axes[1].scatter([lat["p50"]], [recall], **style)
    for ax, xl in ((axes[0], "model file size (MB, log)"),
                   (axes[1], "p50 latency, batch 1 (ms, log)")):
        ax.set_xlabel(xl)
        ax.set_ylabel("Recall@20")
        ax.grid(True, which="both", alpha=0.3)
        if ax.collections:
            ax.set_xscale("log")
            ax.margins(x=0.15, y=0.1)
            ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            # label a few minor ticks only where the axis spans little (no overlapping labels)
            ax.xaxis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.5)))
        else:
            ax.text(0.5, 0.5, "no accuracy data (no eval file)", ha="center",
                    transform=ax.transAxes)
    axes[0].set_title("Accuracy vs size")
    axes[1].set_title("Accuracy vs latency")
    handles, labels = axes[1].get_legend_handles_labels()
    if not handles:
        handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(3, len(handles)), fontsize=8,
                   frameon=False)
    rows = -(-len(handles) // 3) if handles else 0
    fig.tight_layout(rect=(0, 0.04 + 0.035 * rows, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(report: Mapping[str, Any], report_dir: Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``report.png`` into ``report_dir``."""
    report_dir = Path(report_dir)
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BenchError(f"--report {report_dir}: cannot create ({e.strerror})") from None
    paths = {"json": report_dir / "report.json", "md": report_dir / "report.md",
             "png": report_dir / "report.png"}
    tmp = paths["json"].with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=1, allow_nan=False), encoding="utf-8")
    os.replace(tmp, paths["json"])
    paths["md"].write_text(render_markdown(report), encoding="utf-8")
    plot_report(report, paths["png"])
    return paths


def check_bench_args(arts: Sequence[Path], *, requests: int, batch: int, threads: int,
                     warmup: int = 50, eval_file: Path | None = None) -> None:
    """The cheap checks, before any measurement (the CLI calls them before its baselines too)."""
    if not arts:
        raise BenchError("no artifacts to benchmark")
    for a in arts:
        if not (Path(a) / "manifest.json").is_file():
            raise BenchError(f"{a}: not an artifact directory (no manifest.json)")
    for name, v, lo in (("requests", requests, 1), ("batch", batch, 1), ("threads", threads, 1),
                        ("warmup", warmup, 0)):
        if not isinstance(v, int) or v < lo:
            raise BenchError(f"--{name} must be an integer >= {lo}, got {v!r}")
    if eval_file is not None and not Path(eval_file).is_file():
        raise BenchError(f"--eval {eval_file}: no such file")


def run_bench(artifacts: list[Path], report_dir: Path, *, ssh: str | None = None,
              identity: Path | None = None, remote_python: str = "python3",
              requests: int = 2000, batch: int = 64, threads: int = 1,
              baselines: list[dict] | None = None, warmup: int = 50,
              eval_file: Path | None = None, ssh_options: Sequence[str] = (),
              timeout: float = 3600, exact: bool = False) -> dict[str, Any]:
    """Benchmark ``artifacts`` here (``ssh=None``) or on ``user@host[:port]``; write the report.

    Returns the merged report (also written to ``report_dir``). ``ssh_options`` are extra
    ``ssh`` arguments (e.g. ``["-o", "StrictHostKeyChecking=accept-new"]``). ``exact``: TFLite
    targets run on the builtin kernels instead of XNNPACK (less memory, slower on x86; the
    figures docs/benchmarks.md compares).
    """
    arts = [Path(a) for a in artifacts]
    check_bench_args(arts, requests=requests, batch=batch, threads=threads, warmup=warmup,
                     eval_file=eval_file)
    for b in baselines or []:  # fail before measuring
        baseline_row(b)
    kw = {"requests": requests, "batch": batch, "threads": threads, "warmup": warmup,
          "eval_file": Path(eval_file) if eval_file else None, "timeout": timeout, "exact": exact}
    if ssh:
        target = parse_ssh(ssh, identity, ssh_options)
        report = run_ssh(arts, target, remote_python=remote_python, **kw)
        via = f"ssh {target}"
    else:
        report = run_local(arts, **kw)
        via = "local"
    run = {"device": report["machine"]["hostname"], "via": via, "report": report}
    merged = merge_reports([run], baselines)
    write_report(merged, Path(report_dir))
    return merged
