"""Turn a chunk of planned observations into LAMOST files on disk (the worker's job).

Everything random here comes from the chunk's own generator (``SeedSequence(seed,
spawn_key=(chunk,))``), and chunks have a fixed size, so the bytes of every file depend on the
seed and the plan only, not on how many workers ran.

Per spectrum: model (stellar, galaxy, QSO or unknown) -> flux scale -> noise (``spectra.observe``)
-> bad pixels (ivar = 0 runs, andmask/ormask values 1 and 4 as in real files, an occasional bad
red end or dichroic region) -> the file's pixel range (COEFF0 offset, N) -> header -> bytes
-> optional deliberate corruption -> write to a temporary name, then rename (jaxvac.io.atomic).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxvac.constants import LOG_LAMBDA0, LOG_STEP, NPIX_GLOBAL, global_wavelength
from jaxvac.io.atomic import atomic_write
from jaxvac.io.fitsheader import BLOCK
from jaxvac.simulate import fitswrite, objects, spectra

CHUNK = 128  # spectra per task: fixed, so the random streams do not depend on the worker count
CORRUPT_KINDS = ("truncated", "garbage", "bad_gzip", "no_end", "empty", "bad_shape")


def designation(ra, dec) -> str:
    """IAU-style LAMOST designation 'LAMOST JHHMMSS.ss+DDMMSS.s' (truncated, not rounded)."""
    h = ra / 15.0
    hh = int(h)
    mm = int((h - hh) * 60)
    ss = (h - hh - mm / 60.0) * 3600.0
    ss = np.floor(ss * 100) / 100
    sign = "-" if dec < 0 else "+"
    d = abs(dec)
    dd = int(d)
    dm = int((d - dd) * 60)
    ds = np.floor((d - dd - dm / 60.0) * 3600.0 * 10) / 10
    return f"LAMOST J{hh:02d}{mm:02d}{ss:05.2f}{sign}{dd:02d}{dm:02d}{ds:04.1f}"


def subclass(teff, logg) -> str:
    """LAMOST-like spectral subclass from Teff (e.g. 'G2', 'K5', 'dM3', 'A0')."""
    edges = ((30000.0, 10000.0, "B"), (10000.0, 7300.0, "A"), (7300.0, 6000.0, "F"),
             (6000.0, 5300.0, "G"), (5300.0, 3900.0, "K"), (3900.0, 2300.0, "M"))
    for hi, lo, letter in edges:
        if teff >= lo:
            k = int(np.clip((hi - teff) / (hi - lo) * 10, 0, 9))
            if letter == "M" and logg > 4.0:
                return f"dM{k}"
            return f"{letter}{k}"
    return "M9"


def _bad_pixels(rng, npix):
    """ivar-zero, andmask and ormask arrays (bool, float, float) over the file's npix pixels."""
    bad = np.zeros(npix, bool)
    andm = np.zeros(npix, np.float32)
    orm = np.zeros(npix, np.float32)
    if rng.random() < 0.5:  # cosmic rays / bad columns: short runs
        for _ in range(rng.integers(1, 4)):
            start = int(rng.integers(0, npix))
            length = int(rng.integers(1, 31))
            sl = slice(start, min(npix, start + length))
            bad[sl] = True
            orm[sl] = 1.0
            if rng.random() < 0.5:
                andm[sl] = 1.0 if rng.random() < 0.8 else 4.0
    if rng.random() < 0.25:  # a dead red end
        bad[npix - int(rng.integers(5, 60)):] = True
    if rng.random() < 0.1:  # the dichroic join (5,700-5,950 A) went wrong
        lam = global_wavelength()
        j0 = int(np.searchsorted(lam, rng.uniform(5700.0, 5850.0)))
        bad[j0:j0 + int(rng.integers(10, 60))] = True
    if rng.random() < 0.2:  # a masked bit in one exposure only on a good pixel (ORMASK only)
        orm[int(rng.integers(0, npix))] = 4.0 if rng.random() < 0.5 else 1.0
    return bad, andm, orm


def _corrupt(kind: str, data: bytes, gz: bool, rng) -> bytes:
    if kind == "truncated":
        return data[: int(len(data) * rng.uniform(0.2, 0.9))]
    if kind == "garbage":
        return rng.integers(0, 256, len(data), dtype=np.uint8).tobytes()
    if kind == "bad_gzip":
        if not gz:  # a plain file gets its data scrambled behind a valid header
            return data[:BLOCK] + b"\x7f" * (len(data) - BLOCK)
        mid = len(data) // 2
        return data[:mid] + bytes((b ^ 0x5A) for b in data[mid: mid + 64]) + data[mid + 64:]
    if kind == "no_end":
        return data[:BLOCK]
    if kind == "empty":
        return b""
    if kind == "bad_shape":  # NAXIS2 = 4 rows in an image, or a column one element short in a table
        if b"XTENSION= 'BINTABLE'" in data:
            return data.replace(b"TFORM2  = '", b"TFORM2  = '1", 1)
        return data.replace(b"NAXIS2  =                    5", b"NAXIS2  =                    4", 1)
    raise ValueError(f"unknown corruption kind {kind!r}; expected one of {CORRUPT_KINDS}.")


def plan_values(plan) -> dict:
    """The header values shared by every file of a plan (and the constants)."""
    return {
        "AUTHOR": "LAMOST Pipeline", "ORIGIN": "NAOC-LAMOST", "DATE": str(plan["date"]),
        "TELESCOP": "LAMOST", "LONGITUD": 117.58, "LATITUDE": 40.39, "FOCUS": 19964, "CAMPRO": "NEWCAM",
        "CAMVER": "v2.0", "DATE-OBS": str(plan["date_obs"]), "DATE-BEG": str(plan["date_beg"]),
        "DATE-END": str(plan["date_end"]), "LMJD": int(plan["lmjd"]), "MJD": int(plan["lmjd"]) - 1,
        "LMJMLIST": str(plan["lmjmlist"]), "PLANID": str(plan["planid"]), "OFFSET": False, "OFFSET_V": 0.0,
        "TSOURCE": "JAXVAC", "TCOMMENT": "-", "TFROM": "simulated", "OBS_TYPE": "OBJ", "OBSCOMM": "Science",
        "RADECSYS": "FK5", "EQUINOX": 2000.0, "LAMPLIST": "lamphgcdne.dat", "SKYLIST": "skylines.dat",
        "NEXP": int(plan["nexp"]), "NEXP_B": int(plan["nexp"]), "NEXP_R": int(plan["nexp"]),
        "EXPT_B": float(plan["exptime"]), "EXPT_R": float(plan["exptime"]), "EXPTIME": float(plan["exptime"]),
        "BESTEXP": int(plan["bestexp"]), "SCAMEAN": float(plan["scamean"]), "SPRA": float(plan["ra"]),
        "SPDEC": float(plan["dec"]), "SLIT_MOD": "x2/3", "TEMPCCDB": -111.5, "TEMPCCDR": -196.2,
        "SEEING": float(plan["seeing"]), "MOONPHA": float(plan["moonpha"]), "TEMP_AIR": float(plan["temp_air"]),
        "TEMP_FP": float(plan["temp_air"]) + 6.0, "DEWPOINT": float(plan["temp_air"]) - 12.0, "DUST": "",
        "HUMIDITY": float(plan["humidity"]), "WINDD": float(plan["windd"]), "WINDS": float(plan["winds"]),
        "SKYLEVEL": "", "EXTRACT": "aperture", "SFLATTEN": True, "PCASKYSB": True, "NSKIES": 20,
        "SKYCHI2": 2.1, "SCHI2MIN": 1.5, "SCHI2MAX": 3.0, "NSTD": 4, "FSTAR": "43-109-114-231",
        "FCBY": "manual", "HELIO": True, "HELIO_RV": float(plan["helio_rv"]), "VACUUM": True, "NWORDER": 2,
        "WFITTYPE": "LOG-LINEAR", "COEFF1": LOG_STEP, "WAT0_001": "system=linear",
        "WAT1_001": "wtype=linear label=Wavelength units=Angstroms", "CD1_1": LOG_STEP, "CRPIX1": 1,
        "CTYPE1": "LINEAR", "DC-FLAG": 1,
    }


def header_values(rec, plan, shared: dict | None = None) -> dict:
    """Every header key of the record's layout, from a spectrum record and its plan record
    (``shared``: plan_values(plan), when the caller keeps it)."""
    layout = str(rec["layout"])
    offset = int(rec["offset"])
    coeff0 = round(LOG_LAMBDA0 + LOG_STEP * offset, 4)
    z, zerr = float(rec["z_hdr"]), float(rec["zerr_hdr"])
    if rec["sentinel"] or rec["cls"] == "Unknown":
        z, zerr = -9999, -9999  # int-typed, as failed-pipeline files carry them
    ra, dec, spid, fiber = float(rec["ra"]), float(rec["dec"]), int(rec["spid"]), int(rec["fiberid"])
    snr = rec["snr"].tolist()
    v = dict(plan_values(plan) if shared is None else shared)
    v.update(
        FILENAME=str(rec["filename"]), OBSID=int(rec["obsid"]), DATA_V=str(rec["data_v"]),
        RA=ra, DEC=dec, RA_OBS=ra, DEC_OBS=dec, DESIG=designation(ra, dec), FIBERID=fiber,
        CELL_ID=f"{'ABCDEFGHJ'[spid % 9]}{1000 + fiber * 7 % 9000}",
        X_VALUE=f"{float(rec['xfp']):.10f}", Y_VALUE=f"{float(rec['yfp']):.10f}",
        OBJNAME=str(int(rec["objname"])), OBJTYPE="Star" if rec["cls"] == "STAR" else "Other", SPID=spid,
        COEFF0=coeff0, CRVAL1=coeff0, VERSPIPE=str(rec["verspipe"]), CLASS=str(rec["cls"]),
        SUBCLASS=str(rec["subclass"]), Z=z, Z_ERR=zerr, ZFLAG="PIPELINE" if isinstance(z, int) else "LASP",
        SNRU=snr[0], SNRG=snr[1], SNRR=snr[2], SNRI=snr[3], SNRZ=snr[4],
    )
    mags = rec["mags"]  # apparent g, r, i (SDSS-like) of the input catalogue
    if layout == "image":
        v.update(EXTEN0="Flux, Inverse, Wavelength, Andmask, Ormask", N_EXTEN=1, EXTNAME="Flux",
                 FIBERTYP="Obj", FIBERMAS=0, MAGTYPE="gri", MAG1=float(mags[0]), MAG2=float(mags[1]),
                 MAG3=float(mags[2]), MAG4=99.0, MAG5=99.0, MAG6=99.0, MAG7=99.0)
    else:
        v.update(N_EXTEN=2, NORM=int(rec["norm"]), FIB_TYPE="Obj", FIB_MASK=0, MAG_PS_G=float(mags[0]),
                 MAG_PS_R=float(mags[1]), MAG_PS_I=float(mags[2]), MAG_PS_Z=-999.0, MAG_PS_Y=-999.0)
    return v


def models(recs, rng):
    """Noise-free models and continua (n, NPIX) for a chunk's records, any class."""
    n = len(recs)
    model = np.empty((n, NPIX_GLOBAL))
    cont = np.empty((n, NPIX_GLOBAL))
    cls = recs["cls"]
    star = np.nonzero(cls == "STAR")[0]
    if star.size:
        r = recs[star]
        m, c = spectra.stellar_model(r["teff"], r["logg"], r["feh"], r["afe"], r["cfe"], r["nfe"], r["rv"],
                                     r["ebv"], rng.normal(0.0, 0.03, (star.size, 3)),
                                     rng.normal(0.0, 0.02, star.size), rng.uniform(0.05, 0.5, star.size))
        model[star], cont[star] = m, c
    for name, fn in (("GALAXY", objects.galaxy), ("QSO", objects.qso)):
        sel = np.nonzero(cls == name)[0]
        if sel.size:
            m, c, _ = fn(recs["z_true"][sel], rng)
            model[sel], cont[sel] = m, c
    sel = np.nonzero(cls == "Unknown")[0]
    if sel.size:
        model[sel], cont[sel] = objects.unknown(sel.size, rng)
    return model, cont


def chunk_contents(task):
    """The files of one chunk without writing them: a list of (relative path, file bytes,
    header values, rows) where rows is the float32 (5 or 6, npix) array written.

    task = (out_dir, seed, chunk_index, recs, plans), as ``render_chunk`` takes it.
    """
    _, seed, chunk, recs, plans = task
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(chunk,)))
    model, cont = models(recs, rng)
    scale = recs["flux_scale"][:, None]
    flux, sigma = spectra.observe(model * scale, cont * scale, recs["snr"].astype(float),
                                  rng.uniform(0.5, 2.0, len(recs)), rng)
    out = []
    shared = {}
    for i, rec in enumerate(recs):
        off, npix = int(rec["offset"]), int(rec["npix"])
        sl = slice(off, off + npix)
        f = flux[i, sl].astype(np.float32)
        iv = (1.0 / sigma[i, sl] ** 2).astype(np.float32)
        bad, andm, orm = _bad_pixels(rng, npix)
        iv[bad] = 0.0
        if rng.random() < 0.5:
            f[bad] = 0.0
        wave = (10.0 ** (LOG_LAMBDA0 + LOG_STEP * (off + np.arange(npix)))).astype(np.float32)
        rows = [f, iv, wave, andm, orm]
        if rec["layout"] == "table":
            if rec["norm"]:
                rows.append((f / (cont[i, sl] * scale[i, 0])).astype(np.float32))
            else:
                rows.append(np.full(npix, -9999.0, np.float32))
        rows = np.stack(rows)
        p = int(rec["plan"])
        if p not in shared:
            shared[p] = plan_values(plans[p])
        values = header_values(rec, plans[p], shared[p])
        data = fitswrite.spectrum_bytes(str(rec["layout"]), values, rows)
        kind = str(rec["corrupt"])
        if kind in ("bad_shape", "no_end"):  # damage inside the FITS structure
            data = _corrupt(kind, data, False, rng)
        if rec["gz"]:
            data = fitswrite.gzip_bytes(data)
        if kind in ("truncated", "garbage", "bad_gzip", "empty"):  # damage to the file as stored
            data = _corrupt(kind, data, bool(rec["gz"]), rng)
        out.append((str(rec["path"]), data, values, rows))
    return out


def render_chunk(task) -> int:
    """Write the files of one chunk (temporary name, then rename). task = (out_dir, seed,
    chunk_index, recs, plans). Returns the number of files written."""
    out_dir = Path(task[0])
    files = chunk_contents(task)
    for rel, data, _, _ in files:
        atomic_write(out_dir / rel, data)
    return len(files)
