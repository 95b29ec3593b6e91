"""Run device_bench on a device over ssh: copy, run, fetch the report, clean up.

The artifacts and the ``runtime`` + ``device_bench`` sources travel as one tar.gz into a
``mktemp -d`` directory on the device; device_bench runs there with ``PYTHONPATH`` pointing at
them, and the directory is removed afterwards, also on failure. The device needs Python,
numpy and an interpreter, nothing of edgerec.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import device_bench
import runtime
from edgerec.benchmark.errors import BenchError
from edgerec.benchmark.local import check_result, device_bench_args, load_report, package_root


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
            root = package_root(pkg)
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
                    *device_bench_args(requests, batch, threads, warmup, exact),
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
            check_result(proc, str(target))
            text = _ssh(target, f"cat {d}/report.json", what="fetching the report")
        finally:
            try:
                _ssh(target, f"rm -rf -- {d}", what="cleanup", timeout=60)
            except BenchError as e:
                print(f"edgerec bench: warning: {e}", file=sys.stderr)
    report = load_report(text, str(target))
    for t, local in zip(report["targets"], artifacts, strict=True):
        t["artifact"]["remote_path"] = t["artifact"]["path"]
        t["artifact"]["path"] = str(local)
    return report
