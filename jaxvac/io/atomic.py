"""The one atomic write of jaxvac: write under a temporary name beside the target, then rename.

A reader (or a rerun after SIGKILL) sees the old file or the whole new one, never half of one:
``os.replace`` within one directory is atomic on POSIX. The temporary name is
``.<name>.tmp-<pid>-<random><suffix>`` -- hidden, unique per writer, and ending in the target's
own suffix so that libraries that choose a format from it (matplotlib, pyarrow) still do;
:func:`sweep` removes the ones a killed writer left.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from jaxvac.io.lifetime import pid_alive

TMP_MARK = ".tmp-"  # in every temporary name, after the target's name


def temporary_name(path: str | os.PathLike) -> Path:
    """A fresh temporary path beside ``path`` (same directory, so the rename is atomic)."""
    path = Path(path)
    suffix = "".join(path.suffixes[-1:])
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success rename it to ``path``, on error remove it.

    fsync: flush the file's data to disk before the rename (for files a crash must not lose,
    such as the parts of a run). The parent directory must exist.
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[BinaryIO], None], *,
                 fsync: bool = False) -> Path:
    """Write ``data`` (bytes, str as UTF-8, or a function of a binary file) to ``path`` atomically."""
    path = Path(path)
    with atomic_path(path, fsync=fsync) as tmp, open(tmp, "wb") as f:
        if callable(data):
            data(f)
        else:
            f.write(data.encode() if isinstance(data, str) else data)
    return path


def sweep(directory: str | os.PathLike) -> int:
    """Remove the temporaries of dead writers in ``directory`` (not recursive); returns the count.

    A temporary whose writer pid is still alive is left alone.
    """
    n = 0
    for p in Path(directory).glob(f".*{TMP_MARK}*"):
        pid = p.name.split(TMP_MARK, 1)[1].split("-", 1)[0]
        if pid.isdigit() and pid_alive(int(pid)):
            continue
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            p.unlink()
            n += 1
    return n

