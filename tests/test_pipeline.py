"""`jaxvac run` end to end on a small simulated survey: columns, truth, rejects, devices, processes, kills.

One tiny model is trained once for the module; every run below uses it. Runs that need other
device counts or processes are subprocesses of the real CLI (``python -m jaxvac.cli run``).
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import fitsio
import numpy as np
import pytest

import jaxvac
from jaxvac.run.catalog import CATALOG_DTYPE, COLUMNS, read_catalog
from jaxvac.config import load_config
from jaxvac.io.fitstable import fits_unit
from jaxvac.labels import LABEL_NAMES

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = """
base = "{base}"
[model]
hidden = [32, 16, 8]
vmp_hidden = [16, 8]
[train]
batch_size = 32
learning_rate = 0.003
max_epochs = 25
patience = 25
val_fraction = 0.2
workers = 0
cache_dir = "{cache}"
[curation]
apply_cuts = false
binary_removal = false
clip_sigma = 0.0
[errors]
source = "config"  # the paper's Table 2: test_labels_follow_truth checks Err_ against it
[run]
batch_size = 16
part_batches = 1
workers = 0
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from jaxvac.simulate import simulate_survey
    from jaxvac.train.job import train_from_config

    tmp = tmp_path_factory.mktemp("pipe")
    survey = tmp / "survey"
    simulate_survey(survey, 240, seed=11, workers=1, progress=False, corrupt_fraction=0.05, nonstar_fraction=0.05)
    cfg = tmp / "tiny.toml"
    cfg.write_text(TINY.format(base=CONFIGS / "dr8.toml", cache=tmp / "cache"))
    train_from_config(load_config(cfg), data_dir=str(survey), out_dir=str(tmp / "run"), progress=False)
    return {"tmp": tmp, "survey": survey, "config": cfg, "model": tmp / "run" / "checkpoint"}


def _cli(setup, out, *extra, env=None, devices=1, wait=True):
    cmd = [sys.executable, "-m", "jaxvac.cli", "run", "--model", str(setup["model"]),
           "--input", str(setup["survey"] / "spectra"), "--crossmatch", str(setup["survey"] / "crossmatch.fits"),
           "--out", str(out), "--config", str(setup["config"]), "--no-progress", *extra]
    e = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu",
             **(env or {}))
    if not wait:
        return subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    r = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def baseline(setup):
    out = setup["tmp"] / "base.fits"
    t0 = time.perf_counter()
    log = _cli(setup, out)
    wall = time.perf_counter() - t0
    rows, rej = read_catalog(out)
    return {"path": out, "rows": rows, "rejects": rej, "wall": wall, "log": log}


def _same(a, b, tol=0.0):
    """Equal tables; with tol, floats may differ by tol absolute + tol relative.

    Splitting a batch over devices changes the matmul kernels (4 rows per device instead of 16),
    so float32 sums over the 1974 inputs round differently: ~sqrt(1974) * 6e-8 = 3e-6 relative
    (measured up to 2e-6). 1e-6 is below that, so devices and processes are held to 1e-5.
    """
    assert a.dtype == b.dtype and len(a) == len(b)
    for name in a.dtype.names:
        if tol and a.dtype[name].kind == "f":
            np.testing.assert_allclose(a[name], b[name], rtol=tol, atol=tol, equal_nan=True, err_msg=name)
        else:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_columns_units_dtypes_and_counts(setup, baseline):
    rows = baseline["rows"]
    assert rows.dtype == CATALOG_DTYPE
    h = fitsio.read_header(baseline["path"], "CATALOG")
    units = {h[f"TTYPE{i}"]: h.get(f"TUNIT{i}", "").strip() for i in range(1, h["TFIELDS"] + 1)}
    comments = {h[f"TTYPE{i}"]: h.get(f"TCOMM{i}", "").strip() for i in range(1, h["TFIELDS"] + 1)}
    for name, _, unit, _ in COLUMNS:  # FITS units as TUNIT; 'dex' (no FITS form) as TCOMM 'unit: dex'
        if fits_unit(unit) or not unit:
            assert units[name] == unit, name
        else:
            assert units[name] == "" and comments[name] == f"unit: {unit}", name
    assert h["MODEL"] == str(setup["model"].resolve())
    assert h["CONFIG"] == "dr8.toml,tiny.toml" and h["JAXVAC"] == jaxvac.__version__ and h["CLASSES"] == "STAR"
    assert h["MINSNRG"] == 10.0 and h["NINPUTS"] == len(truth_all := fitsio.read(setup["survey"] / "truth.fits"))
    assert h["NROWS"] + h["NREJECT"] + h["NSKIPPED"] == h["NINPUTS"] and "PARTIAL" not in h  # every input accounted for
    assert not Path(f"{baseline['path']}.parts").exists()  # removed after the merge
    sha = [hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in (CONFIGS / "dr8.toml", setup["config"])]
    assert h["CONFSHA"] == ",".join(sha)
    truth = truth_all
    ok = ~truth["corrupt"] & (np.char.strip(truth["class"]) == "STAR") & (truth["snrg"] > 10)
    assert len(rows) == ok.sum()
    assert "rows out: %d" % ok.sum() in baseline["log"]
    np.testing.assert_array_equal(np.sort(rows["obsid"]), np.sort(truth["obsid"][ok]))


def test_rejects_hold_every_corrupt_input_and_nothing_else(setup, baseline):
    truth = fitsio.read(setup["survey"] / "truth.fits")
    bad = {str(setup["survey"] / p) for p in truth["path"][truth["corrupt"]]}
    assert len(bad) > 3
    got = {p.decode() for p in baseline["rejects"]["path"]}
    assert got == bad
    assert all(len(r.strip()) > 5 for r in baseline["rejects"]["reason"])


def test_labels_follow_truth_and_rows_match_direct_prediction(setup, baseline):
    """Rows equal an independent path (reader -> preprocess -> Predictor); labels track truth."""
    from jaxvac.train.checkpoint import load
    from jaxvac.io.lamost import read_spectrum
    from jaxvac.preprocess import preprocess

    rows = baseline["rows"]
    truth = fitsio.read(setup["survey"] / "truth.fits")
    t = {o: i for i, o in enumerate(truth["obsid"])}
    idx = np.array([t[o] for o in rows["obsid"]])
    pred = load(setup["model"])
    specs = [read_spectrum(setup["survey"] / p) for p in truth["path"][idx[:20]]]
    x, _, _ = preprocess(np.stack([s.flux for s in specs]), np.stack([s.ivar for s in specs]),
                         np.stack([s.good for s in specs]), np.array([s.meta["rv"] for s in specs], np.float32),
                         pred.x_mean, pred.x_std)
    y, _ = pred.predict(x)
    for k, name in enumerate(LABEL_NAMES):
        np.testing.assert_allclose(rows[name][:20], np.asarray(y)[:, k], rtol=1e-5, atol=1e-5, err_msg=name)
    # Known answer with a loose, written-down tolerance: a tiny net on ~200 spectra still tracks
    # Teff and [Fe/H] (correlation with the simulator's truth); the rv is the header's Z * c.
    hi = rows["snrg"] > 20
    assert np.corrcoef(rows["Teff_PASTEL"][hi], truth["Teff_PASTEL"][idx][hi])[0, 1] > 0.8
    assert np.corrcoef(rows["feh_PASTEL"][hi], truth["feh_PASTEL"][idx][hi])[0, 1] > 0.6
    np.testing.assert_allclose(rows["rv"][:20], [s.meta["z"] * 299792.458 for s in specs], rtol=1e-6)
    # Errors follow the Table 2 model at each row's snrg; distances use a_ks and the cross-match.
    s = rows["snrg"].astype(np.float64)
    teff_err = np.sqrt((100 * (0.21 + 42.827 / s**1.229)) ** 2 + 75**2)
    np.testing.assert_allclose(rows["Err_Teff_PASTEL"], teff_err, rtol=1e-5)
    xm = fitsio.read(setup["survey"] / "crossmatch.fits")
    j = {o: i for i, o in enumerate(xm["obsid"])}
    k = np.array([j[o] for o in rows["obsid"]])
    mu = xm["Ks"][k] - rows["a_ks"] - 0.306 * xm["EBV"][k]
    np.testing.assert_allclose(rows["dist_phot"], 10 ** (mu / 5 + 1) / 1000, rtol=1e-5)
    np.testing.assert_array_equal(rows["gaiaid"], xm["gaia_source_id"][k])
    assert rows["uqflag"].sum() == len(np.unique(rows["gaiaid"]))


@pytest.mark.parametrize("parallel", ["sharding", "pmap"])
def test_four_devices_give_the_single_device_catalogue(setup, baseline, parallel):
    out = setup["tmp"] / f"dev4-{parallel}.fits"
    log = _cli(setup, out, "--parallel", parallel, devices=4)
    assert f"4 x cpu ({parallel})" in log
    rows, rej = read_catalog(out)
    _same(rows, baseline["rows"], tol=1e-5)
    _same(rej, baseline["rejects"])


def test_two_processes_under_jax_distributed(setup, baseline):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = setup["tmp"] / "dist.fits"
    procs = [_cli(setup, out, "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i),
                  "--keep-parts", wait=False) for i in range(2)]
    logs = [p.communicate(timeout=600)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    assert "catalogue:" in logs[0] and "catalogue:" not in logs[1]
    parts = sorted(p.name[:9] for p in (setup["tmp"] / "dist.fits.parts").glob("part-*.npz"))
    assert set(parts) == {"part-p000", "part-p001"}  # each process wrote its own share
    rows, rej = read_catalog(out)
    _same(rows, baseline["rows"], tol=1e-5)
    _same(rej, baseline["rejects"])


def test_sigkill_at_random_moments_then_rerun_gives_the_same_catalogue(setup, baseline):
    out = setup["tmp"] / "killed.fits"
    rng = np.random.default_rng(5)
    parts_seen = []
    for k, frac in enumerate(rng.uniform(0.35, 0.9, 3)):
        p = _cli(setup, out, "--keep-parts", *(["--fresh"] if k == 0 else []), wait=False)
        time.sleep(frac * baseline["wall"])
        p.send_signal(signal.SIGKILL)
        p.wait()
        parts_seen.append(len(list((setup["tmp"] / "killed.fits.parts").glob("part-*.npz"))))
    assert not out.exists() or parts_seen[-1] > 0
    log = _cli(setup, out, "--keep-parts")  # kept parts: the rerun always resumes from them
    assert "already done in earlier parts" in log
    rows, rej = read_catalog(out)
    _same(rows, baseline["rows"])
    _same(rej, baseline["rejects"])


def test_shard_jobs_then_merge(setup, baseline):
    out = setup["tmp"] / "sharded.fits"
    for i in range(2):
        log = _cli(setup, out, "--shard", f"{i}/2")
        assert f"jaxvac merge {out}" in log
    assert not out.exists()
    r = subprocess.run([sys.executable, "-m", "jaxvac.cli", "merge", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows, rej = read_catalog(out)
    _same(rows, baseline["rows"])
    _same(rej, baseline["rejects"])
