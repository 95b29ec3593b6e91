"""An arm64 Debian userland to run device_bench in, under qemu-user, on an x86 host.

Built once with ``debootstrap --foreign --arch=arm64`` (first stage on the host, second stage
inside the root, executed through the kernel's binfmt_misc handler for aarch64 ELF files, which
qemu-user-static provides) and cached. The runtime's dependencies are aarch64 wheels downloaded
on the host with ``pip download --platform`` and installed into a venv inside the root with
``pip install --no-index`` — the same two steps a Raspberry Pi user runs, minus the network.
Everything executed inside the root runs in fresh mount and network namespaces: /proc is
mounted privately and there is no network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

SUITE = "bookworm"  # Raspberry Pi OS 64-bit (2023-10 onwards) is Debian bookworm: Python 3.11
MIRROR = "http://deb.debian.org/debian"
DEFAULT_CACHE = Path("~/.cache/edgerec/arm64-root")
PACKAGES = ("numpy", "ai-edge-litert", "onnxruntime")
VENV = "/opt/edgerec"  # inside the root
TOOLS = {"debootstrap": "debootstrap", "qemu-aarch64-static": "qemu-user-static",
         "chroot": "coreutils", "unshare": "util-linux", "mount": "mount"}
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
# The aarch64 ELF magic/mask as registered by Debian's qemu-user-static (F: open the interpreter
# now, so it works inside a chroot that does not contain it).
BINFMT_LINE = (r":qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00"
               r"\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff"
               r"\xff\xff\xfe\xff\xff\xff:{qemu}:F")
DEBIAN_BINFMT = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")


class PiCheckError(Exception):
    """The emulated check cannot run; the message is one readable line."""


@dataclass(frozen=True)
class RootInfo:
    """A ready arm64 root: where it is and what it runs."""

    path: Path
    suite: str
    python: str  # "3.11"
    glibc: str  # "2.36"
    packages: dict[str, str]  # installed in the venv: name -> version


def check_tools(which: Callable[[str], str | None] = shutil.which) -> dict[str, str]:
    """Paths of the host tools needed; :class:`PiCheckError` naming the missing ones if any."""
    found = {t: which(t) for t in TOOLS}
    missing = [t for t, p in found.items() if not p]
    if missing:
        pkgs = " ".join(dict.fromkeys(TOOLS[t] for t in missing))
        raise PiCheckError(f"missing {', '.join(missing)}: install with "
                           f"`apt-get install -y {pkgs}` (Debian/Ubuntu host)")
    return {t: str(p) for t, p in found.items()}


def check_root_user(euid: Callable[[], int] = os.geteuid) -> None:
    if euid() != 0:
        raise PiCheckError("building and entering the arm64 root needs root (debootstrap, "
                           "chroot, mount): run as root, e.g. with sudo")


def _run(cmd: Sequence[str], what: str, *, timeout: float, log: Path | None = None,
         env: dict[str, str] | None = None) -> str:
    """Run ``cmd``; its stdout, or :class:`PiCheckError` with the last error line."""
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                              env=env, check=False)
    except subprocess.TimeoutExpired:
        raise PiCheckError(f"{what} timed out after {timeout:g} s") from None
    except FileNotFoundError as e:
        raise PiCheckError(f"{what}: {e.filename} not found") from None
    if log is not None:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n")
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        tail = lines[-1] if lines else f"exit status {proc.returncode}"
        hint = f" (log: {log})" if log else ""
        raise PiCheckError(f"{what} failed: {tail}{hint}")
    return proc.stdout


def ensure_binfmt(qemu: str, binfmt_dir: Path = BINFMT_DIR) -> str:
    """Make the kernel run aarch64 ELF files with qemu; how it was done (for the report)."""
    entry = binfmt_dir / "qemu-aarch64"
    if entry.is_file():
        text = entry.read_text(encoding="ascii", errors="replace")
        if text.startswith("enabled"):
            return "already registered"
        raise PiCheckError(f"{entry} is registered but disabled: `echo 1 > {entry}`")
    if not (binfmt_dir / "register").exists():
        _run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt_dir)],
             "mounting binfmt_misc", timeout=30)
    line = BINFMT_LINE.format(qemu=qemu)
    if DEBIAN_BINFMT.is_file():  # qemu-user-static's own registration, if shipped
        line = DEBIAN_BINFMT.read_text(encoding="ascii").strip()
    try:
        (binfmt_dir / "register").write_text(line, encoding="ascii")
    except OSError as e:
        raise PiCheckError(f"cannot register qemu-aarch64 with binfmt_misc ({e.strerror}); "
                           "install binfmt-support or run `systemctl restart "
                           "systemd-binfmt`") from None
    return f"registered: {line.rsplit(':', 2)[-2]}"


def in_root(root: Path, argv: Sequence[str], *, env: dict[str, str] | None = None,
            cwd: str = "/") -> list[str]:
    """The host command that runs ``argv`` inside ``root`` in ``cwd``: a private /proc, no
    network, a clean environment (``env`` on top of PATH, HOME and LANG)."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
           **(env or {})}
    inner = ["/bin/sh", "-c", 'cd "$0" && exec "$@"', cwd, *argv]
    return ["unshare", "--mount", "--net", "--fork", "sh", "-c", _ROOT_SCRIPT, "sh", str(root),
            *(f"{k}={v}" for k, v in env.items()), *inner]


_ROOT_SCRIPT = ('root="$1"; shift; mount -t proc proc "$root/proc" && '
                'exec chroot "$root" /usr/bin/env -i "$@"')


def _marker(cache: Path) -> Path:
    return cache / "root.json"


def build_root(cache: Path, *, suite: str = SUITE, mirror: str = MIRROR,
               timeout: float = 3600, say: Callable[[str], None] = print) -> Path:
    """The cached root under ``cache/root``, debootstrapped now if it is not complete."""
    root = cache / "root"
    marker = _marker(cache)
    if marker.is_file() and root.is_dir():
        done = json.loads(marker.read_text(encoding="utf-8"))
        if done.get("suite") != suite:
            raise PiCheckError(f"{cache} holds a {done.get('suite')} root, not {suite}: "
                               "choose another --root-cache or delete it")
        return root
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / "root.partial"
    log = cache / "debootstrap.log"
    if partial.exists():
        shutil.rmtree(partial)
    say(f"building an arm64 {suite} root in {root} (once; a few minutes; log: {log})")
    _run(["debootstrap", "--foreign", "--arch=arm64", "--variant=minbase",
          "--include=python3,python3-venv", suite, str(partial), mirror],
         "debootstrap (first stage)", timeout=timeout, log=log)
    _run(in_root(partial, ["/debootstrap/debootstrap", "--second-stage"]),
         "debootstrap --second-stage (emulated)", timeout=timeout, log=log)
    if root.exists():
        shutil.rmtree(root)
    partial.rename(root)
    marker.write_text(json.dumps({"suite": suite, "mirror": mirror}), encoding="utf-8")
    return root


def root_versions(root: Path) -> tuple[str, str]:
    """The root's Python ("3.11") and glibc ("2.36") versions, asked from inside it."""
    out = _run(in_root(root, ["python3", "-c", "import platform, sys; "
                              "print('%d.%d' % sys.version_info[:2], platform.libc_ver()[1])"]),
               "querying the root's python3", timeout=300)
    try:
        py, libc = out.split()
    except ValueError:
        raise PiCheckError(f"unexpected answer from the root's python3: {out!r}") from None
    return py, libc


def platform_tags(glibc: str) -> list[str]:
    """pip ``--platform`` tags an aarch64 wheel may carry to run on this glibc."""
    try:
        major, minor = (int(x) for x in glibc.split(".")[:2])
    except ValueError:
        raise PiCheckError(f"cannot read glibc version {glibc!r}") from None
    if major != 2 or minor < 17:
        raise PiCheckError(f"glibc {glibc} is older than manylinux2014 (2.17)")
    return ["manylinux2014_aarch64", *(f"manylinux_2_{m}_aarch64" for m in range(17, minor + 1))]


def pinned(packages: Sequence[str]) -> list[str]:
    """Each package at the version installed on this host, if it is (a like-for-like check)."""
    out = []
    for p in packages:
        try:
            out.append(f"{p}=={metadata.version(p)}")
        except metadata.PackageNotFoundError:
            out.append(p)
    return out


def download_wheels(dest: Path, requirements: Sequence[str], *, python: str, glibc: str,
                    timeout: float = 1800) -> list[str]:
    """aarch64 wheels (with dependencies) for the root's Python, downloaded on this host."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--implementation",
           "cp", "--python-version", python, "-d", str(dest), "--quiet"]
    for tag in platform_tags(glibc):
        cmd += ["--platform", tag]
    _run([*cmd, *requirements], f"pip download of aarch64 wheels for Python {python}",
         timeout=timeout)
    return sorted(p.name for p in dest.glob("*.whl"))


def ensure_venv(root: Path, wheels: Path, requirements: Sequence[str], *,
                timeout: float = 3600, say: Callable[[str], None] = print) -> dict[str, str]:
    """Install ``requirements`` from ``wheels`` into the root's venv, offline; their versions."""
    names = sorted(p.name for p in wheels.glob("*.whl"))
    stamp = root / VENV.lstrip("/") / "edgerec-wheels.json"
    want = {"requirements": list(requirements), "wheels": names}
    if not (stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")) == want):
        say(f"installing {', '.join(requirements)} into {VENV} inside the root (offline)")
        inside = root / "opt" / "edgerec-wheels"
        if inside.exists():
            shutil.rmtree(inside)
        shutil.copytree(wheels, inside)
        _run(in_root(root, ["python3", "-m", "venv", "--clear", VENV]), "creating the venv",
             timeout=timeout)
        _run(in_root(root, [f"{VENV}/bin/pip", "install", "--no-index", "--find-links",
                            "/opt/edgerec-wheels", "--quiet", *requirements]),
             "pip install --no-index inside the root", timeout=timeout)
        stamp.write_text(json.dumps(want), encoding="utf-8")
    out = _run(in_root(root, [f"{VENV}/bin/python", "-m", "pip", "list", "--format=json"]),
               "listing the root's packages", timeout=timeout)
    return {p["name"]: p["version"] for p in json.loads(out)}


def prepare(cache: Path, *, suite: str = SUITE, mirror: str = MIRROR,
            packages: Sequence[str] = PACKAGES, say: Callable[[str], None] = print) -> RootInfo:
    """Tools, binfmt, root, wheels, venv: everything up to running a command in the root."""
    tools = check_tools()
    check_root_user()
    ensure_binfmt(tools["qemu-aarch64-static"])
    root = build_root(cache, suite=suite, mirror=mirror, say=say)
    python, glibc = root_versions(root)
    reqs = pinned(packages)
    wheels = cache / f"wheels-cp{python.replace('.', '')}"
    download_wheels(wheels, reqs, python=python, glibc=glibc)
    installed = ensure_venv(root, wheels, reqs, say=say)
    return RootInfo(root, suite, python, glibc, installed)
