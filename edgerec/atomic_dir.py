"""Writing an output directory so that a failure leaves nothing behind.

Checkpoints and IRs are built in a temporary directory beside their target and renamed into
place only when complete: a crash, a full disk or Ctrl-C never leaves a half-written directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgerec.errors import EdgerecError

# what marks a directory as an earlier edgerec output: a checkpoint, an IR, an artifact, a site
MARKERS = ("config.json", "ir.json", "manifest.json", "edgerec-site.json")


def is_edgerec_output(path: Path) -> bool:
    """True for an empty directory, a checkpoint / IR / artifact directory, an ``export
    --target all`` directory (one artifact per target) or an ``edgerec demo`` directory."""
    if not path.is_dir() or path.is_symlink():
        return False
    children = list(path.iterdir())
    if not children or any((path / m).is_file() for m in MARKERS):
        return True
    if (path / "checkpoint" / "config.json").is_file():  # edgerec demo
        return True
    return bool(artifact_children(path))


def artifact_children(path: Path) -> list[Path]:
    """The artifacts of an ``export --target all`` directory (every entry is an artifact
    directory), or [] for anything else."""
    if not path.is_dir():
        return []
    children = sorted(path.iterdir())
    ok = children and all(c.is_dir() and (c / "manifest.json").is_file() for c in children)
    return children if ok else []


def _check_parent(path: Path) -> None:
    """The output's directory can be created and written: checked before hours of work, and
    the message names the user's path rather than a hidden temporary one."""
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise EdgerecError(f"{path}: {parent} is not a directory")
    try:  # a real probe: permission bits say nothing for root, /proc or a read-only mount
        os.rmdir(tempfile.mkdtemp(prefix=".edgerec-probe.", dir=parent))
    except OSError as e:
        raise EdgerecError(f"{path}: cannot write in {parent} ({e.strerror})") from None


def check_replaceable(path: Path, sources: tuple[Path, ...] = ()) -> None:
    """``--overwrite`` replaces an earlier edgerec output, never anything else: not a file, not a
    directory of other data, and not the directory the command reads its input from."""
    _check_parent(path)
    if not path.exists() and not path.is_symlink():
        return
    where = path.resolve()
    for src in sources:
        s = src.resolve()
        if s == where or where in s.parents:
            raise EdgerecError(f"{path}: the output would replace the input {src}; write it elsewhere")
    if not is_edgerec_output(path):
        kind = "a directory of other files" if path.is_dir() and not path.is_symlink() else "not a directory"
        raise EdgerecError(f"{path} is {kind}, not an earlier edgerec output: --overwrite replaces "
                           "only those (remove it yourself if it should go)")


def _share(root: Path) -> None:
    """Give the finished output the permissions of any new file under the umask: mkdtemp's 0700
    and the 0600 of some writers (safetensors) would survive the rename, and an artifact must
    be readable by the service that loads it."""
    from runtime.artifact import default_mode  # runtime imports numpy: not at CLI start-up

    dir_mode, file_mode = default_mode(directory=True), default_mode()
    os.chmod(root, dir_mode)
    for p in root.rglob("*"):
        if not p.is_symlink():
            os.chmod(p, dir_mode if p.is_dir() else file_mode)


@contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``path``; on success it replaces ``path``
    (an earlier edgerec output, ``check_replaceable``: moved aside first, deleted once the new
    one is in place), on any exception it is removed and ``path`` is left untouched."""
    check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        _share(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / "a")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
