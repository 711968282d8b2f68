"""The simulated reference catalogues in their published layouts (what ``jaxvac trainset`` reads).

The ready-made training catalogues (catalogs/train_*.fits, :mod:`jaxvac.simulate.catalogs`) are
what a user would get after matching reference catalogues to LAMOST. These are the reference
catalogues themselves, with real column names and flag bits and no obsid or path, so that
``jaxvac index`` + ``jaxvac trainset`` can rebuild the ready-made ones from them:

* ``catalogs/ref_apogee_allstar.fits`` (APOGEE DR17 allStar columns): every APOGEE-like training
  star (RA, DEC, SNR = snr_apogee, TEFF = Teff_APOGEE, LOGG, FE_H, M_H, ALPHA_M, C_FE, N_FE and
  their _ERR = the training catalogue's values, float32 as in allStar; NaN where missing),
  with warning bits only (ASPCAPFLAG SN_WARN and STAR_WARN below SNR 70, STARFLAG
  BRIGHT_NEIGHBOR for 5 %); plus rows trainset must drop: lower-S/N duplicates of 5 % of the
  stars (EXTRATARG bit 4, DUPLICATE), 8 % more stars from the APOGEE pool with a bad bit
  (ASPCAPFLAG 23 STAR_BAD, or STARFLAG 0, 3, 18 or 22), and 10 % stars LAMOST never observed
  (Dec -60..-15 deg). Rows shuffled; APOGEE_ID = 2M + the 2MASS-style position.
* ``catalogs/ref_pastel.fits`` (VizieR B/pastel columns ID, RAJ2000, DEJ2000, Teff, e_Teff,
  logg, e_logg, [Fe/H], e_[Fe/H], BibCode): each PASTEL-like training star once (70 %) or as
  three determinations v - d, v, v + d of every label with the same error (30 %), so that the
  median of a star's entries is the training value; plus 10 % stars LAMOST never observed.
  Values are float64 (PASTEL itself gives Teff in whole K and logg, [Fe/H] to 0.01 dex).
* ``catalogs/ref_gaia.fits`` (Gaia DR3 gaia_source + 2MASS, AllWISE, APASS DR9 and SDSS
  columns, with ebv and ebv_error): every LGMWAS-like training star with parallax =
  1 / dist (mas, dist in kpc from the training catalogue), parallax_error = f parallax (f the
  star's fractional distance error), ebv = the catalogue's, ebv_error = 0.01 mag, and apparent
  magnitudes m = M + 5 log10(dist / 10 pc) + R_band ebv (float32; R_band from configs/dr8.toml
  [photometry.r_band]) with M the training catalogue's absolute magnitude and the band's
  photometric error (Gaia's as phot_*_mean_flux_over_error); plus stars whose
  parallax / parallax_error is 1.5-4.5 (below [trainset] min_parallax_over_error = 5, so
  trainset drops them) and 10 % stars LAMOST never observed.

So trainset gives the ready-made catalogues' stars and spectra back, with labels equal to
float32 precision (APOGEE), exactly (PASTEL) and to float32 precision (Gaia magnitudes); the
errors of the Gaia magnitudes agree to 0.1 % (the ready-made ones use 2.17 for 5 / ln 10), and
Err_dist = f dist differs from the ready-made f d_true by the factor dist / d_true.

What they do not model: APOGEE's own calibrations, parameter flags (PARAMFLAG) and vector
columns (X_H, FPARAM ...); PASTEL's heterogeneous methods and the scatter between its sources
(here three symmetric values); Gaia's zero-point offsets, photometric flags and the 2MASS/WISE
cross-match itself (every star has its own photometry, no blends); E(B-V) from a dust map (here
the training catalogue's value).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from jaxvac.simulate.photometry import BANDS

APOGEE_LABELS = {  # allStar column -> training-catalogue column
    "SNR": "snr_apogee", "TEFF": "Teff_APOGEE", "TEFF_ERR": "Err_Teff_APOGEE",
    "LOGG": "logg_APOGEE", "LOGG_ERR": "Err_logg_APOGEE", "M_H": "MH_APOGEE", "M_H_ERR": "Err_MH_APOGEE",
    "ALPHA_M": "AFE_APOGEE", "ALPHA_M_ERR": "Err_AFE_APOGEE", "FE_H": "feh_APOGEE", "FE_H_ERR": "Err_feh_APOGEE",
    "C_FE": "CFE_APOGEE", "C_FE_ERR": "Err_CFE_APOGEE", "N_FE": "NFE_APOGEE", "N_FE_ERR": "Err_NFE_APOGEE",
}
APOGEE_BAD = (("ASPCAPFLAG", 23), ("STARFLAG", 0), ("STARFLAG", 3), ("STARFLAG", 18), ("STARFLAG", 22))
PASTEL_LABELS = {"Teff": "Teff_PASTEL", "logg": "logg_PASTEL", "[Fe/H]": "feh_PASTEL"}
GAIA_MAGS = ("phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag", "j_m", "h_m", "ks_m", "w1mpro", "w2mpro",
             "bmag", "vmag", "r_mag", "psfMag_g", "psfMag_r", "psfMag_i")  # BANDS order
GAIA_ERRS = ("phot_g_mean_flux_over_error", "phot_bp_mean_flux_over_error", "phot_rp_mean_flux_over_error",
             "j_msigcom", "h_msigcom", "ks_msigcom", "w1mpro_error", "w2mpro_error", "e_bmag", "e_vmag", "e_r_mag",
             "psfMagErr_g", "psfMagErr_r", "psfMagErr_i")  # Gaia: flux_over_error = 2.5 / ln 10 / sigma_m
EBV_ERROR = 0.01  # mag, the E(B-V) error the ready-made LGMWAS magnitude errors assume
FRACTIONS = {"duplicate": 0.05, "flagged": 0.08, "unobserved": 0.10, "pastel_triples": 0.30, "far": 0.15}


def write_references(out, rng, stars, truth, train: dict, picks: dict, apogee_pool, far_pool) -> dict:
    """Write the three reference catalogues; return {file: rows}.

    train: the ready-made catalogues' columns per set; picks: their star indices; apogee_pool:
    stars that could be APOGEE-like training stars (bad-flag extras come from the unpicked ones);
    far_pool: stars with a spectrum outside the LGMWAS selection (low-parallax extras).
    """
    return {"catalogs/ref_apogee_allstar.fits": _apogee(out, rng, stars, truth, train["apogee"], picks["apogee"],
                                                        apogee_pool),
            "catalogs/ref_pastel.fits": _pastel(out, rng, stars, train["pastel"], picks["pastel"]),
            "catalogs/ref_gaia.fits": _gaia(out, rng, stars, truth, train["lgmwas"], picks["lgmwas"], far_pool)}


def _unobserved_positions(rng, n):
    """Positions LAMOST never observed here: Dec -60..-15 deg (the simulated fields lie above -12.5)."""
    s0, s1 = math.sin(math.radians(-60.0)), math.sin(math.radians(-15.0))
    return rng.uniform(0.0, 360.0, n), np.degrees(np.arcsin(rng.uniform(s0, s1, n)))


def _apogee_id(ra, dec) -> np.ndarray:
    """2MASS-style names: 2Mhhmmssss+ddmmsss."""
    out = []
    for a, d in zip(np.asarray(ra, float), np.asarray(dec, float)):
        h = a / 15.0
        hh, mm = int(h), int((h % 1) * 60)
        ss = ((h * 60) % 1) * 60
        dd = abs(d)
        out.append(f"2M{hh:02d}{mm:02d}{int(ss * 100):04d}{'-' if d < 0 else '+'}{int(dd):02d}"
                   f"{int((dd % 1) * 60):02d}{int(((dd * 60) % 1) * 600):03d}")
    return np.array(out)


def _apogee(out, rng, stars, truth, t, pick, pool) -> int:
    from jaxvac.simulate.catalogs import write_table

    n = len(pick)
    parts = []
    main = {c: np.asarray(t[k], np.float64) for c, k in APOGEE_LABELS.items()}
    snr = main["SNR"]
    warn = snr < 70.0
    main.update(RA=stars["ra"][pick], DEC=stars["dec"][pick],
                ASPCAPFLAG=np.where(warn, (1 << 11) | (1 << 7), 0),
                STARFLAG=np.where(rng.random(n) < 0.05, 1 << 2, 0), EXTRATARG=np.zeros(n, np.int64))
    parts.append(main)
    dup = np.nonzero(rng.random(n) < FRACTIONS["duplicate"])[0]
    d = {c: v[dup].copy() for c, v in main.items()}
    for c in APOGEE_LABELS:
        if not c.endswith("_ERR") and c != "SNR":
            d[c] = d[c] + d[f"{c}_ERR"] * rng.standard_normal(len(dup))
    d["SNR"] = d["SNR"] * rng.uniform(0.3, 0.9, len(dup))
    d["EXTRATARG"] = np.full(len(dup), 1 << 4)
    parts.append(d)
    others = np.setdiff1d(np.nonzero(pool)[0], pick)
    bad = np.sort(rng.choice(others, min(int(round(FRACTIONS["flagged"] * n)), others.size), replace=False)) \
        if others.size else others
    m = len(bad)
    b = {"RA": stars["ra"][bad], "DEC": stars["dec"][bad], "SNR": rng.lognormal(math.log(150.0), 0.6, m),
         "TEFF": stars["teff"][bad] + 80.0 * rng.standard_normal(m), "TEFF_ERR": np.full(m, 80.0)}
    for c, k in APOGEE_LABELS.items():
        if c not in b and not c.endswith("_ERR"):
            b[c] = truth[k][bad] + 0.05 * rng.standard_normal(m)
            b[f"{c}_ERR"] = np.full(m, 0.05)
    which = rng.integers(0, len(APOGEE_BAD), m)
    b["ASPCAPFLAG"] = np.array([1 << APOGEE_BAD[w][1] if APOGEE_BAD[w][0] == "ASPCAPFLAG" else 0 for w in which], np.int64)
    b["STARFLAG"] = np.array([1 << APOGEE_BAD[w][1] if APOGEE_BAD[w][0] == "STARFLAG" else 0 for w in which], np.int64)
    b["EXTRATARG"] = np.zeros(m, np.int64)
    parts.append(b)
    k = int(round(FRACTIONS["unobserved"] * n))
    src = rng.integers(0, max(n, 1), k) if n else np.zeros(0, np.int64)
    u = {c: v[src].copy() for c, v in main.items()}
    u["RA"], u["DEC"] = _unobserved_positions(rng, k)
    u["ASPCAPFLAG"], u["STARFLAG"], u["EXTRATARG"] = (np.zeros(k, np.int64) for _ in range(3))
    parts.append(u)
    cols = {c: np.concatenate([p[c] for p in parts]) for c in main}
    order = rng.permutation(len(cols["RA"]))
    cols = {c: v[order] for c, v in cols.items()}
    table = {"APOGEE_ID": _apogee_id(cols["RA"], cols["DEC"]), "RA": cols["RA"], "DEC": cols["DEC"]}
    table.update({c: cols[c].astype(np.float32) for c in APOGEE_LABELS})
    table.update({c: cols[c].astype(np.int64) for c in ("ASPCAPFLAG", "STARFLAG", "EXTRATARG")})
    write_table(out / "catalogs/ref_apogee_allstar.fits", table,
                {"RA": "deg", "DEC": "deg", "TEFF": "K", "TEFF_ERR": "K"})
    return len(order)


def _pastel(out, rng, stars, t, pick) -> int:
    from astropy.io import fits

    from jaxvac.simulate.catalogs import write_table

    n = len(pick)
    star = np.asarray(pick, np.int64)
    ra, dec = stars["ra"][pick], stars["dec"][pick]
    vals = {c: np.asarray(t[k], np.float64) for c, k in PASTEL_LABELS.items()}
    errs = {c: np.asarray(t[f"Err_{k}"], np.float64) for c, k in PASTEL_LABELS.items()}
    k = int(round(FRACTIONS["unobserved"] * n))
    src = rng.integers(0, max(n, 1), k) if n else np.zeros(0, np.int64)
    ura, udec = _unobserved_positions(rng, k)
    star = np.concatenate([star, stars["teff"].size + np.arange(k)])  # ids beyond the survey's stars
    ra, dec = np.concatenate([ra, ura]), np.concatenate([dec, udec])
    vals = {c: np.concatenate([v, v[src]]) for c, v in vals.items()}
    errs = {c: np.concatenate([v, v[src]]) for c, v in errs.items()}
    triple = rng.random(len(star)) < FRACTIONS["pastel_triples"]
    rows = {"ID": [], "RAJ2000": [], "DEJ2000": [], **{c: [] for c in PASTEL_LABELS},
            **{f"e_{c}": [] for c in PASTEL_LABELS}, "BibCode": []}
    offsets = {c: np.abs(rng.standard_normal(len(star))) * errs[c] for c in PASTEL_LABELS}
    bib = rng.integers(0, 10**4, (len(star), 3))
    for i in np.argsort(star, kind="stable"):
        shifts = (-1.0, 0.0, 1.0) if triple[i] else (0.0,)
        for j, s in enumerate(shifts):
            rows["ID"].append(f"SIM {star[i]:07d}")
            rows["RAJ2000"].append(ra[i])
            rows["DEJ2000"].append(dec[i])
            for c in PASTEL_LABELS:
                rows[c].append(vals[c][i] + s * offsets[c][i])
                rows[f"e_{c}"].append(errs[c][i])
            rows["BibCode"].append(f"{1990 + bib[i, j] % 30}sim....{bib[i, j]:04d}S")
    table = {c: np.array(v) if c in ("ID", "BibCode") else np.array(v, np.float64) for c, v in rows.items()}
    if not len(table["ID"]):
        table["ID"], table["BibCode"] = np.array([], "U1"), np.array([], "U1")
    with warnings.catch_warnings():  # astropy advises against '[Fe/H]', VizieR's own column name
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        write_table(out / "catalogs/ref_pastel.fits", table,
                    {"RAJ2000": "deg", "DEJ2000": "deg", "Teff": "K", "e_Teff": "K"})
    return len(table["ID"])


def _gaia(out, rng, stars, truth, t, pick, far_pool) -> int:
    from jaxvac.simulate.catalogs import PHOT_ERRORS, ext_ratio, write_table

    r = ext_ratio()
    n = len(pick)
    dist = np.asarray(t["dist"], np.float64)
    frac = np.asarray(t["Err_dist"], np.float64) / stars["dist"][pick]
    ebv = np.asarray(t["ebv"], np.float64)
    absmag = np.stack([np.asarray(t[b], np.float64) for b in BANDS], axis=1) if n else np.zeros((0, len(BANDS)))
    main = {"star": np.asarray(pick, np.int64), "ra": stars["ra"][pick], "dec": stars["dec"][pick],
            "l": stars["l"][pick], "b": stars["b"][pick], "parallax": 1.0 / dist if n else dist,
            "frac": frac, "ebv": ebv, "absmag": absmag, "dist": dist}
    far = np.nonzero(far_pool)[0]
    far = np.sort(rng.choice(far, min(int(round(FRACTIONS["far"] * n)), far.size), replace=False)) if far.size else far
    m = len(far)
    f = {"star": far, "ra": stars["ra"][far], "dec": stars["dec"][far], "l": stars["l"][far], "b": stars["b"][far],
         "parallax": 1.0 / stars["dist"][far], "frac": 1.0 / rng.uniform(1.5, 4.5, m), "ebv": stars["ebv"][far],
         "absmag": np.stack([truth[b][far] for b in BANDS], axis=1) if m else np.zeros((0, len(BANDS))),
         "dist": stars["dist"][far]}
    k = int(round(FRACTIONS["unobserved"] * n))
    src = rng.integers(0, max(n, 1), k) if n else np.zeros(0, np.int64)
    ura, udec = _unobserved_positions(rng, k)
    from jaxvac.run.astrometry import galactic

    ul, ub = galactic(ura, udec)
    u = {"star": -1 - np.arange(k), "ra": ura, "dec": udec, "l": ul, "b": ub, "parallax": main["parallax"][src],
         "frac": main["frac"][src], "ebv": main["ebv"][src], "absmag": main["absmag"][src], "dist": main["dist"][src]}
    cols = {c: np.concatenate([p[c] for p in (main, f, u)]) for c in main}
    order = rng.permutation(len(cols["ra"]))
    cols = {c: v[order] for c, v in cols.items()}
    n_all = len(order)
    gaia_id = np.where(cols["star"] >= 0, stars["gaia_id"][np.maximum(cols["star"], 0)],
                       7 * 10**18 + rng.integers(0, 10**15, n_all))
    plx = cols["parallax"]
    table = {"source_id": gaia_id.astype(np.int64), "ra": cols["ra"], "dec": cols["dec"], "l": cols["l"],
             "b": cols["b"], "parallax": plx, "parallax_error": cols["frac"] * plx,
             "parallax_over_error": (1.0 / cols["frac"]).astype(np.float32)}
    app = cols["absmag"] + 5.0 * np.log10(100.0 * cols["dist"])[:, None] + r[None, :] * cols["ebv"][:, None]
    for k_band, (mag, err) in enumerate(zip(GAIA_MAGS, GAIA_ERRS)):
        v = app[:, k_band]
        e = PHOT_ERRORS[k_band] if k_band >= 3 else 2.5 / math.log(10.0) / PHOT_ERRORS[k_band]
        table[mag] = v.astype(np.float32)
        table[err] = np.where(np.isfinite(v), e, np.nan).astype(np.float32)
    table["ebv"] = cols["ebv"]
    table["ebv_error"] = np.full(n_all, EBV_ERROR, np.float32)
    units = {"ra": "deg", "dec": "deg", "l": "deg", "b": "deg", "parallax": "mas", "parallax_error": "mas",
             "ebv": "mag", "ebv_error": "mag", **{c: "mag" for c in GAIA_MAGS},
             **{c: "mag" for c in GAIA_ERRS if "flux_over_error" not in c}}
    write_table(out / "catalogs/ref_gaia.fits", table, units)
    return n_all
