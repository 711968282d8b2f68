"""The packed store: same kernels' output, same catalogue, crash-safe packing, damage detected.

Inputs: the 25 real LAMOST files of ../shared/lamost (fixture ``lamost_dir``) plus one corrupt
file, listed twice over so that shards are many. Networks: random weights of small shapes
(equality tests do not need trained ones).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxvac.run.catalog import read_catalog

SHARD = 4  # files per shard in these tests


def _checkpoint(directory: Path) -> Path:
    from jaxvac.train import checkpoint
    from jaxvac.labels import LABEL_NAMES, LABELS, VMP
    from jaxvac.model import N_INPUT, N_VMP_INPUT, init_stack

    hidden, vmp_hidden = (16, 8), (8,)
    rng = np.random.default_rng(3)
    params = {"ensemble": init_stack(0, N_INPUT, hidden, len(LABEL_NAMES)), "vmp": init_stack(1, N_VMP_INPUT, vmp_hidden, 1),
              "y_mean": np.zeros(23, np.float32), "y_std": np.ones(23, np.float32),
              "vmp_mean": np.float32(-2.0), "vmp_std": np.float32(0.5)}
    x_mean = rng.uniform(0.8, 1.1, N_INPUT).astype(np.float32)
    x_std = rng.uniform(0.05, 0.2, N_INPUT).astype(np.float32)
    meta = {"labels": list(LABEL_NAMES), "units": [lab.unit for lab in LABELS],
            "training_sets": [lab.training_set for lab in LABELS], "ranges": [[lab.lo, lab.hi] for lab in LABELS],
            "vmp": {"name": VMP.name, "unit": VMP.unit, "range": [VMP.lo, VMP.hi], "train_feh_max": -1.0},
            "model": {"hidden": list(hidden), "vmp_hidden": list(vmp_hidden), "n_input": N_INPUT,
                      "n_vmp_input": N_VMP_INPUT, "activation": "relu"},
            "standardization": {"x_mean": x_mean, "x_std": x_std, "y_mean": params["y_mean"], "y_std": params["y_std"],
                                "vmp_mean": params["vmp_mean"], "vmp_std": params["vmp_std"]},
            "config": {}, "metrics": {"note": "random weights for tests"}}
    return checkpoint.save(directory, params, meta).parent


def _same(a: np.ndarray, b: np.ndarray) -> None:
    """Equal tables, bit for bit, field by field (NaN equal to NaN)."""
    assert a.dtype == b.dtype and len(a) == len(b)
    for name in a.dtype.names:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def setup(lamost_dir, tmp_path_factory):
    from jaxvac.io.inputs import resolve_inputs
    from jaxvac.io.pack import pack

    tmp = tmp_path_factory.mktemp("store")
    bad = tmp / "broken.fits.gz"
    bad.write_bytes(b"this is not a FITS file" * 10)
    real = resolve_inputs(lamost_dir)
    paths = real[:13] + [str(bad)] + real[13:] + real  # 51 inputs: 13 shards of 4 (the last of 3)
    listing = tmp / "inputs.txt"
    listing.write_text("".join(p + "\n" for p in paths))
    store = tmp / "packed"
    summary = pack(str(listing), store, shard_size=SHARD, workers=0, progress=False)
    return {"tmp": tmp, "list": listing, "paths": paths, "store": store, "summary": summary,
            "model": _checkpoint(tmp / "model"), "bad": str(bad)}


@pytest.fixture(scope="module")
def fits_run(setup):
    from jaxvac.run.loop import run_catalog

    out = setup["tmp"] / "fits.fits"
    run_catalog(setup["model"], str(setup["list"]), out, batch_size=8, workers=0, progress=False)
    return read_catalog(out)


def test_reader_zeroes_bad_pixels_so_ivar_gives_the_mask(lamost_dir):
    """The store's encoding relies on it: good == (ivar > 0), flux == ivar == 0 elsewhere."""
    from jaxvac.io.inputs import resolve_inputs
    from jaxvac.io.lamost import read_spectrum

    n_bad = 0
    for p in resolve_inputs(lamost_dir):
        s = read_spectrum(p)
        np.testing.assert_array_equal(s.good, s.ivar > 0, err_msg=p)
        assert not s.flux[~s.good].any() and not s.ivar[~s.good].any(), p
        n_bad += int((~s.good).sum())
    assert n_bad > 0  # the real files do have masked or uncovered pixels


def test_packed_layout_known_geometry():
    from jaxvac.preprocess import LAYOUT
    from jaxvac.kernels.layout import pack_ranges, packed_layout

    # S = ceil(log10(1 + 4000/c) / 1e-4) + 1 = ceil(57.56) + 1 = 59 pixels of rv room.
    assert pack_ranges(LAYOUT) == ((229 - 10 - 59, 1953 + 10 + 59), (3587 - 10 - 59, 3837 + 10 + 59))
    pl = packed_layout(LAYOUT)
    assert pl.npix_in == 1862 + 388 == 2250
    assert pl.windows == ((69, 69 + 1724), (1862 + 69, 1862 + 69 + 250))
    assert pl.npix_out == LAYOUT.npix_out == 1974


def test_pack_ranges_refuses_overlapping_or_off_grid_ranges_with_the_rule():
    from jaxvac.preprocess import LAYOUT
    from jaxvac.kernels.layout import pack_ranges

    close = LAYOUT._replace(windows=((229, 1953), (2000, 2100)))  # 1953 + 69 > 2000 - 69: the ranges overlap
    close.check()  # a valid layout on the global grid, just not packable
    with pytest.raises(ValueError, match=r"without overlap, got \(\(160, 2022\), \(1931, 2169\)\).*move the windows apart"):
        pack_ranges(close)
    with pytest.raises(ValueError, match=r"needs 88 pixels of room.*off the input grid \[0, 3909\); lower max_abs_rv"):
        LAYOUT._replace(max_abs_rv=6000.0).check()


def test_packed_layout_normalises_bit_for_bit_like_the_global_grid(lamost_dir):
    """Real spectra at rv 0, +-4000 km/s (the largest shift), NaN and 5000 (invalid), random."""
    from jaxvac.io.inputs import resolve_inputs
    from jaxvac.io.lamost import read_spectrum
    from jaxvac.preprocess import LAYOUT
    from jaxvac.io.pack import _columns
    from jaxvac.kernels.layout import pack_ranges, packed_layout
    from jaxvac.kernels.normalize import normalize

    spectra = [read_spectrum(p) for p in resolve_inputs(lamost_dir)]
    flux = np.stack([s.flux for s in spectra] * 2)
    ivar = np.stack([s.ivar for s in spectra] * 2)
    good = np.stack([s.good for s in spectra] * 2)
    rng = np.random.default_rng(5)
    rv = rng.uniform(-4000, 4000, len(flux)).astype(np.float32)
    rv[:8] = [0.0, 4000.0, -4000.0, 3999.9, -3999.9, np.nan, 5000.0, -12.5]
    cols = _columns(pack_ranges(LAYOUT))
    ref = normalize(flux, ivar, good, rv, layout=LAYOUT)
    got = normalize(flux[:, cols], ivar[:, cols], ivar[:, cols] > 0, rv, layout=packed_layout(LAYOUT))
    for name, a, b in zip(("norm", "norm_good", "norm_ivar", "status"), ref, got):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)
    assert np.asarray(ref[1]).mean() > 0.5  # mostly good pixels: the comparison is not vacuous


def test_pack_records_rejects_checksums_and_size(setup):
    import json

    s = setup["summary"]
    assert (s.inputs, s.shards, s.spectra, s.rejects) == (51, 13, 50, 1)
    man = json.loads((setup["store"] / "manifest.json").read_text())
    assert man["packed_pixels"] == 2250 and man["geometry"]["pixel_ranges"] == [[160, 2022], [3518, 3906]]
    assert (setup["store"] / "inputs.txt").read_text().split("\n")[:-1] == setup["paths"]
    rej = json.loads((setup["store"] / "shards" / "000003" / "rejects.json").read_text())
    assert len(rej) == 1 and rej[0][0] == 13 and "broken.fits.gz" not in rej[0][1]  # path is in inputs.txt
    assert 2250 * 8 < s.bytes_per_spectrum < 2250 * 8 + 1024


def test_run_on_store_equals_run_on_fits(setup, fits_run):
    from jaxvac.run.loop import run_catalog

    out = setup["tmp"] / "packed.fits"
    summary = run_catalog(setup["model"], str(setup["store"]), out, batch_size=8, progress=False)
    rows, rejects = read_catalog(out)
    ref_rows, ref_rejects = fits_run
    assert len(ref_rows) > 30 and len(ref_rejects) == 1 and summary.rows_out == len(ref_rows)
    _same(rows, ref_rows)  # every column, bit for bit
    _same(rejects, ref_rejects)


def test_store_read_in_shares_by_other_process_counts(setup, fits_run):
    """Two --shard jobs (as two processes would) over a store packed by one process, then merge."""
    from jaxvac.run.loop import merge, run_catalog

    out = setup["tmp"] / "shares.fits"
    for i in range(2):
        run_catalog(setup["model"], str(setup["store"]), out, batch_size=8, progress=False, shard=(i, 2))
    merge(out)
    rows, rejects = read_catalog(out)
    _same(rows, fits_run[0])
    _same(rejects, fits_run[1])


def test_corrupt_shard_is_detected(setup, fits_run):
    from jaxvac.run.loop import run_catalog
    from jaxvac.io.store import StoreError

    store = setup["tmp"] / "damaged"
    shutil.copytree(setup["store"], store)
    victim = store / "shards" / "000002" / "flux.npy"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one float: would be read silently without the checksum
    victim.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=str(store / "shards" / "000002")):
        run_catalog(setup["model"], str(store), setup["tmp"] / "stop.fits", batch_size=8, progress=False)
    out = setup["tmp"] / "skip.fits"
    summary = run_catalog(setup["model"], str(store), out, batch_size=8, progress=False, on_bad_shard="skip")
    rows, rejects = read_catalog(out)
    lost = set(setup["paths"][8:12])  # shard 2 holds inputs 8..11
    reasons = {r["path"].decode(): r["reason"].decode() for r in rejects}
    assert {p for p, r in reasons.items() if r.startswith("bad shard: checksum mismatch")} == lost
    assert summary.rejects["bad shard"] == 4
    # The rows are those of a FITS run without inputs 8..11, bit for bit.
    listing = setup["tmp"] / "without_shard2.txt"
    listing.write_text("".join(p + "\n" for k, p in enumerate(setup["paths"]) if not 8 <= k < 12))
    ref = setup["tmp"] / "without_shard2.fits"
    run_catalog(setup["model"], str(listing), ref, batch_size=8, workers=0, progress=False)
    ref_rows = read_catalog(ref)[0]
    assert len(ref_rows) < len(fits_run[0])
    _same(rows, ref_rows)


def _pack_cli(listing: Path, out: Path, workers: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "jaxvac.cli", "pack", "--input", str(listing), "--out", str(out),
           "--shard-size", str(SHARD), "--workers", str(workers), "--no-progress"]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def _visible_shards_are_complete(store: Path) -> int:
    """Every shard directory that can be seen has all its files, matching their checksums."""
    import json

    from jaxvac.io.store import SHARD_FILES, checksum

    shards = sorted(p for p in (store / "shards").glob("0*")) if (store / "shards").is_dir() else []
    for d in shards:
        sums = json.loads((d / "shard.json").read_text())["crc32"]
        assert {n: checksum(d / n) for n in SHARD_FILES} == sums, d
    return len(shards)


def test_pack_killed_at_random_moments_then_resumed_equals_uninterrupted(setup):
    """SIGKILL to the whole process group (pack + its reader worker) after a random number of
    shards, three times, then a full rerun: the same bytes as an uninterrupted pack."""
    listing = setup["tmp"] / "twice.txt"
    listing.write_text(setup["list"].read_text() * 2)  # 102 inputs: 26 shards
    ref = setup["tmp"] / "cli_ref"
    p = _pack_cli(listing, ref, workers=2)
    log = p.communicate(timeout=300)[0].decode()
    assert p.returncode == 0, log

    out = setup["tmp"] / "killed"
    rnd = random.Random(7)
    partial = []
    for _ in range(3):
        before = _visible_shards_are_complete(out) if out.exists() else 0
        target = rnd.randint(before + 1, 25) if before < 25 else 26
        p = _pack_cli(listing, out, workers=1)
        while p.poll() is None and (not (out / "shards").is_dir() or len(list((out / "shards").glob("0*"))) < target):
            time.sleep(0.005)
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate(timeout=60)
        partial.append(not (out / "manifest.json").exists())
        _visible_shards_are_complete(out)
    assert any(partial)  # at least one kill left an incomplete store behind
    p = _pack_cli(listing, out, workers=1)
    log = p.communicate(timeout=300)[0].decode()
    assert p.returncode == 0, log
    assert _tree_bytes(out) == _tree_bytes(ref)


def test_pack_is_the_same_for_any_reader_count(setup, tmp_path):
    """In-process (0), one and two reader processes: identical stores, byte for byte."""
    from jaxvac.io.pack import pack

    for workers in (1, 2):
        pack(str(setup["list"]), tmp_path / f"w{workers}", shard_size=SHARD, workers=workers, progress=False)
        assert _tree_bytes(tmp_path / f"w{workers}") == _tree_bytes(setup["store"])


def _run_cli(setup, out: Path, *extra: str, devices: int = 1) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "jaxvac.cli", "run", "--model", str(setup["model"]), "--input", str(setup["store"]),
           "--out", str(out), "--batch-size", "8", "--no-progress", *extra]
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _close(rows: np.ndarray, ref: np.ndarray) -> None:
    """Equal but for float32 rounding: a batch split over devices changes the matmul kernels
    (tests/test_pipeline.py measured up to 2e-6 relative), so floats are held to 1e-5."""
    assert rows.dtype == ref.dtype and len(rows) == len(ref)
    for name in ref.dtype.names:
        if ref.dtype[name].kind == "f":
            np.testing.assert_allclose(rows[name], ref[name], rtol=1e-5, atol=1e-5, equal_nan=True, err_msg=name)
        else:
            np.testing.assert_array_equal(rows[name], ref[name], err_msg=name)


def test_store_runs_with_pmap_on_two_devices(setup, fits_run):
    """The real CLI, each batch split over two host devices by jax.pmap (good = ivar > 0 inside)."""
    out = setup["tmp"] / "two_pmap.fits"
    p = _run_cli(setup, out, "--parallel", "pmap", devices=2)
    log = p.communicate(timeout=600)[0].decode()
    assert p.returncode == 0 and "2 x cpu (pmap)" in log, log
    rows, rejects = read_catalog(out)
    _close(rows, fits_run[0])
    _same(rejects, fits_run[1])


def test_store_split_across_two_jax_distributed_processes(setup, fits_run):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = setup["tmp"] / "dist.fits"
    procs = [_run_cli(setup, out, "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i),
                      "--keep-parts")
             for i in range(2)]
    logs = [p.communicate(timeout=600)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    parts = {p.name[:9] for p in (setup["tmp"] / "dist.fits.parts").glob("part-*.npz")}
    assert parts == {"part-p000", "part-p001"}  # each process read its own share of the shards
    rows, rejects = read_catalog(out)
    _close(rows, fits_run[0])
    _same(rejects, fits_run[1])


def test_checksum_is_the_standard_crc32(tmp_path):
    """CRC-32 (ISO-HDLC, as zlib): the catalogued check value of b"123456789" is 0xcbf43926."""
    from jaxvac.io.store import checksum

    (tmp_path / "a").write_bytes(b"123456789")
    (tmp_path / "e").write_bytes(b"")
    assert checksum(tmp_path / "a") == "cbf43926" and checksum(tmp_path / "e") == "00000000"


def test_store_of_another_format_is_refused_with_what_to_do(setup, tmp_path):
    """A store written by another store format (e.g. format 1, SHA-256 checksums) is not read."""
    import json
    import shutil

    from jaxvac.io.store import FORMAT, Store, StoreError

    old = tmp_path / "old"
    shutil.copytree(setup["store"], old)
    man = json.loads((old / "manifest.json").read_text())
    man["format"] = "jaxvac-store/1"
    (old / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(StoreError, match=r"format 'jaxvac-store/1'.*reads '%s'.*Re-pack" % FORMAT):
        Store(old)


def test_packed_stream_progress_counts_every_selected_input(setup, monkeypatch):
    """The bar of a packed run advances over every input of its share, rejects included."""
    import jaxvac.display.progress as progress
    from jaxvac.io.store import Store

    bars = []

    class Recording(progress.FileProgress):
        def __init__(self, total, *, enabled, description="reading", unit="files"):
            super().__init__(total, enabled=False, description=description, unit=unit)  # count, draw nothing
            self.wanted = enabled
            bars.append(self)

    monkeypatch.setattr(progress, "FileProgress", Recording)
    monkeypatch.setattr(progress, "progress_wanted", lambda wanted, stream=None: wanted is not False)
    for wanted in (True, False):
        with Store(setup["store"]).batches(batch_size=8, skip=[0, 1, 2], progress=wanted) as stream:
            n = sum(b.n_valid for b in stream)
        bar = bars[-1]
        assert (bar.wanted, bar.total, bar.done, bar.rejects, n) == (wanted, 48, 48, 1, 47)
