"""The spectra cache of jaxvac.train.dataset.load_spectra: built streaming, opened memory-mapped.

The reference is independent of the cache: each file read with read_spectrum and normalised with
jaxvac.preprocess.normalize in memory, in padded batches of the same size as the cache build.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from jaxvac.train import dataset

BATCH = 8


def _reference(paths: list[str]) -> dict[str, np.ndarray]:
    """norm, good, status, ok, obsid of ``paths`` computed in memory, file by file."""
    from jaxvac.io.lamost import read_spectrum
    from jaxvac.model import N_INPUT
    from jaxvac.preprocess import normalize

    n = len(paths)
    ref = {"norm": np.ones((n, N_INPUT), np.float32), "good": np.zeros((n, N_INPUT), bool),
           "status": np.full(n, -1, np.int32), "ok": np.zeros(n, bool), "obsid": np.full(n, -1, np.int64)}
    spectra = [(i, read_spectrum(p)) for i, p in enumerate(paths) if p]
    spectra = [(i, s) for i, s in spectra if not hasattr(s, "reason")]
    for k in range(0, len(spectra), BATCH):
        chunk = spectra[k:k + BATCH]
        pad = BATCH - len(chunk)
        flux, ivar, good = (np.concatenate([np.stack([getattr(s, f) for _, s in chunk]),
                                            np.zeros((pad, chunk[0][1].flux.shape[0]), getattr(chunk[0][1], f).dtype)])
                            for f in ("flux", "ivar", "good"))
        rv = np.concatenate([np.array([s.meta["rv"] for _, s in chunk], np.float32), np.full(pad, np.nan, np.float32)])
        nb, gb, _, sb = (np.asarray(a) for a in normalize(flux, ivar, good, rv))
        for j, (i, s) in enumerate(chunk):
            ref["norm"][i], ref["good"][i], ref["status"][i] = nb[j], gb[j], sb[j]
            ref["ok"][i], ref["obsid"][i] = True, s.meta["obsid"]
    return ref


@pytest.fixture(scope="module")
def files(lamost_dir, tmp_path_factory):
    """The real spectra plus an empty row, a missing file and three repeats, in a private folder."""
    from jaxvac.io.inputs import resolve_inputs

    d = tmp_path_factory.mktemp("spectra")
    real = []
    for p in resolve_inputs(lamost_dir):
        shutil.copyfile(p, d / os.path.basename(p))
        real.append(str(d / os.path.basename(p)))
    return real + ["", str(d / "absent.fits")] + real[:3]


@pytest.fixture(scope="module")
def reference(files):
    return _reference(files)


def _assert_equal(m: dataset.SpectraMatrix, ref: dict, paths: list[str]) -> None:
    assert m.paths.tolist() == paths
    for f, a in ref.items():
        np.testing.assert_array_equal(np.asarray(getattr(m, f)), a, err_msg=f)


def test_round_trip_equals_in_memory_and_is_memory_mapped(files, reference, tmp_path):
    built = dataset.load_spectra(files, tmp_path, workers=0, batch_size=BATCH, progress=False)
    _assert_equal(built, reference, files)
    assert built.reasons[len(files) - 5] == "no spectrum file for this catalogue row"
    assert "absent.fits" in built.reasons[len(files) - 4] and not built.ok[len(files) - 4]
    assert built.norm.shape == (len(files), 1974) and built.norm.dtype == np.float32 and built.good.dtype == bool
    (cache,) = tmp_path.iterdir()
    assert cache.is_dir() and cache.name.startswith("norm-")
    real = dataset._read_and_normalize
    dataset._read_and_normalize = lambda *a, **k: pytest.fail("the second load rebuilt the cache")
    try:
        again = dataset.load_spectra(files, tmp_path, workers=0, batch_size=BATCH, progress=False)
    finally:
        dataset._read_and_normalize = real
    _assert_equal(again, reference, files)
    for f in ("norm", "good", "status", "ok", "paths", "reasons", "snrg", "rv", "obsid"):
        a = getattr(again, f)
        assert isinstance(a, np.memmap) and not a.flags.writeable, f
        assert Path(a.filename).parent == cache, f
    np.testing.assert_array_equal(again.usable(), built.usable())


def test_changed_file_invalidates(files, reference, tmp_path):
    paths = [str(tmp_path / f"s{k}.fits.gz") for k in range(3)]
    for src, dst in zip(files[:3], paths):
        shutil.copyfile(src, dst)
    first = dataset.load_spectra(paths, tmp_path / "c", workers=0, batch_size=BATCH, progress=False)
    np.testing.assert_array_equal(np.asarray(first.norm), reference["norm"][:3])
    shutil.copyfile(files[2], paths[1])  # same name, other content (size and mtime change)
    os.utime(paths[1], ns=(os.stat(paths[1]).st_atime_ns, os.stat(paths[1]).st_mtime_ns + 10**9))
    second = dataset.load_spectra(paths, tmp_path / "c", workers=0, batch_size=BATCH, progress=False)
    np.testing.assert_array_equal(np.asarray(second.norm[1]), reference["norm"][2])
    assert len(list((tmp_path / "c").glob("norm-*"))) == 2


def test_preprocessing_code_is_in_the_key(tmp_path, monkeypatch):
    assert "jaxvac.constants" in dataset._PREPROCESS_MODULES  # the normalisation tunables live there
    mod = tmp_path / "fake_preprocess_mod.py"
    mod.write_text("WIDTH = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(dataset, "_PREPROCESS_MODULES", dataset._PREPROCESS_MODULES + ("fake_preprocess_mod",))
    before = dataset._cache_key(["a.fits"])
    mod.write_text("WIDTH = 2\n")
    assert dataset._cache_key(["a.fits"]) != before


def test_interrupted_build_leaves_no_trusted_cache(files, reference, tmp_path, monkeypatch):
    import jaxvac.preprocess

    real_normalize = jaxvac.preprocess.normalize
    calls = []

    def failing(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("interrupted after two batches")
        return real_normalize(*a, **k)

    monkeypatch.setattr(jaxvac.preprocess, "normalize", failing)
    with pytest.raises(KeyboardInterrupt):
        dataset.load_spectra(files, tmp_path, workers=0, batch_size=BATCH, progress=False)
    assert list(tmp_path.iterdir()) == []  # neither a cache nor its temporary directory
    # a killed build's leftover (its pid is gone) is swept, never read
    key = dataset._cache_key(files)
    dead = tmp_path / f".norm-{key}.tmp-999999999-0badc0de"
    dead.mkdir()
    (dead / "norm.npy").write_bytes(b"half")
    monkeypatch.setattr(jaxvac.preprocess, "normalize", real_normalize)
    m = dataset.load_spectra(files, tmp_path, workers=0, batch_size=BATCH, progress=False)
    _assert_equal(m, reference, files)
    assert [p.name for p in tmp_path.iterdir()] == [f"norm-{key}"]


def test_incomplete_cache_directory_is_rebuilt(files, reference, tmp_path):
    """A cache directory under the final name with a truncated file (a crash after the rename on a
    file system that lost the data) is not served: it is rebuilt."""
    m = dataset.load_spectra(files[:4], tmp_path, workers=0, batch_size=BATCH, progress=False)
    cache = Path(m.norm.filename).parent
    del m
    with open(cache / "norm.npy", "r+b") as f:
        f.truncate(200)
    assert dataset._open_cache(cache, files[:4]) is None
    again = dataset.load_spectra(files[:4], tmp_path, workers=0, batch_size=BATCH, progress=False)
    _assert_equal(again, {f: a[:4] for f, a in reference.items()}, files[:4])


def test_row_writer_fills_gaps_longer_than_its_filler(tmp_path):
    """Rows written in increasing runs with gaps (rejected files) wider than the 128-row filler."""
    rng = np.random.default_rng(0)
    n, npix = 700, 5
    rows = np.array([0, 1, 2, 300, 301, 699])
    values = rng.normal(size=(len(rows), npix)).astype(np.float32)
    w = dataset._RowWriter(tmp_path / "a.npy", n, npix, np.float32, 1.0)
    w.write(rows[:4], values[:4])
    w.write(rows[4:], values[4:])
    w.close()
    expected = np.ones((n, npix), np.float32)
    expected[rows] = values
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), expected)
