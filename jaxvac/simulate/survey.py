"""simulate_survey: a synthetic LAMOST LRS survey whose truth is known.

Layout of the output directory::

    DIR/spectra/<PLANID>/spec-LMJD-PLANID_spSS-FFF.fits[.gz] or <obsid>.fits[.gz]
    DIR/catalogs/train_pastel.fits, train_apogee.fits, train_lgmwas.fits, test.fits
    DIR/crossmatch.fits   obsid, gaia_source_id, Ks, e_Ks, EBV, e_EBV (star spectra)
    DIR/truth.fits        one row per spectrum: every true value (see TRUTH_COLUMNS)
    DIR/survey.json       seed, n, options, jaxvac version, counts

Everything drawn in the parent process comes from one generator seeded with ``seed``; the
files are rendered in fixed chunks (``render.CHUNK`` spectra), each with its own generator
``SeedSequence(seed, spawn_key=(chunk,))``, so a seed gives the same bytes whatever the number
of workers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from jaxvac.constants import C_KMS, NPIX_GLOBAL
from jaxvac.io.atomic import atomic_write
from jaxvac.io.lifetime import exit_with
from jaxvac.simulate import catalogs, photometry, population, render, spectra

RECORD_DTYPE = np.dtype([
    ("index", "i8"), ("obsid", "i8"), ("star", "i8"), ("cls", "U8"), ("layout", "U5"), ("gz", "?"),
    ("path", "U128"), ("filename", "U64"), ("plan", "i4"), ("spid", "i2"), ("fiberid", "i2"),
    ("xfp", "f8"), ("yfp", "f8"), ("objname", "i8"), ("ra", "f8"), ("dec", "f8"), ("snr", "f4", (5,)),
    ("teff", "f8"), ("logg", "f8"), ("feh", "f8"), ("afe", "f8"), ("cfe", "f8"), ("nfe", "f8"),
    ("rv", "f8"), ("z_true", "f8"), ("z_hdr", "f8"), ("zerr_hdr", "f8"), ("sentinel", "?"),
    ("corrupt", "U10"), ("npix", "i4"), ("offset", "i4"), ("ebv", "f8"), ("flux_scale", "f8"),
    ("subclass", "U8"), ("data_v", "U16"), ("verspipe", "U8"), ("norm", "i1"), ("mags", "f4", (3,)),
    ("is_repeat", "?"),
])
PLAN_DTYPE = np.dtype([
    ("planid", "U24"), ("lmjd", "i4"), ("ra", "f8"), ("dec", "f8"), ("date", "U24"), ("date_obs", "U24"),
    ("date_beg", "U24"), ("date_end", "U24"), ("lmjmlist", "U40"), ("nexp", "i2"), ("exptime", "f4"),
    ("bestexp", "i8"), ("scamean", "f4"), ("seeing", "f4"), ("moonpha", "f4"), ("temp_air", "f4"),
    ("humidity", "f4"), ("windd", "f4"), ("winds", "f4"), ("helio_rv", "f8"), ("seq", "i8"),
])
NONSTAR_CLASSES = (("GALAXY", 0.45), ("QSO", 0.25), ("Unknown", 0.30))
SNR_ETA = np.array([0.35, 1.0, 1.1, 1.1, 0.75])  # band throughput relative to g (u is poor)
AUTO_MIN_CHUNKS = 8  # workers=None uses processes from 8 chunks (1,024 spectra) up
FIBERS_PER_SPECTROGRAPH = 250
SPECTROGRAPHS = 16


@dataclasses.dataclass(frozen=True)
class SurveyOptions:
    """What a synthetic survey contains. Fractions are of all spectra unless said otherwise.

    repeat_fraction: share of star spectra that re-observe an already observed star (new plan,
      new S/N, new noise): the duplicates the error model is calibrated on.
    low_snr_fraction: share of star spectra that are repeats in poor conditions: a repeat that
      would reach snrg low_snr[1] is observed at a snrg drawn log-uniformly in low_snr instead, so
      the lowest snrg bin holds stars of every kind (at most repeat_fraction; default none: the
      bright training pools then reach snrg 10-20 only by chance, 60 magnitude-set spectra in
      40,000).
    low_snr: (lo, hi) snrg of those visits.
    nonstar_fraction: GALAXY, QSO and Unknown spectra (45/25/30 %).
    sentinel_fraction: star spectra whose Z and Z_ERR are the failed-pipeline -9999 (int).
    corrupt_fraction: files damaged on purpose (truncated, garbage, broken gzip, no END card,
      empty, wrong shape); they are listed in truth.fits with their kind.
    table_fraction: files in the DR9+ table layout (the rest: DR5-DR8 image layout).
    gzip_fraction: files written as .fits.gz.
    test_fraction: share of stars held out for test.fits (never in a training catalogue).
    train_scale: training-set sizes as a multiple of the paper's (1,281 PASTEL, 8,753 APOGEE,
      6,000 LGMWAS stars), capped by the stars that qualify.
    halo_fraction: mean share of halo stars (sets the number of very metal-poor stars).
    workers: processes rendering files (1 = in this process; None = automatic: one per CPU core
      when there are at least AUTO_MIN_CHUNKS chunks of render.CHUNK spectra, else in this
      process, so small surveys pay no process start-up). Output does not depend on it.
    """

    repeat_fraction: float = 0.10
    low_snr_fraction: float = 0.0
    low_snr: tuple[float, float] = (10.0, 20.0)
    nonstar_fraction: float = 0.03
    sentinel_fraction: float = 0.01
    corrupt_fraction: float = 0.0
    table_fraction: float = 0.3
    gzip_fraction: float = 0.5
    test_fraction: float = 0.2
    train_scale: float = 1.0
    halo_fraction: float = 0.10
    workers: int | None = None

    def __post_init__(self):
        for name in ("repeat_fraction", "nonstar_fraction", "sentinel_fraction", "corrupt_fraction",
                     "table_fraction", "gzip_fraction", "test_fraction", "halo_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v <= (0.9 if name in ("repeat_fraction", "nonstar_fraction") else 1.0):
                raise ValueError(f"{name} must lie in [0, {0.9 if name in ('repeat_fraction', 'nonstar_fraction') else 1}], "
                                 f"got {v}; it is a fraction.")
        if not self.low_snr_fraction <= self.repeat_fraction:
            raise ValueError(f"low_snr_fraction ({self.low_snr_fraction}) must not exceed repeat_fraction "
                             f"({self.repeat_fraction}): the poor-conditions visits are repeats; raise repeat_fraction.")
        try:
            lo, hi = (float(v) for v in self.low_snr)
        except (TypeError, ValueError):
            lo = hi = math.nan
        if not 0.0 < lo < hi:
            raise ValueError(f"low_snr must be (lo, hi) with 0 < lo < hi, got {self.low_snr!r}.")
        if not self.train_scale > 0:
            raise ValueError(f"train_scale must be > 0, got {self.train_scale}.")
        if self.workers is not None and int(self.workers) < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}.")


@dataclasses.dataclass(frozen=True)
class SurveyInfo:
    """What simulate_survey wrote. ``counts`` has n_spectra, n_stars, n_repeats, n_nonstar,
    n_corrupt, n_sentinel, n_test_stars; ``catalog_sizes`` rows per catalogue file."""

    out_dir: Path
    seed: int
    options: SurveyOptions
    counts: dict
    catalog_sizes: dict
    seconds: float

    @property
    def truth_path(self) -> Path:
        return self.out_dir / "truth.fits"


def simulate_survey(out_dir, n: int, seed: int = 0, *, progress: bool | None = None, **options) -> SurveyInfo:
    """Write a synthetic survey of ``n`` spectra to ``out_dir`` (created; must be empty or absent).

    options: the fields of SurveyOptions. progress: a rich bar on a terminal (None: when stderr
    is a terminal). Deterministic: the same (n, seed, options) give the same bytes.
    """
    t0 = time.perf_counter()
    opts = SurveyOptions(**options)
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be >= 1 spectrum, got {n}.")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"output directory {out} is not empty; give a new or empty directory "
                              f"(a survey is never written over another).")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    stars, recs, plans = plan_survey(rng, n, opts)
    (out / "catalogs").mkdir(parents=True, exist_ok=True)
    for pid in np.unique(plans["planid"]):
        (out / "spectra" / pid).mkdir(parents=True, exist_ok=True)
    _render_all(out, seed, recs, plans, opts.workers, progress)
    sizes = catalogs.write_all(out, rng, stars, recs, opts.train_scale)
    counts = dict(n_spectra=n, n_stars=int(stars["teff"].size), n_repeats=int(recs["is_repeat"].sum()),
                  n_nonstar=int((recs["cls"] != "STAR").sum()), n_corrupt=int((recs["corrupt"] != "").sum()),
                  n_sentinel=int(recs["sentinel"].sum()), n_test_stars=int(stars["test"].sum()))
    from jaxvac import __version__

    meta = dict(seed=int(seed), n=n, options=dataclasses.asdict(opts) | {"workers": None},
                jaxvac_version=__version__, counts=counts, catalog_sizes=sizes,
                note="workers is not recorded: the output does not depend on it")
    atomic_write(out / "survey.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return SurveyInfo(out, int(seed), opts, counts, sizes, time.perf_counter() - t0)


def _render_all(out, seed, recs, plans, workers, progress):
    from jaxvac.display.progress import FileProgress, progress_wanted

    tasks = chunk_tasks(out, seed, recs, plans)
    if workers is None:
        workers = (os.cpu_count() or 1) if len(tasks) >= AUTO_MIN_CHUNKS else 1
    with FileProgress(len(recs), enabled=progress_wanted(progress), description="simulating") as bar:
        if workers <= 1 or len(tasks) <= 1:
            for t in tasks:
                bar.advance(render.render_chunk(t), 0)
        else:
            # fork is fastest (workers inherit the template bank) but unsafe once JAX has started
            # its threads in this process (tests, notebooks): then spawn.
            method = "spawn" if "jax" in sys.modules else "fork"
            # Workers exit with this process, however it ends (jaxvac.io.lifetime).
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context(method),
                                     initializer=exit_with, initargs=(os.getpid(),)) as ex:
                for done in ex.map(render.render_chunk, tasks):
                    bar.advance(done, 0)


def chunk_tasks(out, seed, recs, plans) -> list:
    """The rendering tasks: fixed chunks of render.CHUNK records, each (out, seed, k, recs, plans)."""
    return [(str(out), int(seed), k, recs[s: s + render.CHUNK], plans)
            for k, s in enumerate(range(0, len(recs), render.CHUNK))]


# ----------------------------------------------------------------------------------------------
def plan_survey(rng, n, opts):
    """Draw everything but the pixels: (stars dict, records (n,) RECORD_DTYPE, plans PLAN_DTYPE)."""
    n_non = min(int(round(n * opts.nonstar_fraction)), n - 1)  # at least one star
    n_star_spec = n - n_non
    n_rep = min(int(round(n_star_spec * opts.repeat_fraction)), n_star_spec - 1)  # repeats need a first visit
    n_stars = n_star_spec - n_rep
    per_field = int(np.clip(math.ceil(n / 8), 16, 2500))
    n_fields = max(2, math.ceil((n_stars + n_non) / per_field))
    fra, fdec = population.field_centres(rng, n_fields)

    # Stars.
    sfield = rng.integers(0, n_fields, n_stars)
    ra, dec = population.positions_in_fields(rng, fra[sfield], fdec[sfield])
    gl, gb = population.icrs_to_galactic(ra, dec)
    stars = population.draw_stars(rng, gb, opts.halo_fraction)
    absmag = photometry.absolute_magnitudes(stars["teff"], stars["logg"], stars["feh"], stars["mass"])
    r_band = catalogs.ext_ratio()  # A_band / E(B-V) in photometry.BANDS order (configs/dr8.toml [photometry.r_band])
    g_app, dist, ebv = population.place_stars(rng, gb, absmag[:, 0], r_g=r_band[0])
    sigma_v = np.array([25.0, 50.0, 120.0])[stars["component"]]
    rv = np.clip(rng.normal(0.0, 1.0, n_stars) * sigma_v, -600.0, 600.0)
    stars.update(ra=ra, dec=dec, l=gl, b=gb, absmag=absmag, g_app=g_app, dist=dist, ebv=ebv, rv=rv,
                 field=sfield, gaia_id=_unique_ids(rng, n_stars, 10**15, 7 * 10**18),
                 test=rng.random(n_stars) < opts.test_fraction)

    # Observations: first visits, repeats (later visits of the star's field), non-stars.
    rep_star = rng.integers(0, n_stars, n_rep) if n_rep else np.zeros(0, np.int64)
    visit = np.ones(n_stars + n_rep, np.int64)
    if n_rep:
        order = np.argsort(rep_star, kind="stable")
        counts = np.zeros(n_stars, np.int64)
        for j in order:
            counts[rep_star[j]] += 1
            visit[n_stars + j] = 1 + counts[rep_star[j]]
    obs_star = np.concatenate([np.arange(n_stars), rep_star])
    obs_field = np.concatenate([sfield[obs_star], rng.integers(0, n_fields, n_non)])
    obs_visit = np.concatenate([visit, np.ones(n_non, np.int64)])
    obs_star = np.concatenate([obs_star, np.full(n_non, -1)])
    keys = obs_field * 1000 + obs_visit
    plan_keys, plan_of = np.unique(keys, return_inverse=True)
    plans = _plans(rng, plan_keys, fra, fdec)
    # Order the files by plan, then by a random fibre order.
    order = np.lexsort((rng.random(n), plan_of))
    obs_star, plan_of, obs_visit = obs_star[order], plan_of[order], obs_visit[order]
    recs = np.zeros(n, RECORD_DTYPE)
    recs["index"] = np.arange(n)
    recs["star"] = obs_star
    recs["plan"] = plan_of
    recs["is_repeat"] = obs_visit > 1
    slot = np.zeros(n, np.int64)
    for p in range(len(plans)):
        sel = np.nonzero(plan_of == p)[0]
        if sel.size > SPECTROGRAPHS * FIBERS_PER_SPECTROGRAPH:
            raise RuntimeError(f"plan {p} got {sel.size} spectra, more than the "
                               f"{SPECTROGRAPHS * FIBERS_PER_SPECTROGRAPH} fibres of LAMOST.")
        slot[sel] = rng.permutation(SPECTROGRAPHS * FIBERS_PER_SPECTROGRAPH)[: sel.size]
    recs["spid"] = slot // FIBERS_PER_SPECTROGRAPH + 1
    recs["fiberid"] = slot % FIBERS_PER_SPECTROGRAPH + 1
    recs["obsid"] = plans["seq"][plan_of] * 100000 + recs["spid"] * 1000 + recs["fiberid"]
    recs["xfp"] = rng.uniform(-900.0, 900.0, n)
    recs["yfp"] = rng.uniform(-900.0, 900.0, n)
    recs["objname"] = rng.integers(10**14, 10**18, n)

    is_star = obs_star >= 0
    s = np.where(is_star, obs_star, 0)
    recs["cls"] = np.where(is_star, "STAR", "")
    non = np.nonzero(~is_star)[0]
    names = [c for c, _ in NONSTAR_CLASSES]
    probs = np.array([p for _, p in NONSTAR_CLASSES])
    recs["cls"][non] = np.array(names)[rng.choice(len(names), non.size, p=probs)]
    # Non-star positions: random in their plan's field.
    nra, ndec = population.positions_in_fields(rng, plans["ra"][plan_of[non]], plans["dec"][plan_of[non]])
    recs["ra"] = np.where(is_star, stars["ra"][s], 0.0)
    recs["dec"] = np.where(is_star, stars["dec"][s], 0.0)
    recs["ra"][non], recs["dec"][non] = nra, ndec
    for key in ("teff", "logg", "feh", "afe", "cfe", "nfe", "rv", "ebv"):
        recs[key] = np.where(is_star, stars[key][s], np.nan)
    recs["ebv"][non] = 0.03
    z_non = np.where(recs["cls"] == "GALAXY", rng.uniform(0.02, 0.3, n), rng.uniform(0.3, 3.5, n))
    recs["z_true"] = np.where(is_star, recs["rv"] / C_KMS, np.where(recs["cls"] == "Unknown", np.nan, z_non))
    # Apparent magnitude -> S/N (repeats see other conditions) -> flux scale.
    g = np.where(is_star, stars["g_app"][s], rng.uniform(15.5, 18.0, n))
    log_snr = 2.7 - 0.33 * (g - 12.0) + rng.normal(0.0, 0.15, n) + rng.normal(0.0, 0.25, n) * recs["is_repeat"]
    snrg = np.maximum(1.0 / (10.0**-log_snr + 1.0 / 1200.0), 1.0)  # a 1/1200 floor (flat fielding)
    if opts.low_snr_fraction > 0:  # drawn only when asked: a survey without them keeps its bytes
        snrg = _poor_conditions(rng, snrg, recs["is_repeat"], int(round(n_star_spec * opts.low_snr_fraction)), opts.low_snr)
    snrg = np.where(recs["cls"] == "Unknown", rng.uniform(0.5, 4.0, n), snrg)
    teff_c = np.where(is_star, np.nan_to_num(recs["teff"], nan=4500.0), 4500.0)
    recs["snr"] = _band_snr(snrg, teff_c, recs["ebv"])
    recs["flux_scale"] = 600.0 * 10 ** (-0.4 * (g - 15.0)) * rng.lognormal(0.0, 0.1, n)
    err = np.clip(3.0 + 150.0 / snrg, 3.0, 60.0)  # km/s
    v_true = np.where(is_star, recs["rv"], C_KMS * np.nan_to_num(recs["z_true"]))
    recs["z_hdr"] = (v_true + err * rng.standard_normal(n)) / C_KMS
    recs["zerr_hdr"] = err / C_KMS
    recs["sentinel"] = is_star & (rng.random(n) < opts.sentinel_fraction)
    corrupt = rng.random(n) < opts.corrupt_fraction
    recs["corrupt"] = np.where(corrupt, np.array(render.CORRUPT_KINDS)[rng.integers(0, len(render.CORRUPT_KINDS), n)], "")
    recs["subclass"] = [render.subclass(t, lg) if c == "STAR" else "Non"
                        for t, lg, c in zip(recs["teff"], recs["logg"], recs["cls"])]
    sdss = absmag[:, 11:14][s] + 5 * np.log10(100.0 * stars["dist"][s])[:, None] + np.outer(stars["ebv"][s], r_band[11:14])
    recs["mags"] = np.where(is_star[:, None], np.round(sdss, 2), np.round(g[:, None] + [0.4, 0.0, -0.2], 2))
    # File format: layout, release, compression, pixel range, name.
    table = rng.random(n) < opts.table_fraction
    recs["layout"] = np.where(table, "table", "image")
    u = rng.random(n)
    recs["data_v"] = np.where(table, np.where(u < 0.5, "LAMOST DR9", np.where(u < 0.8, "LAMOST DR10", "LAMOST DR13 Q1")),
                              np.where(u < 0.8, "LAMOST DR8", np.where(u < 0.9, "LAMOST DR7", "LAMOST DR5")))
    recs["verspipe"] = np.where(table | (u < 0.8), "v2.9.8", "v2.9.7")
    recs["gz"] = rng.random(n) < opts.gzip_fraction
    recs["norm"] = (snrg >= 6.0) & (recs["cls"] == "STAR")
    offset, npix = _pixel_ranges(rng, n)
    recs["offset"], recs["npix"] = offset, npix
    by_obsid = table & (rng.random(n) < 0.5)
    for i in range(n):
        p = plans[plan_of[i]]
        fname = f"spec-{p['lmjd']}-{p['planid']}_sp{recs['spid'][i]:02d}-{recs['fiberid'][i]:03d}.fits"
        recs["filename"][i] = fname
        name = f"{recs['obsid'][i]}.fits" if by_obsid[i] else fname
        recs["path"][i] = f"spectra/{p['planid']}/{name}{'.gz' if recs['gz'][i] else ''}"
    return stars, recs, plans


def _poor_conditions(rng, snrg, is_repeat, k, snr_range):
    """snrg with k repeats (of those at snrg >= hi; fewer if fewer are) moved to a snrg drawn
    log-uniformly in snr_range = (lo, hi): visits in poor conditions."""
    lo, hi = (float(v) for v in snr_range)
    cand = np.flatnonzero(is_repeat & (snrg >= hi))
    pick = rng.choice(cand, min(int(k), cand.size), replace=False)
    out = snrg.copy()
    out[pick] = np.exp(rng.uniform(np.log(lo), np.log(hi), pick.size))
    return out


def _unique_ids(rng, n, lo, hi):
    ids = rng.integers(lo, hi, n)
    while np.unique(ids).size < n:  # astronomically rare; redraw duplicates deterministically
        _, first = np.unique(ids, return_index=True)
        dup = np.setdiff1d(np.arange(n), first)
        ids[dup] = rng.integers(lo, hi, dup.size)
    return ids


def _band_snr(snrg, teff, ebv):
    """Header S/N in u, g, r, i, z: photon-noise scaling from the continuum colour (Planck x
    reddening at the band centres) times a band throughput (SNR_ETA)."""
    lam = np.array(list(spectra.BAND_CENTRES.values()))
    ext = spectra.ccm_extinction(lam)
    f = spectra.planck_lambda(lam[None, :], teff[:, None]) * 10 ** (-0.4 * np.nan_to_num(ebv)[:, None] * ext[None, :])
    ratio = f / f[:, 1:2]
    return np.round(snrg[:, None] * np.sqrt(ratio) * SNR_ETA[None, :], 2).astype(np.float32)


def _pixel_ranges(rng, n):
    """(offset, npix) of each file on the global grid, mimicking the real spread (3748-3909)."""
    u = rng.random(n)
    offset = np.where(u < 0.08, rng.choice([158, 160], n), 0)
    tail = np.where(rng.random(n) < 0.5, 0, rng.integers(1, 11, n))
    tail = np.where(u > 0.97, 89, tail)  # the 3820-pixel files
    npix = NPIX_GLOBAL - offset - tail
    return offset, npix


def _plans(rng, plan_keys, fra, fdec):
    m = plan_keys.size
    plans = np.zeros(m, PLAN_DTYPE)
    field, visit = plan_keys // 1000, plan_keys % 1000
    plans["ra"], plans["dec"] = fra[field], fdec[field]
    base_mjd = rng.integers(55900, 60300, m)
    plans["lmjd"] = base_mjd + 30 * (visit - 1)
    plans["seq"] = np.sort(rng.choice(np.arange(1, 12000), m, replace=False))
    prefix = np.array(["HD", "EG", "KP", "LN", "GAC", "HIP"])[rng.integers(0, 6, m)]
    depth = np.array(["B", "M", "F", "V"])[rng.integers(0, 4, m)]
    for i in range(m):
        ra_h = plans["ra"][i] / 15.0
        hh, mm = int(ra_h), int((ra_h % 1) * 60)
        ss = int(((ra_h * 60) % 1) * 60)
        d = abs(plans["dec"][i])
        sign = "N" if plans["dec"][i] >= 0 else "S"
        plans["planid"][i] = (f"{prefix[i]}{hh:02d}{mm:02d}{ss:02d}{sign}{int(d):02d}{int((d % 1) * 60):02d}"
                              f"{int(((d * 60) % 1) * 60):02d}{depth[i]}{visit[i]:02d}")[:24]
        mjd = int(plans["lmjd"][i])
        ymd = np.datetime64("1858-11-17") + np.timedelta64(mjd - 1, "D")
        hh0 = int(rng.integers(12, 20))
        plans["date_obs"][i] = f"{ymd}T{hh0:02d}:{int(rng.integers(0, 60)):02d}:00"
        plans["date_beg"][i] = f"{ymd}T{hh0 + 7:02d}:00:00.0"
        plans["date_end"][i] = f"{ymd}T{hh0 + 8:02d}:30:00.0"
        plans["date"][i] = "2021-03-05T05:17:28"
        lmjm = mjd * 1440 + 120 * hh0
        plans["lmjmlist"][i] = f"{lmjm}-{lmjm + 31}-{lmjm + 62}"
        plans["bestexp"][i] = lmjm
    if np.unique(plans["planid"]).size < m:  # two fields too close: make the names unique
        plans["planid"] = [f"{p[:20]}{i:04d}" for i, p in enumerate(plans["planid"])]
    plans["nexp"] = rng.integers(2, 4, m)
    plans["exptime"] = np.where(rng.random(m) < 0.5, 1800.0, 5400.0)
    plans["scamean"] = np.round(rng.uniform(2.0, 8.0, m), 2)
    plans["seeing"] = np.round(rng.uniform(2.0, 4.5, m), 2)
    plans["moonpha"] = np.round(rng.uniform(0.0, 29.5, m), 2)
    plans["temp_air"] = np.round(rng.uniform(-10.0, 25.0, m), 2)
    plans["humidity"] = np.round(rng.uniform(0.1, 0.8, m), 2)
    plans["windd"] = np.round(rng.uniform(0.0, 360.0, m), 2)
    plans["winds"] = np.round(rng.uniform(0.0, 8.0, m), 2)
    plans["helio_rv"] = np.round(rng.uniform(-30.0, 30.0, m), 5)
    return plans
