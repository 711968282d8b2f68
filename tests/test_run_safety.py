"""A run around its work: the output lock, merging only complete parts, every input accounted
for, and SIGKILL / SIGTERM at random moments (in a part write, in the merge) that leave no
process, no shared memory, and a catalogue identical to an uninterrupted run's after a rerun.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import fitsio
import numpy as np
import pytest

import tiny_run
from jaxvac.run.catalog import empty_catalog, read_catalog, read_skipped, rejects_table
from jaxvac.run.merge import merge
from jaxvac.run.output import OutputLocked, acquire, remove_parts, sweep_output
from jaxvac.run.parts import SKIP_DTYPE, PartsError, PartStore, parts_dir
from test_lifetime import _alive_not_zombie, _descendants, _segments

LINUX = Path("/proc").is_dir() and Path("/dev/shm").is_dir()


def _dead_pid() -> int:
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(p.stdout)


# -- the lock ------------------------------------------------------------------------------------
def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    with acquire(tmp_path / "o.parts", out="o.fits") as lock:
        held = json.loads(lock.path.read_text())
        assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
        with pytest.raises(OutputLocked, match=rf"'o.fits' is being written by another run: pid {os.getpid()} on host"):
            acquire(tmp_path / "o.parts", out="o.fits")
        with pytest.raises(OutputLocked):  # a shard writer is refused while the whole output is locked
            acquire(tmp_path / "o.parts", writer=1)
    assert not (tmp_path / "o.parts").exists()  # released; the empty folder removed with it


def test_shard_writers_coexist_and_exclude_the_whole_output_lock(tmp_path):
    d = tmp_path / "o.parts"
    a, b = acquire(d, writer=0), acquire(d, writer=1)
    assert sorted(p.name for p in d.iterdir()) == ["lock-p000", "lock-p001"]
    with pytest.raises(OutputLocked, match="being written by another run"):
        acquire(d)  # a merge while shards run
    a.release(), b.release()
    acquire(d).release()


@pytest.mark.skipif(not LINUX, reason="pid liveness and start times from /proc")
def test_stale_lock_of_a_dead_process_is_taken_over_with_a_note(tmp_path):
    d = tmp_path / "o.parts"
    d.mkdir()
    dead = _dead_pid()
    (d / "lock").write_text(json.dumps({"host": socket.gethostname(), "pid": dead, "since": "then", "command": "x"}))
    with acquire(d) as lock:
        assert lock.notes == [f"took over the lock of pid {dead} on host {socket.gethostname()!r} since then (`x`) "
                              f"(no longer running)"]
    # A live pid whose start time differs is a reused pid: stale too.
    (d := tmp_path / "p.parts").mkdir()
    (d / "lock").write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "start": 1}))
    with acquire(d) as lock:
        assert "no longer running" in lock.notes[0]


def test_lock_from_another_host_needs_force(tmp_path):
    d = tmp_path / "o.parts"
    d.mkdir()
    (d / "lock-p001").write_text(json.dumps({"host": "elsewhere", "pid": 1, "since": "then", "command": "x"}))
    with pytest.raises(OutputLocked, match=r"locked by a run on another host: pid 1 on host 'elsewhere'.*--force-lock"):
        acquire(d)
    assert (d / "lock-p001").exists()
    with acquire(d, force=True) as lock:
        assert "on another host, --force-lock" in lock.notes[0] and not (d / "lock-p001").exists()


def test_sweep_and_remove_parts(tmp_path):
    out = tmp_path / "cat.parquet"
    dead = _dead_pid()
    left = [tmp_path / f".cat.parquet.tmp-{dead}-aa.parquet", tmp_path / f".cat.rejects.parquet.tmp-{dead}-bb.parquet",
            tmp_path / f".cat.parquet.parts.tmp-{dead}-cc.parts"]
    kept = [tmp_path / f".cat.parquet.tmp-{os.getpid()}-dd.parquet", tmp_path / f".other.fits.tmp-{dead}-ee.fits"]
    for p in left[:2] + kept:
        p.write_bytes(b"x")
    left[2].mkdir()
    (left[2] / "part-p000-000000.npz").write_bytes(b"x")
    assert sweep_output(out) == 3
    assert not any(p.exists() for p in left) and all(p.exists() for p in kept)
    d = tmp_path / "cat.parquet.parts"
    d.mkdir()
    (d / "manifest.json").write_text("{}")
    remove_parts(d)
    assert not d.exists() and sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in kept)


# -- merging only what is complete -----------------------------------------------------------------
def _write_part(store, rows=(), rejects=(), skipped=()):
    r = empty_catalog(len(rows))
    r["obsid"] = np.asarray(rows, np.int64) * 10
    rej = rejects_table([(f"f{i}", "truncated") for i in rejects])
    sk = np.array([(f"s{i}".encode(), 100 + i, b"class GALAXY") for i in skipped], dtype=SKIP_DTYPE)
    store.write(r, np.asarray(rows, int), rej, np.asarray(rejects, int), sk, np.asarray(skipped, int))


def test_merge_refuses_missing_shares_then_accounts_for_every_input(tmp_path):
    out = tmp_path / "cat.fits"
    ident = {"inputs": "x", "n_inputs": 10, "model": "m"}
    _write_part(PartStore(parts_dir(out), ident, worker=0, n_workers=2), rows=[0, 2, 3], rejects=[1], skipped=[4])
    with pytest.raises(PartsError, match=r"covers 5 of the 10 inputs \(5 missing: missing from --shard 1/2 \(5 of its 5"):
        merge(out)
    assert not out.exists()
    m = merge(out, allow_partial=True)
    assert (m.rows, m.rejects, m.skipped, m.missing) == (3, 1, 1, 5) and parts_dir(out).is_dir()
    assert fitsio.read_header(out, "CATALOG")["PARTIAL"] is True
    _write_part(PartStore(parts_dir(out), ident, worker=1, n_workers=2), rows=[5, 9], skipped=[6, 7, 8])
    m = merge(out)
    assert (m.rows, m.rejects, m.skipped, m.missing) == (5, 1, 4, 0)
    h = fitsio.read_header(out, "CATALOG")
    assert (h["NINPUTS"], h["NROWS"], h["NREJECT"], h["NSKIPPED"]) == (10, 5, 1, 4) and "PARTIAL" not in h
    sk = read_skipped(out)
    assert sk["path"].tolist() == [b"s4", b"s6", b"s7", b"s8"] and sk["obsid"].tolist() == [104, 106, 107, 108]
    assert not parts_dir(out).exists()  # removed after the complete merge


def test_merge_lists_missing_input_ranges_without_a_share_count(tmp_path):
    out = tmp_path / "cat.fits"
    store = PartStore(parts_dir(out), {"n_inputs": 9}, worker=0, n_workers=1)
    _write_part(store, rows=[0, 1, 5])
    with pytest.raises(PartsError, match=r"6 missing: input numbers 2-4, 6-8\)"):
        merge(out)


def test_merge_keep_parts(tmp_path):
    out = tmp_path / "cat.fits"
    _write_part(PartStore(parts_dir(out), {"n_inputs": 2}), rows=[0], skipped=[1])
    merge(out, keep_parts=True)
    assert sorted(p.name for p in parts_dir(out).iterdir()) == ["manifest.json", "part-p000-000000.npz"]


# -- the watchdog: a process stuck in C still ends in time after SIGTERM -------------------------------
STUCK = textwrap.dedent("""
    import hashlib, sys
    from jaxvac.errors import Interrupted
    from jaxvac.interrupts import stop_on_signals
    with stop_on_signals(lambda s: f"stopped by {s}", grace_s=0.5):
        print("ready", flush=True)
        while True:
            try:
                hashlib.pbkdf2_hmac("sha256", b"x", b"y", 10**9)  # minutes in C; Python's handler cannot run
            except Interrupted:  # the signal came before the C call: into C again
                pass
    print("not reached", flush=True)
""")


def test_sigterm_ends_a_process_stuck_in_c_within_the_grace_time(tmp_path):
    p = subprocess.Popen([sys.executable, "-c", STUCK], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        time.sleep(0.2)
        t = time.monotonic()
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=5)
        assert time.monotonic() - t < 2.0
        assert p.returncode == 128 + signal.SIGTERM
        assert p.stderr.read() == f"stopped by {int(signal.SIGTERM)}\n" and p.stdout.read() == ""
    finally:
        if p.poll() is None:
            p.kill()


SWALLOWED = textwrap.dedent("""
    import os, signal, threading, time
    from jaxvac.errors import Interrupted
    from jaxvac.interrupts import stop_on_signals

    class Slow:
        def __del__(self):
            time.sleep(0.5)  # the signal lands here, where Python swallows exceptions

    try:
        with stop_on_signals(lambda s: "forced exit", grace_s=3.0):
            threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGTERM)).start()
            x = Slow()
            del x
            time.sleep(2)
            print("not interrupted")
    except Interrupted as e:
        print("interrupted", e.signum)
""")


def test_a_signal_swallowed_by_a_destructor_is_raised_again():
    r = subprocess.run([sys.executable, "-c", SWALLOWED], capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stdout, r.stderr) == (0, f"interrupted {int(signal.SIGTERM)}\n", "")


# -- the kill test ---------------------------------------------------------------------------------------
# A CLI run whose part writes, merge write or parts removal can be slowed down (printing a marker
# first), so that a kill lands inside them. The library is not changed: this wrapper patches it.
CHILD = textwrap.dedent("""
    import shutil, sys, time

    def marker(name, slow):
        print(name, flush=True)
        time.sleep(slow)

    def slowed_write(module, name, slow):
        orig = module.atomic_write
        def write(path, data, **kw):
            if not callable(data):
                return orig(path, data, **kw)
            def slowly(f):
                data(f)
                f.flush()
                marker(name, slow)  # the temporary file is written, not yet renamed
            return orig(path, slowly, **kw)
        module.atomic_write = write

    if __name__ == "__main__":  # the reader's fork server imports this file again
        mode, slow = sys.argv[1], float(sys.argv[2])
        if mode == "part":
            import jaxvac.run.parts
            slowed_write(jaxvac.run.parts, "PART", slow)
        elif mode == "merge":
            import jaxvac.io.fitstable
            slowed_write(jaxvac.io.fitstable, "MERGE", slow)
        elif mode == "removal":
            orig_rmtree = shutil.rmtree
            def rmtree(path, *a, **k):
                marker("RMTREE", slow)  # the parts folder is renamed away, not yet deleted
                return orig_rmtree(path, *a, **k)
            shutil.rmtree = rmtree
        from jaxvac.cli import main
        main(sys.argv[3:], prog_name="jaxvac")
""")


class _Child:
    """A `jaxvac run` subprocess, its stdout lines in a queue."""

    def __init__(self, script, setup, out, env, mode="none", slow=0.0, extra=()):
        self.p = subprocess.Popen([sys.executable, str(script), mode, str(slow), *tiny_run.run_args(setup, out, *extra)],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        self.err: list[str] = []
        threading.Thread(target=self._pump, args=(self.p.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.p.stderr, self.err.append), daemon=True).start()

    @staticmethod
    def _pump(stream, put):
        for line in stream:
            put(line.rstrip("\n"))

    def wait_for(self, marker: str, count: int, timeout: float = 120) -> bool:
        """Wait for the count-th line ``marker``; False if the process ended first."""
        seen, end = 0, time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=0.05)
            except queue.Empty:
                if self.p.poll() is not None and self.lines.empty():
                    return False
                continue
            seen += line == marker
            if seen == count:
                return True
        raise TimeoutError(f"no {count}th {marker} within {timeout} s")

    def kill(self, sig) -> bool:
        """Send ``sig``; then within 2 s no process of the run and no shared memory of it may be left.
        Returns False if the run had already finished (no kill)."""
        if self.p.poll() is not None:
            return False
        children = _descendants(self.p.pid)
        t = time.monotonic()
        self.p.send_signal(sig)
        try:
            self.p.wait(timeout=2.0)
        finally:
            if self.p.poll() is None:
                self.p.kill()
        while time.monotonic() - t < 2.0 and ({c for c in children if _alive_not_zombie(c)} or _segments(self.p.pid)):
            time.sleep(0.02)
        assert {c for c in children if _alive_not_zombie(c)} == set(), f"{sig!r}: processes left"
        assert _segments(self.p.pid) == [], f"{sig!r}: shared memory left"
        if sig == signal.SIGTERM and self.p.returncode == 143:  # -15: killed before the CLI started
            time.sleep(0.1)
            saved = f"progress saved in {self.parts}/; rerun the same command to continue"
            early = "stopped before it began; rerun the same command"  # before `jaxvac run` itself started
            assert self.err in ([f"jaxvac run: interrupted (SIGTERM): {saved}"],
                                [f"jaxvac run: interrupted (SIGTERM): {early}"]), self.err
        return True

    @property
    def parts(self):
        return parts_dir(self.p.args[self.p.args.index("--out") + 1])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("safety")
    s = tiny_run.make(tmp, n=150, seed=5)
    s["env"] = tiny_run.child_env(tmp / "jax-cache")
    s["child"] = tmp / "child.py"
    s["child"].write_text(CHILD)
    t = time.perf_counter()
    r = tiny_run.cli(tiny_run.run_args(s, tmp / "base.fits"), s["env"])
    assert r.returncode == 0, r.stdout + r.stderr
    s["wall"] = time.perf_counter() - t
    s["base"] = tmp / "base.fits"
    return s


def test_every_input_is_a_row_a_reject_or_skipped(setup):
    truth = setup["truth"]
    h = fitsio.read_header(setup["base"], "CATALOG")
    rows, rejects = read_catalog(setup["base"])
    skipped = read_skipped(setup["base"])
    assert (h["NROWS"], h["NREJECT"], h["NSKIPPED"]) == (len(rows), len(rejects), len(skipped))
    assert h["NINPUTS"] == len(truth) == len(rows) + len(rejects) + len(skipped)
    path = lambda p: str(setup["survey"] / p)  # noqa: E731
    cls = np.char.strip(truth["class"])
    skip = ~truth["corrupt"] & ((cls != "STAR") | (truth["snrg"] <= 10))  # class first, then snrg (rows.skip_reasons)
    want = {path(p): (o, f"class {c}" if c != "STAR" else "snrg <= 10")
            for p, o, c in zip(truth["path"][skip], truth["obsid"][skip], cls[skip])}
    got = {p.decode(): (o, r.decode()) for p, o, r in zip(skipped["path"], skipped["obsid"], skipped["reason"])}
    assert got == want and {r.split()[0] for _, r in got.values()} == {"class", "snrg"}  # both kinds occur
    assert {p.decode() for p in rejects["path"]} == {path(p) for p in truth["path"][truth["corrupt"]]}


@pytest.mark.skipif(not LINUX, reason="processes from /proc, shared memory in /dev/shm")
def test_two_runs_on_one_output_the_second_refused(setup):
    """The issue's case: two runs with different batch sizes on one --out both did all the work."""
    out = setup["tmp"] / "locked.fits"
    a = _Child(setup["child"], setup, out, setup["env"], mode="part", slow=3.0)
    try:
        assert a.wait_for("PART", 1)
        r = tiny_run.cli(tiny_run.run_args(setup, out, "--batch-size", "8"), setup["env"])
        assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
        assert r.stderr.startswith(f"jaxvac run: '{out}' is being written by another run: pid {a.p.pid} on host "
                                   f"{socket.gethostname()!r} since ")
        assert r.stderr.rstrip().endswith("; wait for it to finish or stop it, or choose another --out.")
    finally:
        assert a.kill(signal.SIGTERM)
    r = tiny_run.cli(tiny_run.run_args(setup, out, "--batch-size", "8"), setup["env"])
    assert r.returncode == 0, r.stderr
    rows, base = read_catalog(out)[0], read_catalog(setup["base"])[0]
    assert len(rows) == len(base) and np.array_equal(rows["obsid"], base["obsid"])


@pytest.mark.skipif(not LINUX, reason="processes from /proc, shared memory in /dev/shm")
def test_kills_at_random_moments_in_part_writes_and_in_the_merge(setup):
    """20 kills, SIGKILL and SIGTERM in turn; after each series a plain rerun must give the
    uninterrupted run's catalogue byte for byte, with no parts or temporaries left."""
    rng = np.random.default_rng(13)
    signals = iter([signal.SIGKILL, signal.SIGTERM] * 30)
    base = setup["base"].read_bytes()
    series = [  # (name, [(mode, slow, kills wanted)])
        ("random", [("none", 0.0, 8)]),  # at a random time after the start
        ("parts", [("part", 0.6, 6)]),  # while a part's temporary file is written, before its rename
        ("merge", [("merge", 0.6, 5), ("removal", 0.6, 1)]),  # in the merge's write; in the parts' removal
    ]
    kills, attempts, t0 = 0, 0, time.perf_counter()
    for name, plan in series:
        out = setup["tmp"] / f"killed-{name}.fits"
        for mode, slow, wanted in plan:
            done, upper = 0, 0.9
            while done < wanted:
                attempts += 1
                assert attempts < 60, "too many runs finished before their kill"
                c = _Child(setup["child"], setup, out, setup["env"], mode=mode, slow=slow)
                if mode == "none":
                    time.sleep(rng.uniform(0.1, upper) * setup["wall"])
                else:
                    marker = {"part": "PART", "merge": "MERGE", "removal": "RMTREE"}[mode]
                    if not c.wait_for(marker, int(rng.integers(1, 3)) if mode == "part" else 1):
                        continue  # finished before that moment: not a kill
                    time.sleep(rng.uniform(0.0, slow))
                killed = c.kill(next(signals))
                done += killed
                upper = upper if killed else max(0.2, 0.7 * upper)  # finished first: aim earlier
        kills += sum(w for _, _, w in plan)
        r = tiny_run.cli(tiny_run.run_args(setup, out), setup["env"])
        assert r.returncode == 0, r.stderr
        assert out.read_bytes() == base, name
        assert sorted(p.name for p in out.parent.glob(f"*{out.stem}*")) == [out.name], name  # no parts, no temporaries
    assert kills >= 20
    print(f"{kills} kills ({attempts} runs) in {time.perf_counter() - t0:.1f} s")
