"""Who may write a catalogue: the output lock, the replace rule, and tidying up after a merge.

Lock. While a run or a merge writes ``OUT`` it holds a lock file in ``OUT.parts/``:

    lock          the whole output: a run that does every share (and merges), or ``jaxvac merge``
    lock-p<k>     writer k of several: a ``--shard`` job or a process of a jax.distributed run

Each holds ``{"host", "pid", "start", "since", "command"}`` and is created atomically with content
(written under a temporary name, then ``os.link``-ed to its name, which fails if the name exists:
the classic lock that also works on NFS). Writers of one sharded run hold their own ``lock-p<k>``
side by side; ``lock`` excludes every other lock. A lock whose process is dead (same host, pid
gone or reused: ``start`` is the process's start time from /proc) is stale and taken over with a
note; a lock from another host cannot be checked from here and is refused unless ``force``
(``--force-lock``). Taking a lock happens under ``flock`` of the parts folder (best effort), so
two runs on one host never both take over one stale lock.

Replace rule. A run never replaces a catalogue it did not write: when ``OUT`` exists and
``OUT.parts/manifest.json`` does not, it refuses unless ``--fresh`` (start over: discard earlier
parts) or ``--overwrite`` (replace ``OUT``, keeping parts that match this run); a catalogue
whose provenance cards match this run exactly is already complete and is left as it is.

After a successful merge the parts folder is renamed away (atomic) and deleted; a kill during the
deletion leaves a hidden ``.OUT.parts.tmp-<pid>-...`` folder that the next run or merge removes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

from jaxvac.errors import JaxvacError
from jaxvac.io.atomic import TMP_MARK, temporary_name
from jaxvac.io.lifetime import pid_alive

__all__ = ["OutputError", "OutputLocked", "OutputLock", "acquire", "remove_parts", "sweep_output"]

EXCLUSIVE = "lock"


class OutputError(JaxvacError):
    """The output cannot be written as asked (it exists and is not this run's, or is not writable)."""


class OutputLocked(OutputError):
    """Another run holds the output's lock; the message names it (host, pid, since, command)."""


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux /proc), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _me() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_time(os.getpid()),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)[:500]}


def _holder_alive(holder: dict, host: str) -> bool | None:
    """True/False for a holder on this host; None when it is on another host (cannot tell)."""
    if holder.get("host") != host:
        return None
    pid = holder.get("pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        return False
    start = holder.get("start")
    return start is None or _start_time(pid) in (None, start)


def _describe(holder: dict) -> str:
    return (f"pid {holder.get('pid')} on host {holder.get('host')!r} since {holder.get('since', '?')} "
            f"(`{holder.get('command', '?')}`)")


@dataclasses.dataclass
class OutputLock:
    """A held lock file; ``notes`` says what was taken over. Release it (or use ``with``)."""

    path: Path
    me: dict
    notes: list[str]

    def release(self) -> None:
        """Remove the lock file if it is still ours (it may be gone with the parts folder), and
        the parts folder if nothing else is in it (a run that stopped before writing anything)."""
        with contextlib.suppress(OSError, ValueError):
            held = json.loads(self.path.read_text())
            if (held.get("host"), held.get("pid")) == (self.me["host"], self.me["pid"]):
                self.path.unlink()
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()  # only if empty

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


def acquire(parts: str | Path, writer: int | None = None, *, force: bool = False,
            out: str | Path | None = None) -> OutputLock:
    """Take the lock of the output whose parts folder is ``parts`` (created if missing).

    writer: None for the whole output (``lock``), k for writer k of several (``lock-p<k>``).
    force: take over locks held on other hosts (a crashed job elsewhere); live ones on this host
    are never taken. out: the catalogue, for the messages.
    Raises OutputLocked naming the holder, or OutputError when the folder cannot be written.
    """
    parts = Path(parts)
    what = str(out) if out is not None else str(parts)
    try:
        parts.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {str(parts)!r} for the output {what!r}: {e.strerror}; choose an "
                          f"output in a folder you can write (--out).") from None
    name = EXCLUSIVE if writer is None else f"lock-p{writer:03d}"
    me, notes = _me(), []
    with _folder_mutex(parts):
        for attempt in range(4):
            try:
                _create(parts / name, me)
                break
            except FileNotFoundError:  # the folder was just removed (an empty one, by a run that stopped)
                parts.mkdir(parents=True, exist_ok=True)
            except FileExistsError:
                if attempt == 3:  # taken over by someone else each time: another host without flock
                    raise OutputLocked(f"{what!r}: the lock {str(parts / name)!r} is being taken by another run "
                                       f"at the same time; try again in a moment.") from None
                _take_over_or_refuse(parts / name, _read(parts / name), me, force, what, notes)
            except OSError as e:
                raise OutputError(f"cannot write the lock file {str(parts / name)!r} of {what!r}: {e.strerror}; "
                                  f"choose an output in a folder you can write (--out).") from None
        lock = OutputLock(parts / name, me, notes)
        # An exclusive lock excludes every writer's lock and the other way round.
        others = [p for p in parts.glob("lock-p*") if p.name != name] if writer is None else [parts / EXCLUSIVE]
        try:
            for p in others:
                if p.exists():
                    _take_over_or_refuse(p, _read(p), me, force, what, notes)
        except OutputLocked:
            lock.release()
            raise
    return lock


def _take_over_or_refuse(path: Path, holder: dict | None, me: dict, force: bool, what: str, notes: list) -> None:
    """Remove a stale lock (with a note), or raise OutputLocked."""
    if holder is _GONE:  # released meanwhile
        return
    if holder is None:  # unreadable: not one of ours, or damaged; nobody can say who holds it
        if not force:
            raise OutputLocked(f"{what!r} has an unreadable lock file {str(path)!r}; if no run is writing this "
                               f"output, rerun with --force-lock (or delete that file).")
        notes.append(f"removed the unreadable lock file {path} (--force-lock)")
    else:
        alive = _holder_alive(holder, me["host"])
        if alive:
            raise OutputLocked(f"{what!r} is being written by another run: {_describe(holder)}; wait for it to "
                               f"finish or stop it, or choose another --out.")
        if alive is None and not force:
            raise OutputLocked(f"{what!r} is locked by a run on another host: {_describe(holder)}; if that run "
                               f"is no longer running, rerun with --force-lock.")
        why = "no longer running" if alive is False else "on another host, --force-lock"
        notes.append(f"took over the lock of {_describe(holder)} ({why})")
    path.unlink(missing_ok=True)


def _create(path: Path, me: dict) -> None:
    """Create ``path`` holding ``me`` as JSON, atomically: FileExistsError if it exists.

    A hard link of a complete temporary file (never seen half-written); where the file system
    has no hard links, an O_EXCL create.
    """
    text = json.dumps(me).encode()
    tmp = temporary_name(path)
    try:
        tmp.write_bytes(text)
        try:
            os.link(tmp, path)
            return
        except FileExistsError:
            raise
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV):
                raise
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(text)


_GONE: dict = {}  # a lock file that vanished while being read (released meanwhile)


def _read(path: Path) -> dict | None:
    """The holder recorded in a lock file; None if unreadable, _GONE if it no longer exists."""
    try:
        held = json.loads(path.read_text())
    except FileNotFoundError:
        return _GONE
    except (OSError, ValueError):
        return None
    return held if isinstance(held, dict) else None


@contextlib.contextmanager
def _folder_mutex(folder: Path):
    """flock on the folder while locks are created or taken over (best effort: no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def sweep_output(out: str | Path) -> int:
    """Remove what killed writers left beside ``out``: temporaries of the catalogue, its
    .rejects/.skipped Parquet files and renamed-away parts folders. Returns how many."""
    out = Path(out)
    n = 0
    if not out.parent.is_dir():
        return 0
    stem = out.name[: -len(out.suffix)] if out.suffix else out.name
    names = (out.name, f"{out.name}.parts", f"{stem}.rejects.parquet", f"{stem}.skipped.parquet")
    found = [p for name in names for p in out.parent.glob(f".{_glob_escape(name)}{TMP_MARK}*")]
    for p in found:
        pid = p.name.split(TMP_MARK, 1)[1].split("-", 1)[0]
        if pid.isdigit() and pid_alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            n += 1
    return n


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def remove_parts(parts: str | Path) -> None:
    """Delete a parts folder: renamed away first (atomic), so that it is whole or gone."""
    parts = Path(parts)
    if not parts.is_dir():
        return
    gone = temporary_name(parts)
    os.rename(parts, gone)
    shutil.rmtree(gone, ignore_errors=True)
