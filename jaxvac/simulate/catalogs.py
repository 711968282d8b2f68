"""Training, test, cross-match and truth catalogues of a synthetic survey (FITS tables).

Training catalogues are shaped like the three sets of SPEC.md: one row per star (its
highest-S/N usable spectrum: class STAR, not corrupt, Z not a sentinel), columns ``obsid``,
``path`` (relative to the survey directory), ``snrg``, then for each label of the set the label
and ``Err_<label>``; NaN where the reference does not give the label.

* PASTEL-like: any Teff (A/B stars included), metal-poor stars over-represented (weight x7 below
  [Fe/H] = -1, x17 below -2: PASTEL is a compilation of high-resolution studies that favour
  them), S/N >= 10.
* APOGEE-like: 3,800 < Teff < 6,500 K, [Fe/H] > -2.5, S/N >= 20, giants weighted x2; [C/Fe] and
  [N/Fe] missing for half of the hot dwarfs (Teff > 6,000 K, logg > 3.8) and 3 % of any label.
* LGMWAS-like: distance < 2 kpc, E(B-V) < 0.1, S/N >= 30, drawn with weight S/N; magnitudes
  missing for 10 % (APASS), 30 % (SDSS) and 5 % (W2) of the stars.

After the labels, the columns the paper's curation cuts use (configs/dr8.toml [curation]):
``snr_apogee``, ``Teff_APOGEE``, ``Err_Teff_APOGEE`` (APOGEE-like); ``dist``, ``Err_dist`` (kpc,
parallax-like), ``gb`` (deg), ``ebv`` (with e = 0.01 + 0.1 E(B-V)) (LGMWAS-like).

Label noise (REFERENCE_ERRORS) is typical of the reference catalogues and below the cuts the
paper applied (SPEC.md "Training-set cuts"): each star's Err is the reference error times a
log-normal(0, 0.2) factor, and the label is the truth plus Gaussian noise of that Err. Absolute
magnitudes carry a parallax term 2.17 sigma_parallax/parallax (2 % per kpc + 0.5 %) plus the
band's photometric and extinction-correction errors (R_band: :func:`ext_ratio`, configs/dr8.toml
[photometry.r_band]).

Written last, after every file above (so that they keep their bytes for a seed): the reference
catalogues behind the three training catalogues in their published layouts
(:mod:`jaxvac.simulate.references`: catalogs/ref_apogee_allstar.fits, ref_pastel.fits, ref_gaia.fits).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxvac.io.atomic import atomic_path
from jaxvac.labels import LABEL_NAMES, LABELS
from jaxvac.simulate.photometry import BANDS

PAPER_SIZES = {"pastel": 1281, "apogee": 8753, "lgmwas": 6000}  # training stars (SPEC.md table)
REFERENCE_ERRORS = {  # label noise of the reference catalogues (dex, K)
    "Teff_PASTEL": 80.0, "logg_PASTEL": 0.10, "feh_PASTEL": 0.07,
    "logg_APOGEE": 0.05, "feh_APOGEE": 0.02, "MH_APOGEE": 0.02, "AFE_APOGEE": 0.015,
    "CFE_APOGEE": 0.035, "NFE_APOGEE": 0.05,
}
PHOT_ERRORS = np.array([0.003, 0.005, 0.005, 0.025, 0.03, 0.025, 0.03, 0.03, 0.05, 0.05, 0.05, 0.03,
                        0.03, 0.03])  # mag, per band in BANDS order
TRUTH_LABEL = {  # label -> key of the star arrays
    "Teff_PASTEL": "teff", "logg_PASTEL": "logg", "feh_PASTEL": "feh", "logg_APOGEE": "logg",
    "feh_APOGEE": "feh", "MH_APOGEE": "mh", "AFE_APOGEE": "afe", "CFE_APOGEE": "cfe", "NFE_APOGEE": "nfe",
}
SETS = {s: tuple(l.name for l in LABELS if l.training_set == s.upper()) for s in PAPER_SIZES}


def ext_ratio() -> np.ndarray:
    """R_band = A_band / E(B-V) of the 14 bands in BANDS order: configs/dr8.toml [photometry.r_band],
    the numbers `jaxvac trainset --format gaia` uses to make absolute magnitudes."""
    from jaxvac.train.reference import PhotometryConfig

    return PhotometryConfig().r()


def true_labels(stars) -> dict:
    """All 23 labels and feh_VMP of every star: name -> (n_stars,) float64."""
    out = {name: np.asarray(stars[key], float) for name, key in TRUTH_LABEL.items()}
    for k, band in enumerate(BANDS):
        out[band] = stars["absmag"][:, k]
    out["feh_VMP"] = np.asarray(stars["feh"], float)
    return {name: out[name] for name in LABEL_NAMES + ("feh_VMP",)}


def write_table(path: Path, columns: dict, units: dict | None = None) -> None:
    """Write a FITS binary table (temporary name, then rename)."""
    from astropy.io import fits

    units = units or {}
    cols = []
    for name, v in columns.items():
        v = np.asarray(v)
        if v.dtype.kind == "U":
            width = max(1, int(max((len(x) for x in v), default=1)))
            cols.append(fits.Column(name=name, format=f"{width}A", array=v.astype(f"S{width}")))
        elif v.dtype.kind == "b":
            cols.append(fits.Column(name=name, format="L", array=v))
        elif v.dtype.kind in "iu":
            cols.append(fits.Column(name=name, format="K", array=v.astype(np.int64)))
        else:
            unit = units.get(name)
            unit = None if unit == "dex" else unit  # not a FITS unit: readers would warn
            cols.append(fits.Column(name=name, format="D" if v.dtype.itemsize == 8 else "E", array=v, unit=unit))
    hdu = fits.BinTableHDU.from_columns(cols)
    with atomic_path(path) as tmp:
        hdu.writeto(tmp)


def _best_spectra(stars, recs):
    """Per star: the record index of its highest-S/N usable spectrum, -1 if none."""
    usable = (recs["cls"] == "STAR") & (recs["corrupt"] == "") & ~recs["sentinel"]
    best = np.full(stars["teff"].size, -1)
    best_snr = np.full(stars["teff"].size, -np.inf)
    for i in np.nonzero(usable)[0]:
        s = recs["star"][i]
        if recs["snr"][i, 1] > best_snr[s]:
            best[s], best_snr[s] = i, recs["snr"][i, 1]
    return best, best_snr


def _pick(rng, pool, weight, size):
    idx = np.nonzero(pool)[0]
    size = min(size, idx.size)
    if size == 0:
        return idx[:0]
    p = weight[idx] / weight[idx].sum()
    return np.sort(rng.choice(idx, size, replace=False, p=p))


def selections(teff, feh, dist, ebv, snr) -> dict[str, np.ndarray]:
    """Which stars each training set draws from (bool arrays): the one definition of the pools.

    PASTEL-like: snr >= 10. APOGEE-like: snr >= 20, 3800 < Teff < 6500 K, [Fe/H] > -2.5.
    LGMWAS-like: snr >= 30, distance < 2 kpc, E(B-V) < 0.1. A fair test of a network uses
    held-out stars from its own set's pool, as the paper's test sets did.
    """
    return {"pastel": snr >= 10.0,
            "apogee": (snr >= 20.0) & (teff > 3800.0) & (teff < 6500.0) & (feh > -2.5),
            "lgmwas": (snr >= 30.0) & (dist < 2.0) & (ebv < 0.1)}


def write_all(out: Path, rng, stars, recs, train_scale: float) -> dict:
    """Write truth.fits, crossmatch.fits and catalogs/*.fits; return {file: rows}."""
    truth = true_labels(stars)
    sizes = {}
    sizes["truth.fits"] = _write_truth(out, stars, recs, truth)
    sizes["crossmatch.fits"] = _write_crossmatch(out, rng, stars, recs)
    best, snr = _best_spectra(stars, recs)
    avail = (best >= 0) & ~stars["test"]
    teff, logg, feh = stars["teff"], stars["logg"], stars["feh"]

    w = 1.0 + 6.0 * (feh < -1.0) + 10.0 * (feh < -2.0) + 3.0 * (teff > 7000.0) + 2.0 * (teff < 4000.0)
    sel = selections(teff, feh, stars["dist"], stars["ebv"], snr)
    pick = _pick(rng, avail & sel["pastel"], w, int(round(PAPER_SIZES["pastel"] * train_scale)))
    train, picks = {}, {}
    picks["pastel"] = pick
    train["pastel"] = _write_train(out / "catalogs/train_pastel.fits", rng, "pastel", pick, best, recs, stars, truth)
    pool = avail & sel["apogee"]
    pick = picks["apogee"] = _pick(rng, pool, 1.0 + (logg < 3.8), int(round(PAPER_SIZES["apogee"] * train_scale)))
    train["apogee"] = _write_train(out / "catalogs/train_apogee.fits", rng, "apogee", pick, best, recs, stars, truth)
    pool = avail & sel["lgmwas"]
    pick = picks["lgmwas"] = _pick(rng, pool, np.maximum(snr, 1.0), int(round(PAPER_SIZES["lgmwas"] * train_scale)))
    train["lgmwas"] = _write_train(out / "catalogs/train_lgmwas.fits", rng, "lgmwas", pick, best, recs, stars, truth)
    for name in ("pastel", "apogee", "lgmwas"):
        sizes[f"catalogs/train_{name}.fits"] = len(train[name]["obsid"])
    sizes["catalogs/test.fits"] = _write_test(out, stars, recs, truth, sel)
    # Last, so that every file above keeps its bytes: the same catalogues in published layouts.
    from jaxvac.simulate import references

    sizes.update(references.write_references(out, rng, stars, truth, train, picks, avail & sel["apogee"],
                                             avail & ~sel["lgmwas"]))
    return sizes


def _write_train(path, rng, name, pick, best, recs, stars, truth) -> dict:
    """Write one training catalogue; return its columns (the reference catalogues repeat them)."""
    r = recs[best[pick]]
    cols = {"obsid": r["obsid"], "path": r["path"], "snrg": r["snr"][:, 1].astype(np.float64)}
    n = pick.size
    if name == "lgmwas":
        d = stars["dist"][pick]
        fpar = 0.005 + 0.02 * d
        err = np.sqrt((2.17 * fpar)[:, None] ** 2 + PHOT_ERRORS[None, :] ** 2
                      + (ext_ratio()[None, :] * 0.01) ** 2)
        missing = np.zeros((n, len(BANDS)), bool)
        missing[:, 8:11] = (rng.random(n) < 0.10)[:, None]
        missing[:, 11:14] = (rng.random(n) < 0.30)[:, None]
        missing[:, 7] = rng.random(n) < 0.05
        for k, band in enumerate(BANDS):
            val = truth[band][pick] + err[:, k] * rng.standard_normal(n)
            cols[band] = np.where(missing[:, k], np.nan, val)
            cols[f"Err_{band}"] = np.where(missing[:, k], np.nan, err[:, k])
    else:
        hot_dwarf = (stars["teff"][pick] > 6000.0) & (stars["logg"][pick] > 3.8)
        for label in SETS[name]:
            e = REFERENCE_ERRORS[label] * rng.lognormal(0.0, 0.2, n)
            val = truth[label][pick] + e * rng.standard_normal(n)
            missing = np.zeros(n, bool)
            if name == "apogee":
                missing = rng.random(n) < 0.03
                if label in ("CFE_APOGEE", "NFE_APOGEE"):
                    missing |= hot_dwarf & (rng.random(n) < 0.5)
            cols[label] = np.where(missing, np.nan, val)
            cols[f"Err_{label}"] = np.where(missing, np.nan, e)
    # Columns the paper's curation cuts use (configs/dr8.toml [curation]); not labels.
    if name == "apogee":
        cols["snr_apogee"] = np.clip(rng.lognormal(np.log(200.0), 0.6, n), 20.0, 1500.0)
        e = 80.0 * rng.lognormal(0.0, 0.2, n)
        cols["Teff_APOGEE"] = stars["teff"][pick] + e * rng.standard_normal(n)
        cols["Err_Teff_APOGEE"] = e
    if name == "lgmwas":
        d = stars["dist"][pick]
        cols["dist"] = d * (1.0 + fpar * rng.standard_normal(n))
        cols["Err_dist"] = d * fpar
        cols["gb"] = stars["b"][pick]
        e_ebv = 0.01 + 0.1 * stars["ebv"][pick]
        cols["ebv"] = stars["ebv"][pick] + e_ebv * rng.standard_normal(n)
    units = ({l.name: l.unit for l in LABELS} | {f"Err_{l.name}": l.unit for l in LABELS}
             | {"Teff_APOGEE": "K", "Err_Teff_APOGEE": "K", "dist": "kpc", "Err_dist": "kpc", "gb": "deg", "ebv": "mag"})
    write_table(path, cols, units)
    return cols


def _write_test(out, stars, recs, truth, pools) -> int:
    """Held-out stars with every true label, and in_<set>: the star lies in that training set's
    pool (``selections``), so a label can be scored on its own set's kind of star."""
    sel = np.nonzero((recs["cls"] == "STAR") & (recs["corrupt"] == ""))[0]
    sel = sel[stars["test"][recs["star"][sel]]]
    s = recs["star"][sel]
    cols = {"obsid": recs["obsid"][sel], "path": recs["path"][sel], "star_id": s,
            "snrg": recs["snr"][sel, 1].astype(np.float64), "sentinel": recs["sentinel"][sel]}
    cols.update({f"in_{name}": pool[s] for name, pool in pools.items()})
    cols.update({name: v[s] for name, v in truth.items()})
    write_table(out / "catalogs/test.fits", cols, {l.name: l.unit for l in LABELS} | {"feh_VMP": "dex"})
    return sel.size


def _write_crossmatch(out, rng, stars, recs) -> int:
    n = stars["teff"].size
    from jaxvac.run.astrometry import AstrometryConfig

    r_ks = AstrometryConfig().r_ks  # the A_Ks / E(B-V) the catalogue run assumes (configs/dr8.toml [astrometry])
    ks_true = stars["absmag"][:, BANDS.index("a_ks")] + 5 * np.log10(100.0 * stars["dist"]) + r_ks * stars["ebv"]
    e_ks = np.clip(0.018 + 0.3 * 10 ** (0.4 * (ks_true - 15.3)), 0.018, 0.3)
    ks = ks_true + e_ks * rng.standard_normal(n)
    e_ebv = 0.01 + 0.1 * stars["ebv"]
    ebv = stars["ebv"] + e_ebv * rng.standard_normal(n)
    sel = np.nonzero(recs["cls"] == "STAR")[0]
    s = recs["star"][sel]
    write_table(out / "crossmatch.fits",
                {"obsid": recs["obsid"][sel], "gaia_source_id": stars["gaia_id"][s], "Ks": ks[s],
                 "e_Ks": e_ks[s], "EBV": ebv[s], "e_EBV": e_ebv[s]},
                {"Ks": "mag", "e_Ks": "mag", "EBV": "mag", "e_EBV": "mag"})
    return sel.size


def _write_truth(out, stars, recs, truth) -> int:
    from jaxvac.simulate.population import COMPONENTS, PHASES

    n = recs.size
    star = recs["star"]
    is_star = star >= 0
    s = np.where(is_star, star, 0)

    def per_star(v, fill=np.nan):
        v = np.asarray(v)
        return np.where(is_star, v[s], fill)

    cols = {"obsid": recs["obsid"], "path": recs["path"], "star_id": star, "class": recs["cls"],
            "layout": recs["layout"], "gz": recs["gz"], "is_repeat": recs["is_repeat"],
            "corrupt": recs["corrupt"] != "", "corrupt_kind": np.where(recs["corrupt"] == "", "-", recs["corrupt"]),
            "sentinel": recs["sentinel"], "test": per_star(stars["test"], False).astype(bool),
            "gaia_source_id": per_star(stars["gaia_id"], -1).astype(np.int64)}
    for k, b in enumerate("ugriz"):
        cols[f"snr{b}"] = recs["snr"][:, k].astype(np.float64)
    cols.update({"rv": per_star(stars["rv"]), "z": recs["z_true"], "ra": recs["ra"], "dec": recs["dec"],
                 "gl": per_star(stars["l"]), "gb": per_star(stars["b"]), "dist": per_star(stars["dist"]),
                 "EBV": per_star(stars["ebv"]), "mass": per_star(stars["mass"]), "G_app": per_star(stars["g_app"]),
                 "component": np.where(is_star, np.array(COMPONENTS)[stars["component"][s]], "-"),
                 "phase": np.where(is_star, np.array(PHASES)[stars["phase"][s]], "-"),
                 "npix": recs["npix"], "offset": recs["offset"]})
    cols.update({name: per_star(v) for name, v in truth.items()})
    units = {l.name: l.unit for l in LABELS} | {"feh_VMP": "dex", "rv": "km/s", "dist": "kpc", "ra": "deg",
                                               "dec": "deg", "gl": "deg", "gb": "deg", "EBV": "mag",
                                               "mass": "solMass", "G_app": "mag"}
    write_table(out / "truth.fits", cols, units)
    return n
