"""Reader workers, the fork server and the resource tracker end with the process that started
them, however it ends, and its shared-memory segments are reclaimed (jaxvac.io.lifetime)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from jaxvac.io.lifetime import SHM_DIR, SHM_PREFIX, pid_alive, sweep_shared_memory

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir() or not SHM_DIR.is_dir(),
                                reason="needs Linux /proc and /dev/shm")

LAMOST = Path(__file__).resolve().parents[2] / "shared" / "lamost"

# A stream over many copies of one real file, slowed down so it is killed mid-way.
SCRIPT = textwrap.dedent("""
    import sys, time
    from jaxvac.io.stream import stream_batches
    if __name__ == "__main__":
        files = [sys.argv[1]] * 100000
        with stream_batches(files, batch_size=64, workers=2, progress=False) as s:
            for k, b in enumerate(s):
                if k == 2:
                    print("streaming", flush=True)
                time.sleep(0.02)
""")


def _descendants(pid: int) -> set[int]:
    """Every process whose chain of parents leads to ``pid`` (from /proc)."""
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            parent[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, frontier = set(), {pid}
    while frontier:
        frontier = {c for c, p in parent.items() if p in frontier} - out
        out |= frontier
    return out


def _segments(pid: int) -> list[str]:
    return sorted(p.name for p in SHM_DIR.glob(f"{SHM_PREFIX}{pid}-*"))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_stream_leaves_no_process_and_no_segment(tmp_path, sig):
    files = sorted(LAMOST.glob("*.fits*")) if LAMOST.is_dir() else []
    if not files:
        pytest.skip(f"real LAMOST spectra not found in {LAMOST} (../shared absent)")
    script = tmp_path / "stream.py"
    script.write_text(SCRIPT)
    p = subprocess.Popen([sys.executable, str(script), str(files[0])], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "streaming"
        children = _descendants(p.pid)
        assert len(children) >= 3, children  # fork server + 2 workers (+ resource tracker)
        assert _segments(p.pid), "the stream should use shared memory here"
        p.send_signal(sig)
        p.wait(timeout=10)
        deadline = time.monotonic() + 2.0  # the bound: gone within 2 s of the kill
        while time.monotonic() < deadline and ({c for c in children if _alive_not_zombie(c)} or _segments(p.pid)):
            time.sleep(0.05)
        assert {c for c in children if _alive_not_zombie(c)} == set()
        assert _segments(p.pid) == []
    finally:
        if p.poll() is None:
            p.kill()
        for c in children if "children" in locals() else ():
            if _alive_not_zombie(c):
                os.kill(c, signal.SIGKILL)


def _alive_not_zombie(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sweep_removes_segments_of_dead_processes_only(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    assert not pid_alive(dead_pid)
    mine = SHM_DIR / f"{SHM_PREFIX}{os.getpid()}-test-0"
    theirs = SHM_DIR / f"{SHM_PREFIX}{dead_pid}-test-0"
    other = SHM_DIR / f"notjaxvac-{dead_pid}-0"
    for f in (mine, theirs, other):
        f.write_bytes(b"x")
    try:
        assert sweep_shared_memory() >= 1
        assert mine.exists() and other.exists() and not theirs.exists()
    finally:
        for f in (mine, theirs, other):
            f.unlink(missing_ok=True)


def test_sweep_removes_the_semaphores_a_killed_process_group_left_and_keeps_live_ones(monkeypatch):
    # A batch system kills the whole job (kill -9 -<pgid>): the resource tracker dies too and
    # multiprocessing's named semaphores stay in /dev/shm; the next run's sweep removes them, but
    # never one a live process has open.
    import multiprocessing

    from jaxvac.io import lifetime

    if lifetime._mapped_shm_inodes() is None:  # e.g. root in a container whose init cannot be read
        # the sweep then removes no semaphore (checked here); the rest is checked with the
        # readable processes only
        stale = SHM_DIR / "sem.mp-jaxvac-test"
        stale.write_bytes(b"x" * 32)
        os.utime(stale, (time.time() - 60, time.time() - 60))
        try:
            sweep_shared_memory()
            assert stale.exists()
        finally:
            stale.unlink(missing_ok=True)
        scan = lifetime._mapped_shm_inodes
        monkeypatch.setattr(lifetime, "_mapped_shm_inodes", lambda: scan(ignore_unreadable=True))

    code = ("import multiprocessing, sys, time\n"
            "if __name__ == '__main__':\n"
            "    lock = multiprocessing.get_context('spawn').Lock()\n"
            "    print(lock._semlock.name, flush=True)\n"
            "    time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    name = p.stdout.readline().strip().lstrip("/")
    left = SHM_DIR / f"sem.{name}"
    assert left.exists()
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    live = multiprocessing.get_context("spawn").Lock()  # open in this process
    mine = SHM_DIR / f"sem.{live._semlock.name.lstrip('/')}"
    try:
        for f in (left, mine):
            os.utime(f, (time.time() - 60, time.time() - 60))  # older than the grace time
        assert left.exists() and mine.exists()  # the tracker died with the group: nothing unlinked it
        assert sweep_shared_memory() >= 1
        assert not left.exists() and mine.exists()
    finally:
        left.unlink(missing_ok=True)
    del live
