"""Processes and shared memory that must not outlive the run that made them.

A batch system ends a job with SIGTERM, then SIGKILL; a user with Ctrl-C or ``kill -9``. Python's
multiprocessing keeps a pool's workers alive after their parent is killed (each worker holds the
write ends of its own queues, so it never sees EOF), and they in turn keep the fork server and the
resource tracker alive, which would unlink the run's shared-memory segments only when it exits.
Here each worker watches its parent and exits the moment the parent is gone, which lets the whole
chain end and the resource tracker unlink the segments; :func:`sweep_shared_memory` removes the
segments of runs killed before this existed, or whose tracker was killed too (a batch system that
kills the whole job, ``kill -9 -<pgid>``): jaxvac's own segments, and the named semaphores of
multiprocessing's queues and locks (``/dev/shm/sem.mp-*``, which the tracker would have unlinked)
that no live process has open.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from pathlib import Path

SHM_DIR = Path("/dev/shm")
SHM_PREFIX = "jaxvac-"  # shared-memory segments are named jaxvac-<pid>-<random>-<k>
SEM_PREFIX = "sem.mp-"  # multiprocessing's named semaphores (forkserver/spawn pools), /dev/shm/sem.mp-<random>
SEM_GRACE_S = 2.0  # s; a semaphore younger than this is never swept (its creator maps it before naming it)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (on this host)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def exit_with(pid: int) -> None:
    """Start a daemon thread that ends this process (``os._exit(1)``) as soon as ``pid`` exits.

    Uses a pidfd (Linux >= 5.3: woken by the kernel, no polling); elsewhere polls every 0.2 s.
    """
    threading.Thread(target=_wait_then_exit, args=(pid,), daemon=True, name="jaxvac-parent-watch").start()


def _wait_then_exit(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd here, or the parent is already gone
        while pid_alive(pid):
            time.sleep(0.2)
    else:
        select.select([fd], [], [])
    os._exit(1)


def shm_name(tag: str) -> str:
    """The name prefix of this process's shared-memory segments (``jaxvac-<pid>-<tag>``)."""
    return f"{SHM_PREFIX}{os.getpid()}-{tag}"


def sweep_shared_memory() -> int:
    """Unlink jaxvac segments whose creating process is dead, and this user's multiprocessing
    semaphores (older than SEM_GRACE_S) that no process has mapped; returns how many were removed.

    A semaphore's name carries no pid: it is stale when no process maps its inode (every user of
    one has it mapped from sem_open on, the creator before the name exists), judged from
    /proc/*/maps; when a process of this user cannot be read, or there is no /proc, no semaphore
    is removed.
    """
    if not SHM_DIR.is_dir():
        return 0
    n = 0
    for p in SHM_DIR.glob(f"{SHM_PREFIX}*"):
        pid = p.name[len(SHM_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                p.unlink()
                n += 1
    me, now = os.getuid(), time.time()
    sems = []
    for p in SHM_DIR.glob(f"{SEM_PREFIX}*"):
        with contextlib.suppress(OSError):
            st = p.stat()
            if st.st_uid == me and now - st.st_mtime > SEM_GRACE_S:
                sems.append((p, st.st_ino))
    mapped = _mapped_shm_inodes() if sems else None
    for p, ino in sems if mapped is not None else ():
        if ino not in mapped:
            with contextlib.suppress(OSError):
                p.unlink()
                n += 1
    return n


def _mapped_shm_inodes(ignore_unreadable: bool = False) -> set[int] | None:
    """Inodes of the /dev/shm files some process maps (/proc/<pid>/maps; by inode, as glibc's
    sem_open maps a temporary name it then links to the final one), or None when that cannot be
    known: no /proc, or a process of this user whose maps cannot be read (a container's init run
    as root, say: then nothing is swept). ignore_unreadable: skip such processes instead (tests
    only: the answer may then miss a process that maps one)."""
    proc, me = Path("/proc"), os.getuid()
    if not (proc / "self" / "maps").is_file():
        return None
    inodes: set[int] = set()
    marker = f" {SHM_DIR}/".encode()
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            data = (d / "maps").read_bytes()
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited meanwhile
        except OSError:
            try:
                if d.stat().st_uid == me and not ignore_unreadable:
                    return None
            except OSError:
                pass
            continue  # another user's process cannot map this user's 0600 semaphores
        for line in data.splitlines():
            if marker in line:  # address perms offset dev inode path
                inodes.add(int(line.split(None, 5)[4]))
    return inodes
