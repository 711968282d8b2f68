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
