"""``run_bench`` over a real ssh connection to an OpenSSH server started on 127.0.0.1."""

from __future__ import annotations

import contextlib
import getpass
import glob
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from device_bench.report import validate_report
from tests.factories import make_artifact

SSHD = "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True,
                   capture_output=True)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """(port, client key, ssh options) of a throwaway sshd; skipped only if it cannot start."""
    if not os.path.exists(SSHD) or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.skip("OpenSSH server/client not installed (apt-get install openssh-server openssh-client)")
    d = tmp_path_factory.mktemp("sshd")
    _keygen(d / "host_key")
    _keygen(d / "client_key")
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\n"
        f"PidFile {d / 'sshd.pid'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        "StrictModes no\nUsePAM no\nPermitRootLogin yes\nPubkeyAuthentication yes\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nX11Forwarding no\n"
        "AllowTcpForwarding no\nPrintMotd no\nLogLevel ERROR\n")
    with contextlib.suppress(OSError):  # privilege separation dir, made by the service unit
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    log = open(d / "sshd.log", "w")  # noqa: SIM115 - closed in the teardown below
    proc = subprocess.Popen([SSHD, "-D", "-f", str(d / "sshd_config"), "-e"], stdout=log,
                            stderr=subprocess.STDOUT)
    opts = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR"]
    probe = ["ssh", *opts, "-o", "BatchMode=yes", "-i", str(d / "client_key"), "-p", str(port),
             f"{getpass.getuser()}@127.0.0.1", "true"]
    deadline = time.monotonic() + 15
    ok = False
    while time.monotonic() < deadline and proc.poll() is None:
        if subprocess.run(probe, capture_output=True, timeout=15, check=False).returncode == 0:
            ok = True
            break
        time.sleep(0.2)
    if not ok:
        proc.kill()
        proc.wait()
        log.close()
        pytest.skip(f"sshd could not be started: {(d / 'sshd.log').read_text().strip()[-300:]}")
    yield port, d / "client_key", opts
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


def _remote_dirs() -> set[str]:
    return set(glob.glob(os.path.join(os.environ.get("TMPDIR", "/tmp"), "edgerec-bench.*")))


def test_run_bench_over_ssh(sshd, tmp_path):
    from edgerec.benchmark import run_bench

    port, key, opts = sshd
    art, ev = make_artifact(tmp_path, "numpy", seed=3)
    user = getpass.getuser()
    before = _remote_dirs()
    rep = run_bench([art], tmp_path / "rep", ssh=f"{user}@127.0.0.1:{port}", identity=key,
                    remote_python=sys.executable, requests=20, batch=4, threads=1,
                    baselines=None, warmup=2, eval_file=ev, ssh_options=opts, exact=True)
    (run,) = rep["runs"]
    assert run["via"] == f"ssh {user}@127.0.0.1:{port}"
    # --exact reached the device's device_bench, and the report says so
    assert run["report"]["settings"]["exact"] is True
    assert "builtin kernels (--exact)" in (tmp_path / "rep" / "report.md").read_text()
    assert run["device"] == socket.gethostname() == run["report"]["machine"]["hostname"]
    remote = run["report"]
    validate_report(remote)
    (t,) = remote["targets"]
    assert t["error"] is None and t["artifact"]["path"] == str(art)
    # It ran from the copied sources in the remote temp dir, not the local checkout...
    tmpdir = Path(t["artifact"]["remote_path"]).parent.parent
    assert tmpdir.name.startswith("edgerec-bench.")
    for pkg in ("runtime", "device_bench"):
        assert Path(remote["packages"][pkg]) == tmpdir / "pkg" / pkg
    assert t["accuracy"]["file"] == str(tmpdir / "eval.json")
    assert t["accuracy"]["modes"]["history"]["recall@10"] == 1.0
    # ...and the directory is gone afterwards.
    assert not tmpdir.exists() and not _remote_dirs() - before  # (others may run beside it)
    row = rep["rows"][0]
    assert row["device"] == run["device"] and row["latency_ms"]["lookup"]["p50"] > 0
    assert (tmp_path / "rep" / "report.md").read_text().count(f"| {run['device']} |") == 1


def test_ssh_failure_is_one_line_and_cleans_up(sshd, tmp_path):
    """A remote python that does not exist: clear error, remote directory still removed."""
    from edgerec.benchmark import BenchError, run_bench

    port, key, opts = sshd
    art, _ = make_artifact(tmp_path, "numpy", seed=4)
    before = _remote_dirs()
    with pytest.raises(BenchError, match="device_bench on .* failed") as e:
        run_bench([art], tmp_path / "rep", ssh=f"{getpass.getuser()}@127.0.0.1:{port}", identity=key,
                  remote_python="/nonexistent/python3", requests=5, batch=2, threads=1,
                  baselines=None, ssh_options=opts)
    assert "\n" not in str(e.value)
    assert not _remote_dirs() - before and not (tmp_path / "rep").exists()
    with pytest.raises(BenchError, match="ssh .*: mktemp failed"):
        run_bench([art], tmp_path / "rep", ssh=f"nobody-here@127.0.0.1:{port}", identity=key,
                  requests=5, ssh_options=opts)


def test_remote_python_tilde_expands_on_the_device() -> None:
    from edgerec.benchmark.ssh import _remote_command

    assert _remote_command("~/edgerec/bin/python") == '"$HOME"/edgerec/bin/python'
    assert _remote_command("python3") == "python3"
    assert _remote_command("/opt/my env/python") == "'/opt/my env/python'"
