"""Atomic writes: every artifact appears whole under its final name, or not at all."""

import contextlib
import glob
import os
import shutil
import tempfile
from pathlib import Path

from tfscissor.errors import UsageError


def _umask():
    # The process umask can only be read by setting it; set it straight back.
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _prefix(path):
    # The writer's process id is in the name: what a killed writer left behind is then told apart from what a
    # live one is still writing, and removed by the next writer of the same path.
    return f".{path.name}.{os.getpid()}-"


def _remove_leftovers(path):
    """Remove the temporary files and folders that writers of ``path`` killed mid-write left beside it."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*-*"):
        pid, _, rest = leftover.name.removeprefix(f".{path.name}.").partition("-")
        ours = pid.isdigit() and (".tmp" in rest or rest.endswith(".old"))
        if ours and not _running(int(pid)):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file keeps ``path``'s suffix (or ``suffix``) because some writers, such as Keras's
    ``save``, decide the format from it. On any exception the temporary file is removed; what a killed
    writer left is removed by the next one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(path), suffix=".tmp" + (suffix or path.suffix), dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    tmp.chmod(0o666 & ~_umask())  # mkstemp makes the file private; an artifact gets the mode new files get
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path, data):
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a fresh temporary directory beside ``path``; on success it replaces ``path`` as a whole.

    An existing ``path`` is moved aside first and deleted only after the new one is in place, so a reader
    sees either the old complete tree or the new complete tree.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes the directory private, like mkstemp
    try:
        yield tmp
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def check_not_input(output, *inputs):
    """Refuse an output path that would overwrite one of the command's inputs."""
    out = Path(output).resolve()
    for inp in inputs:
        if inp is not None and Path(inp).resolve() == out:
            raise UsageError(
                f"output {output} is also an input: choose another output path (inputs are never overwritten)"
            )
