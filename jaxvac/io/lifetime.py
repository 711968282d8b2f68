"""Processes and shared memory that must not outlive the run that made them.

A batch system ends a job with SIGTERM, then SIGKILL; a user with Ctrl-C or ``kill -9``. Python's
multiprocessing keeps a pool's workers alive after their parent is killed (each worker holds the
write ends of its own queues, so it never sees EOF), and they in turn keep the fork server and the
resource tracker alive, which would unlink the run's shared-memory segments only when it exits.
Here each worker watches its parent and exits the moment the parent is gone, which lets the whole
chain end and the resource tracker unlink the segments; :func:`sweep_shared_memory` removes the
segments of runs killed before this existed, or whose tracker was killed too.
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
    """Unlink jaxvac segments whose creating process is dead; returns how many were removed."""
    if not SHM_DIR.is_dir():
        return 0
    n = 0
    for p in SHM_DIR.glob(f"{SHM_PREFIX}*"):
        pid = p.name[len(SHM_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                p.unlink()
                n += 1
    return n
