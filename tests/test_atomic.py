"""jaxvac.io.atomic: the one atomic write (temporary name beside the target, rename) and its sweep."""

import os
import subprocess
import sys

import numpy as np
import pytest

from jaxvac.io.atomic import TMP_MARK, atomic_path, atomic_write, sweep


def test_write_bytes_str_and_callable(tmp_path):
    p = tmp_path / "a.json"
    assert atomic_write(p, '{"x": 1}') == p and p.read_text() == '{"x": 1}'
    atomic_write(p, b"\x00\x01")  # replaces the old content
    assert p.read_bytes() == b"\x00\x01"
    atomic_write(tmp_path / "z.npz", lambda f: np.savez(f, a=np.arange(3)))
    with np.load(tmp_path / "z.npz") as z:
        np.testing.assert_array_equal(z["a"], [0, 1, 2])
    atomic_write(tmp_path / "f.bin", b"synced", fsync=True)
    assert (tmp_path / "f.bin").read_bytes() == b"synced"
    assert sorted(q.name for q in tmp_path.iterdir()) == ["a.json", "f.bin", "z.npz"]  # no temporary left


def test_temporary_keeps_the_suffix_and_is_hidden_beside_the_target(tmp_path):
    target = tmp_path / "plot.png"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".plot.png" + TMP_MARK)
        assert tmp.suffix == ".png" and not tmp.exists() and not target.exists()
        tmp.write_bytes(b"png")
    assert target.read_bytes() == b"png" and not tmp.exists()
    with atomic_path(tmp_path / "cache.npz") as tmp:
        np.savez(tmp, a=np.ones(2))  # numpy adds no second .npz: the name already ends in it
    assert sorted(q.name for q in tmp_path.iterdir()) == ["cache.npz", "plot.png"]


def test_an_exception_leaves_no_temporary_and_no_target(tmp_path):
    target = tmp_path / "part.npz"
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half a file")
        raise RuntimeError("disk on fire")
    assert list(tmp_path.iterdir()) == []

    def half(f):
        f.write(b"half")
        raise OSError("no space left")

    with pytest.raises(OSError, match="no space left"):
        atomic_write(target, half, fsync=True)
    assert list(tmp_path.iterdir()) == []
    atomic_write(target, b"old")
    with pytest.raises(OSError):
        atomic_write(target, half)
    assert [q.name for q in tmp_path.iterdir()] == ["part.npz"] and target.read_bytes() == b"old"


def test_sweep_removes_dead_writers_temporaries_and_keeps_live_ones(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    dead_pid = int(dead.stdout)  # exited and reaped: no process has this pid (until it is reused)
    dead_tmp = tmp_path / f".cat.fits{TMP_MARK}{dead_pid}-0a1b2c3d.fits"
    mine = tmp_path / f".cat.fits{TMP_MARK}{os.getpid()}-0a1b2c3d.fits"
    parent = tmp_path / f".x.json{TMP_MARK}{os.getppid()}-deadbeef.json"
    for p in (dead_tmp, mine, parent):
        p.write_bytes(b"partial")
    (tmp_path / "cat.fits").write_bytes(b"whole")
    (tmp_path / ".hidden").write_bytes(b"not a temporary")
    assert sweep(tmp_path) == 1
    assert sorted(q.name for q in tmp_path.iterdir()) == sorted([mine.name, parent.name, "cat.fits", ".hidden"])
    assert sweep(tmp_path) == 0
