"""stream_batches: every file once (a row or a reject), input order for any worker count and batch
size, exact shard partition, resumption, worker failures, bounded prefetch, the real reader."""

import gzip
import io
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxvac.constants import NPIX_GLOBAL
from jaxvac.io.inputs import resolve_inputs
from jaxvac.io.lamost import read_spectrum
from jaxvac.display.progress import progress_wanted
from jaxvac.io.records import META_DTYPE, Reject, Spectrum, empty_meta
import jaxvac.io.stream as stream_mod
from jaxvac.io.stream import WORKER_DIED, StreamError, shard_bounds, stream_batches


# -- fake readers (module level: workers import them by name) ---------------------------------
def fake_spectrum(path: str) -> Spectrum:
    """A spectrum whose content is a known function of the number in the file name."""
    k = int(re.findall(r"\d+", os.path.basename(path))[-1])
    j = np.arange(NPIX_GLOBAL)
    meta = empty_meta(1)[0]
    meta["path"], meta["obsid"] = path, k
    return Spectrum(flux=(k + 1e-3 * j).astype(np.float32), ivar=np.full(NPIX_GLOBAL, 1.0 / (k + 1), np.float32),
                    good=(j % (k + 2)) != 0, meta=meta)


def fake_reader(path):
    name = os.path.basename(path)
    if name.startswith("bad"):
        return Reject(path, "bad data: fake")
    if name.startswith("raise"):
        raise ValueError(f"boom {name}")
    if name.startswith("die"):
        os._exit(3)  # a worker killed mid-file (a crash in a C library, the OOM killer)
    if name.startswith("weird"):
        return Reject(path, _Unpicklable())
    if name.startswith("log"):
        with open(os.path.join(os.path.dirname(path), "reads.log"), "a") as f:
            f.write(name + "\n")
    return fake_spectrum(path)


class _Unpicklable(str):
    def __reduce__(self):
        raise TypeError("this reason cannot be pickled")


def _paths(n, kinds=None, prefix="/fake"):
    """n fake paths; kinds maps position -> 'bad' / 'raise' / 'die' (default good)."""
    kinds = kinds or {}
    return [f"{prefix}/{kinds.get(i, 'good')}_{i}.fits" for i in range(n)]


MIXED = {3: "bad", 4: "bad", 11: "raise", 12: "bad", 30: "raise", 46: "bad"}


def _collect(stream):
    """Concatenated valid rows and rejects; also checks each batch's shapes, dtypes and padding."""
    idx, flux, ivar, good, meta, rej, rej_i, per_batch = [], [], [], [], [], [], [], []
    B = stream.batch_size
    for b in stream:
        assert b.flux.shape == b.ivar.shape == b.good.shape == (B, NPIX_GLOBAL)
        assert (b.flux.dtype, b.ivar.dtype, b.good.dtype, b.meta.dtype) == (np.float32, np.float32, bool, META_DTYPE)
        assert b.valid.shape == b.index.shape == b.meta.shape == (B,) and b.index.dtype == np.int64
        v = b.valid
        assert np.all(v[: b.n_valid]) and not np.any(v[b.n_valid :])  # valid rows first
        assert np.all(b.index[~v] == -1) and not b.flux[~v].any() and not b.ivar[~v].any() and not b.good[~v].any()
        assert np.all(b.meta["obsid"][~v] == -1)
        idx.append(b.index[v]), flux.append(b.flux[v]), ivar.append(b.ivar[v]), good.append(b.good[v]), meta.append(b.meta[v])
        rej += list(b.rejects)
        rej_i += b.reject_index.tolist()
        assert len(b.rejects) == len(b.reject_index)
        per_batch.append((b.index.tolist(), b.reject_index.tolist()))
    return dict(index=np.concatenate(idx), flux=np.concatenate(flux), ivar=np.concatenate(ivar),
                good=np.concatenate(good), meta=np.concatenate(meta), rejects=rej, reject_index=rej_i,
                per_batch=per_batch)


def _check_against_fake(out, paths, want_good):
    assert out["index"].tolist() == want_good
    for r, i in enumerate(want_good):
        s = fake_spectrum(paths[i])
        assert np.array_equal(out["flux"][r], s.flux) and np.array_equal(out["good"][r], s.good)
        assert np.array_equal(out["ivar"][r], s.ivar)
        assert out["meta"][r]["path"] == paths[i] and out["meta"][r]["obsid"] == i


@pytest.fixture(scope="module")
def reference():
    """The in-process stream (workers=0) over 50 mixed fake files: the reference output."""
    paths = _paths(50, MIXED)
    st = stream_batches(paths, batch_size=7, workers=0, chunk_size=5, reader=fake_reader)
    return paths, _collect(st), st.summary


def test_every_good_file_once_and_every_bad_one_as_a_reject(reference):
    paths, out, summary = reference
    want_good = [i for i in range(50) if i not in MIXED]
    _check_against_fake(out, paths, want_good)
    assert out["reject_index"] == sorted(MIXED)
    assert [r.path for r in out["rejects"]] == [paths[i] for i in sorted(MIXED)]
    assert out["rejects"][2].reason == "reader raised ValueError: boom raise_11.fits"
    assert (summary.inputs, summary.selected, summary.skipped, summary.read, summary.rejected) == (50, 50, 0, 44, 6)
    assert summary.reasons == {"bad data": 4, "reader raised ValueError": 2} and summary.batches == 7
    # A reject travels with the first batch whose last row comes after it.
    first_rows = [[i for i in idx if i >= 0] for idx, _ in out["per_batch"]]
    for (idx, rej), rows in zip(out["per_batch"], first_rows):
        assert all(r < rows[-1] for r in rej)


def _shared_memory_works() -> bool:
    slots = stream_mod._Slots.create(1, 4)
    if slots is None:
        return False
    slots.close()
    return True


SHM = _shared_memory_works()  # False where /dev/shm is missing or nearly full: chunks are pickled
SHM_TRANSPORT = "shared memory" if SHM else "pickle"


def _our_shared_memory():
    """Shared-memory blocks this process created and has not removed."""
    return sorted(n for n in os.listdir("/dev/shm") if n.startswith(f"jaxvac-{os.getpid()}-")) if os.path.isdir("/dev/shm") else []


@pytest.mark.parametrize("workers,batch_size,chunk_size,prefetch,shm",
                         [(1, 16, 3, None, True), (2, 7, 4, 1, True), (2, 50, 50, 3, True), (2, 7, 4, 2, False)])
def test_same_output_for_any_worker_count_batch_and_chunk_size(reference, monkeypatch, workers, batch_size, chunk_size,
                                                                prefetch, shm):
    paths, ref, _ = reference
    if not shm:  # as where /dev/shm is too small: chunks come back pickled
        monkeypatch.setattr(stream_mod._Slots, "create", classmethod(lambda cls, n, capacity: None))
    st = stream_batches(paths, batch_size=batch_size, workers=workers, chunk_size=chunk_size, prefetch=prefetch,
                        reader=fake_reader)
    out = _collect(st)
    assert st.summary.transport == (SHM_TRANSPORT if shm else "pickle") and _our_shared_memory() == []
    for k in ("index", "flux", "ivar", "good"):
        assert np.array_equal(out[k], ref[k]), k
    assert out["meta"].tobytes() == ref["meta"].tobytes()  # (NaN fields: compare bits)
    assert out["rejects"] == ref["rejects"] and out["reject_index"] == ref["reject_index"]
    if batch_size == 7:  # same batch size: the very same batches, rejects included
        assert out["per_batch"] == ref["per_batch"]
    assert -(-44 // batch_size) == st.summary.batches


def test_trailing_rejects_come_in_a_padding_batch_and_nothing_to_read_yields_nothing():
    paths = _paths(10, {8: "bad", 9: "raise"})
    batches = list(stream_batches(paths, batch_size=4, workers=0, reader=fake_reader))
    assert [b.n_valid for b in batches] == [4, 4, 0]
    assert batches[2].reject_index.tolist() == [8, 9] and not batches[2].valid.any()
    assert all(len(b.rejects) == 0 for b in batches[:2])
    st = stream_batches(paths, batch_size=4, workers=0, skip=paths, reader=fake_reader)
    assert list(st) == [] and (st.summary.skipped, st.summary.read, st.summary.rejected) == (10, 0, 0)
    assert list(stream_batches([], workers=2, reader=fake_reader)) == []


def test_shared_memory_is_not_used_when_dev_shm_is_nearly_full(monkeypatch):
    class Full:
        f_bavail, f_frsize = 10, 4096  # 40 KB free

    monkeypatch.setattr(stream_mod.os, "statvfs", lambda path: Full())
    assert stream_mod._Slots.create(3, 32) is None
    if SHM:
        monkeypatch.undo()
        slots = stream_mod._Slots.create(3, 2)
        names = _our_shared_memory()
        assert len(names) == 3 and os.path.getsize(f"/dev/shm/{names[0]}") >= 2 * (NPIX_GLOBAL * 9 + META_DTYPE.itemsize)
        slots.close()
        assert _our_shared_memory() == []


def test_shards_partition_the_input_exactly():
    for n_files in range(0, 23):
        for n in range(1, 6):
            bounds = [shard_bounds(n_files, (i, n)) for i in range(n)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n_files
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # contiguous, no gap/overlap
            sizes = [b - a for a, b in bounds]
            assert max(sizes) - min(sizes) <= 1
    paths = _paths(50, MIXED)
    seen = []
    for i in range(3):
        st = stream_batches(paths, batch_size=8, workers=0, shard=(i, 3), reader=fake_reader)
        out = _collect(st)
        seen.append(sorted(out["index"].tolist() + out["reject_index"]))
        assert st.summary.selected == len(seen[-1]) and st.summary.inputs == 50
    assert [len(s) for s in seen] == [16, 17, 17]
    assert sum(seen, []) == list(range(50))  # concatenated shards = the input, in order


def test_resumption_skips_exactly_the_processed_paths(reference, monkeypatch):
    paths, ref, _ = reference
    monkeypatch.chdir("/")
    done_paths = [paths[i] for i in (0, 1, 2, 3, 20)]
    done_paths[1] = "fake/../fake/good_1.fits"  # relative and unnormalised: compared by abspath
    skip = done_paths + [30, 31]  # positions work too
    st = stream_batches(paths, batch_size=7, workers=0, skip=skip, shard=(0, 1), reader=fake_reader)
    out = _collect(st)
    skipped = {0, 1, 2, 3, 20, 30, 31}
    want_good = [i for i in range(50) if i not in MIXED and i not in skipped]
    _check_against_fake(out, paths, want_good)
    assert out["reject_index"] == [i for i in sorted(MIXED) if i not in skipped]
    assert (st.summary.skipped, st.summary.to_read, st.summary.read) == (7, 43, len(want_good))
    # With a shard, only the shard's own paths count as skipped.
    st = stream_batches(paths, batch_size=7, workers=0, skip=skip, shard=(1, 2), reader=fake_reader)
    assert _collect(st)["index"].min() >= 25 and st.summary.skipped == 2


def test_a_dying_worker_costs_one_reject_not_the_run():
    paths = _paths(40, {5: "die", 6: "bad", 33: "die"})
    st = stream_batches(paths, batch_size=8, workers=2, chunk_size=4, prefetch=3, reader=fake_reader)
    out = _collect(st)
    _check_against_fake(out, paths, [i for i in range(40) if i not in (5, 6, 33)])
    assert out["reject_index"] == [5, 6, 33]
    assert [r.reason for r in out["rejects"]] == [WORKER_DIED, "bad data: fake", WORKER_DIED]
    assert st.summary.reasons[WORKER_DIED.split(":")[0]] == 2
    assert st.summary.transport == SHM_TRANSPORT and _our_shared_memory() == []


def test_a_worker_failing_outside_the_reader_raises_a_clear_error():
    paths = _paths(10, {7: "weird"})
    with pytest.raises(StreamError, match=r"a worker failed outside the reader while reading 5 files from '/fake/good_5.fits' to '/fake/good_9.fits'"):
        for _ in stream_batches(paths, batch_size=4, workers=1, chunk_size=5, reader=fake_reader):
            pass


def test_prefetch_bounds_the_files_read_ahead(tmp_path):
    paths = [str(tmp_path / f"log_{i}.fits") for i in range(200)]
    log = tmp_path / "reads.log"
    with stream_batches(paths, batch_size=2, workers=2, chunk_size=2, prefetch=2, reader=fake_reader) as st:
        first = next(iter(st))
        time.sleep(0.5)  # let the workers run as far ahead as they are allowed
        n_read = len(log.read_text().split())
        assert len(_our_shared_memory()) == (3 if SHM else 0)  # prefetch + 1 slots while streaming
    # One chunk consumed + at most `prefetch` submitted ahead = 3 chunks of 2 files.
    assert first.index.tolist() == [0, 1] and 2 <= n_read <= 6
    assert _our_shared_memory() == []  # leaving the loop early removed them
    # In-process reading is lazy: one chunk per step.
    log.unlink()
    st = stream_batches(paths, batch_size=2, workers=0, chunk_size=3, reader=fake_reader)
    it = iter(st)
    next(it), next(it)
    assert len(log.read_text().split()) == 6
    st.close()


_CTRL_C_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from test_stream import _paths, fake_reader
from jaxvac.io.stream import stream_batches
if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for k, b in enumerate(stream_batches(_paths(100000), batch_size=8, workers=2, chunk_size=4, reader=fake_reader)):
            if k == 0:
                os.killpg(os.getpgid(0), signal.SIGINT)  # Ctrl-C: the whole process group
    except KeyboardInterrupt:
        print("interrupted", flush=True)
"""


def test_ctrl_c_stops_the_stream_and_its_workers(tmp_path):
    script = tmp_path / "ctrl_c.py"
    script.write_text(_CTRL_C_SCRIPT.format(tests=os.path.dirname(__file__)))
    # A hang (the pool's shutdown waiting on an interrupted worker) would hit the timeout.
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          start_new_session=True)
    assert done.returncode == 0 and done.stdout == "interrupted\n", done.stderr


def test_arguments_are_checked_with_clear_messages():
    paths = _paths(4)
    with pytest.raises(ValueError, match=r"cannot be sent to worker processes .* use workers=0"):
        stream_batches(paths, workers=1, reader=lambda p: fake_spectrum(p))
    out = _collect(stream_batches(paths, batch_size=3, workers=0, reader=lambda p: fake_spectrum(p)))
    assert out["index"].tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match=r"shard must be a pair \(i, n\) of integers with 0 <= i < n, got \(2, 2\)"):
        stream_batches(paths, shard=(2, 2), reader=fake_reader)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        stream_batches(paths, batch_size=0, reader=fake_reader)
    with pytest.raises(TypeError, match="paths must be a sequence of file paths, got the single path '/fake'"):
        stream_batches("/fake", reader=fake_reader)
    with pytest.raises(TypeError, match="skip must hold paths .* got float: 1.5"):
        stream_batches(paths, skip=[1.5], reader=fake_reader)
    st = stream_batches(paths, workers=0, reader=fake_reader)
    list(st)
    with pytest.raises(RuntimeError, match="can be iterated once"):
        iter(st)


def test_progress_is_quiet_off_a_terminal(capfd):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert progress_wanted(None, Tty()) and progress_wanted(True, Tty())
    assert not progress_wanted(False, Tty()) and not progress_wanted(True, io.StringIO())
    list(stream_batches(_paths(5), batch_size=2, workers=0, progress=True, reader=fake_reader))
    assert capfd.readouterr().err == ""


def test_real_reader_on_real_and_corrupt_files(lamost_dir, tmp_path_factory):
    """The real reader in 2 workers: each real spectrum once and bit-identical to an in-process
    read, each corrupt file (truncated, zero bytes, random bytes, bad gzip) rejected."""
    root = tmp_path_factory.mktemp("mixed")
    real = resolve_inputs(lamost_dir)
    gz = next(p for p in real if p.endswith(".fits.gz"))
    plain = next(p for p in real if p.endswith(".fits"))
    (root / "corrupt").mkdir()
    (root / "corrupt" / "truncated.fits").write_bytes(open(plain, "rb").read()[:20000])
    (root / "corrupt" / "truncated.fits.gz").write_bytes(open(gz, "rb").read()[:15000])
    (root / "corrupt" / "zero.fits").write_bytes(b"")
    (root / "corrupt" / "random.fits").write_bytes(np.random.default_rng(1).bytes(30000))
    (root / "corrupt" / "notgzip.fits.gz").write_bytes(gzip.compress(b"SIMPLE  = junk")[:10] + b"\0" * 200)
    shutil.copy(gz, root / "copy.fits.gz")
    paths = real + resolve_inputs(root / "corrupt") + resolve_inputs(root / "copy.fits.gz")
    corrupt = {i for i, p in enumerate(paths) if "/corrupt/" in p}
    assert len(corrupt) == 5

    st = stream_batches(paths, batch_size=8, workers=2, chunk_size=3)
    out = _collect(st)
    want = [i for i in range(len(paths)) if i not in corrupt]
    assert out["index"].tolist() == want
    assert out["reject_index"] == sorted(corrupt)
    names = [os.path.basename(r.path) for r in out["rejects"]]
    assert names == ["notgzip.fits.gz", "random.fits", "truncated.fits", "truncated.fits.gz", "zero.fits"]
    assert all(r.reason for r in out["rejects"])
    manifest = {l.split("\t")[0]: l.split("\t") for l in (lamost_dir / "MANIFEST.tsv").read_text().splitlines()[1:]}
    for r, i in enumerate(want):
        s = read_spectrum(paths[i])
        assert np.array_equal(out["flux"][r], s.flux) and np.array_equal(out["ivar"][r], s.ivar)
        assert np.array_equal(out["good"][r], s.good) and out["meta"][r].tobytes() == s.meta.tobytes()
        row = manifest[os.path.basename(paths[i]) if i < len(real) else os.path.basename(gz)]
        assert out["meta"][r]["npix"] == int(row[4])
    s = st.summary
    assert (s.read, s.rejected, s.inputs) == (len(real) + 1, 5, len(paths))


def test_auto_chunk_size_known_answers():
    from jaxvac.io.stream import auto_chunk_size

    assert auto_chunk_size(11_200_000, 15) == 128  # a DR8 pass: the cap
    assert auto_chunk_size(100, 2) == 13  # ceil(100 / 8): four chunks per worker
    assert auto_chunk_size(10, 4) == 8 and auto_chunk_size(0, 0) == 8  # the floor
    st = stream_batches(_paths(1000), batch_size=8, workers=2, reader=fake_reader)
    assert st.chunk_size == 125 and st.n_chunks == 8
