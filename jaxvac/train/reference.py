"""Reference catalogues in their published layouts -> jaxvac's label columns (``jaxvac trainset``).

:func:`convert` reads the columns a format needs from a reference catalogue (FITS, CSV or
Parquet, through :func:`jaxvac.io.tables.read_table`, only those columns), drops the rows the
format says are bad, groups repeated entries of a star and converts to jaxvac's label names
(:mod:`jaxvac.labels`); :mod:`jaxvac.train.trainset` then finds the spectra and writes the
training catalogue.

Formats (``fmt``; column names matched without regard to case, the first name found is used):

* ``apogee``, APOGEE DR17 allStar: RA, DEC, APOGEE_ID; LOGG, FE_H, M_H, ALPHA_M, C_FE, N_FE and
  their ``_ERR`` -> logg_APOGEE, feh_APOGEE, MH_APOGEE, AFE_APOGEE (the label is [alpha/M]),
  CFE_APOGEE, NFE_APOGEE and Err_*; SNR -> snr_apogee; TEFF, TEFF_ERR -> Teff_APOGEE,
  Err_Teff_APOGEE. Rows with a bad bit set are dropped (``[trainset]``: ASPCAPFLAG STAR_BAD;
  STARFLAG BAD_PIXELS, VERY_BRIGHT_NEIGHBOR, BAD_RV_COMBINATION, RV_FAIL; EXTRATARG DUPLICATE);
  a flag column the file lacks is not used (said in the notes).
* ``pastel``, PASTEL (Soubiran et al. 2016, VizieR B/pastel): RAJ2000, DEJ2000 (degrees, or
  sexagesimal text), ID; Teff, logg, [Fe/H] (also spelt __Fe_H_ as astroquery does) and their
  ``e_`` errors -> Teff_PASTEL, logg_PASTEL, feh_PASTEL. PASTEL lists one row per determination;
  a star (same ID, or same position when there is no ID) becomes one row: each label is the
  median of the star's determinations that give it, its error the median of their errors
  (NaN when none is given).
* ``gaia``, Gaia DR3 with 2MASS, AllWISE, APASS and SDSS magnitudes (a table the user joins, e.g.
  through the Gaia archive's best-neighbour tables, plus an E(B-V) column from a dust map): ra,
  dec, source_id, parallax, parallax_error (mas), b (Galactic latitude; computed from ra, dec
  when absent), ebv and ebv_error (mag), and the apparent magnitudes with their errors (module
  constant GAIA_BANDS lists the names looked for; Gaia's from phot_*_mean_flux_over_error:
  sigma = 2.5 / ln 10 / (flux_over_error)). Absolute magnitudes, for rows with
  parallax / parallax_error > ``min_parallax_over_error`` (others are dropped and counted):

      d = 1 / parallax (kpc, parallax in mas)
      M = m - 5 log10(d / 10 pc) - R_band E(B-V)          (R_band: configs/dr8.toml [photometry.r_band])
      Err_M = sqrt(sigma_m**2 + (5 / ln 10 * sigma_parallax / parallax)**2 + (R_band sigma_E(B-V))**2)

  and the curation columns dist = d, Err_dist = d sigma_parallax / parallax (kpc), gb (deg),
  ebv. A band the table lacks gives a NaN label (said in the notes).
* ``generic``: nothing built in; every column comes from ``maps``.

``maps`` ({DEST: SRC}, the command's ``--map SRC=DEST``) names the source column of a slot of
the format (for ``gaia`` the slots of a band are its apparent magnitude ``a_gg`` and its error
``Err_a_gg``) or adds any of the generic destinations: a label, ``Err_<label>``, a curation
column, or a key (obsid, path, ra, dec, id), copied as is. Values <= -9990 (the -9999 of older
releases) are missing, as NaN is.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np

from jaxvac.config import ConfigError, recipe_defaults
from jaxvac.errors import JaxvacError
from jaxvac.labels import LABEL_NAMES, LABELS

__all__ = ["FORMATS", "Converted", "PhotometryConfig", "ReferenceTable", "TrainsetConfig", "TrainsetError", "convert",
           "group_median"]

FORMATS = ("apogee", "pastel", "gaia", "generic")
CURATION_COLUMNS = ("snr_apogee", "Teff_APOGEE", "Err_Teff_APOGEE", "dist", "Err_dist", "gb", "ebv")
KEY_COLUMNS = ("obsid", "path", "ra", "dec", "id")


def generic_dests(label_names) -> tuple[str, ...]:
    """The names ``--map SRC=DEST`` may give: keys, label columns and their Err_, curation columns."""
    return (*KEY_COLUMNS, *(x for l in label_names for x in (l, f"Err_{l}")), *CURATION_COLUMNS)


GENERIC_DESTS = generic_dests(LABEL_NAMES)  # with the paper's labels (dr8.toml [labels])
SENTINEL_MAX = -9990.0  # a value at or below this is missing (the -9999 of older catalogues)
MAG_BAD = 99.0  # 2MASS / APOGEE photometry write 99 for no measurement ("bad = 99")
LN10 = math.log(10.0)
_BANDS = tuple(l.name for l in LABELS if l.training_set == "LGMWAS")

APOGEE = {  # slot -> names looked for (APOGEE DR17 allStar, https://data.sdss.org/datamodel/files/APOGEE_ASPCAP/)
    "ra": ("RA",), "dec": ("DEC",), "id": ("APOGEE_ID",),
    "logg_APOGEE": ("LOGG",), "Err_logg_APOGEE": ("LOGG_ERR",),
    "feh_APOGEE": ("FE_H",), "Err_feh_APOGEE": ("FE_H_ERR",),
    "MH_APOGEE": ("M_H",), "Err_MH_APOGEE": ("M_H_ERR",),
    "AFE_APOGEE": ("ALPHA_M",), "Err_AFE_APOGEE": ("ALPHA_M_ERR",),
    "CFE_APOGEE": ("C_FE",), "Err_CFE_APOGEE": ("C_FE_ERR",),
    "NFE_APOGEE": ("N_FE",), "Err_NFE_APOGEE": ("N_FE_ERR",),
    "snr_apogee": ("SNR",), "Teff_APOGEE": ("TEFF",), "Err_Teff_APOGEE": ("TEFF_ERR",),
}
APOGEE_FLAGS = {"ASPCAPFLAG": "apogee_aspcapflag_bad_bits", "STARFLAG": "apogee_starflag_bad_bits",
                "EXTRATARG": "apogee_extratarg_bad_bits"}  # column -> [trainset] key of its bad bits
APOGEE_BIT_NAMES = {("ASPCAPFLAG", 23): "STAR_BAD", ("ASPCAPFLAG", 31): "NO_ASPCAP_RESULT",
                    ("STARFLAG", 0): "BAD_PIXELS", ("STARFLAG", 3): "VERY_BRIGHT_NEIGHBOR",
                    ("STARFLAG", 18): "BAD_RV_COMBINATION", ("STARFLAG", 22): "RV_FAIL",
                    ("EXTRATARG", 4): "DUPLICATE"}
PASTEL = {  # VizieR B/pastel; astroquery spells [Fe/H] as __Fe_H_
    "ra": ("RAJ2000", "_RAJ2000", "RA_ICRS", "RAdeg", "ra"), "dec": ("DEJ2000", "_DEJ2000", "DE_ICRS", "DEdeg", "dec"),
    "id": ("ID", "Name", "Star", "SimbadName"),
    "Teff_PASTEL": ("Teff",), "Err_Teff_PASTEL": ("e_Teff",),
    "logg_PASTEL": ("logg",), "Err_logg_PASTEL": ("e_logg",),
    "feh_PASTEL": ("[Fe/H]", "__Fe_H_", "Fe_H", "FeH"), "Err_feh_PASTEL": ("e_[Fe/H]", "e__Fe_H_", "e_Fe_H", "e_FeH"),
}
PASTEL_OPTIONAL = ("id", "Err_Teff_PASTEL", "Err_logg_PASTEL", "Err_feh_PASTEL")
GAIA = {  # Gaia DR3 gaia_source; E(B-V) from the user's dust map
    "ra": ("ra",), "dec": ("dec",), "id": ("source_id",), "parallax": ("parallax",),
    "parallax_error": ("parallax_error",), "b": ("b",), "ebv": ("ebv", "E(B-V)", "EBV", "ebv_sfd"),
    "ebv_error": ("ebv_error", "e_ebv", "ebv_err", "e_E(B-V)"),
}
GAIA_OPTIONAL = ("id", "b", "ebv_error")
GAIA_BANDS = {  # band -> (apparent magnitude names, its error names, flux_over_error names)
    "a_gg": (("phot_g_mean_mag",), ("phot_g_mean_mag_error",), ("phot_g_mean_flux_over_error",)),
    "a_bp": (("phot_bp_mean_mag",), ("phot_bp_mean_mag_error",), ("phot_bp_mean_flux_over_error",)),
    "a_rp": (("phot_rp_mean_mag",), ("phot_rp_mean_mag_error",), ("phot_rp_mean_flux_over_error",)),
    "a_j": (("j_m", "Jmag"), ("j_msigcom", "e_Jmag"), ()),  # 2MASS PSC
    "a_h": (("h_m", "Hmag"), ("h_msigcom", "e_Hmag"), ()),
    "a_ks": (("ks_m", "Kmag", "Ksmag"), ("ks_msigcom", "e_Kmag", "e_Ksmag"), ()),
    "a_w1": (("w1mpro", "W1mag"), ("w1mpro_error", "e_W1mag"), ()),  # AllWISE
    "a_w2": (("w2mpro", "W2mag"), ("w2mpro_error", "e_W2mag"), ()),
    "a_bap": (("bmag", "apass_bmag"), ("e_bmag", "apass_e_bmag"), ()),  # APASS DR9
    "a_vap": (("vmag", "apass_vmag"), ("e_vmag", "apass_e_vmag"), ()),
    "a_rap": (("r_mag", "r'mag", "apass_rmag"), ("e_r_mag", "e_r'mag", "apass_e_rmag"), ()),
    "a_gsd": (("psfMag_g", "sdss_g"), ("psfMagErr_g", "sdss_e_g"), ()),  # SDSS PhotoObj
    "a_rsd": (("psfMag_r", "sdss_r"), ("psfMagErr_r", "sdss_e_r"), ()),
    "a_isd": (("psfMag_i", "sdss_i"), ("psfMagErr_i", "sdss_e_i"), ()),
}
FORMAT_NAMES = {"apogee": "APOGEE DR17 allStar", "pastel": "PASTEL", "gaia": "Gaia DR3 + photometry",
                "generic": "generic"}


class TrainsetError(ValueError, JaxvacError):
    """A reference catalogue, index or option that cannot make a training catalogue."""


@dataclasses.dataclass(frozen=True)
@recipe_defaults("trainset")
class TrainsetConfig:
    """Table ``[trainset]``: min_parallax_over_error (Gaia rows below it get no distance and are
    dropped); the APOGEE DR17 bits whose rows are dropped, per flag column."""

    min_parallax_over_error: float
    apogee_aspcapflag_bad_bits: tuple[int, ...]
    apogee_starflag_bad_bits: tuple[int, ...]
    apogee_extratarg_bad_bits: tuple[int, ...]

    def __post_init__(self):
        for key in APOGEE_FLAGS.values():
            bad = [b for b in getattr(self, key) if not 0 <= b <= 63]
            if bad:
                raise ConfigError(f"trainset.{key} must list bit numbers 0..63, got {bad}.")


@dataclasses.dataclass(frozen=True)
@recipe_defaults("photometry")
class PhotometryConfig:
    """Table ``[photometry]``: r_band, A_band / E(B-V) per absolute-magnitude label (the 14
    LGMWAS bands, keyed by label name); used by ``jaxvac trainset --format gaia`` and the simulator."""

    r_band: dict[str, float]

    def __post_init__(self):
        missing = [b for b in _BANDS if b not in self.r_band]
        extra = [b for b in self.r_band if b not in _BANDS]
        if missing or extra:
            raise ConfigError(f"photometry.r_band must give exactly the bands {list(_BANDS)}; "
                              f"missing {missing}, unknown {extra}.")

    def r(self) -> np.ndarray:
        """R_band in the order of the LGMWAS labels (jaxvac/labels.py)."""
        return np.array([float(self.r_band[b]) for b in _BANDS])


@dataclasses.dataclass
class Converted:
    """A reference catalogue in jaxvac's names: ``cols`` {name: (n,) array} for the ``keep`` rows
    (their positions in the file, (n,) int64), with the rows dropped per reason and notes."""

    cols: dict
    keep: np.ndarray
    dropped: dict
    notes: list


def convert(ref: ReferenceTable, tcfg: TrainsetConfig, pcfg: PhotometryConfig) -> Converted:
    """The format's conversion of ``ref``, then the --map destinations outside the format, as is."""
    notes: list[str] = []
    dropped: dict[str, int] = {}
    if ref.fmt == "apogee":
        cols, keep = _apogee(ref, tcfg, dropped, notes)
    elif ref.fmt == "pastel":
        cols, keep = _pastel(ref, notes)
    elif ref.fmt == "gaia":
        cols, keep = _gaia(ref, tcfg, pcfg, dropped, notes)
    else:
        cols, keep = {}, np.arange(ref.n)
    for dest in ref.generic_dests():
        if dest in ("path", "id"):
            cols[dest] = ref.text(dest)[keep]
        elif dest == "obsid":
            cols[dest] = ref.ids(dest)[keep]
        elif dest in ("ra", "dec"):
            cols[dest] = _angles(ref, dest, hours=False)[keep]
        else:
            cols[dest] = ref.values(dest)[keep]
    return Converted(cols, np.asarray(keep, np.int64), dropped, notes)


# ----------------------------------------------------------------------------------------------
# Reading the reference catalogue


class ReferenceTable:
    """The reference catalogue's columns, found by slot (format aliases, then --map) and read once."""

    def __init__(self, path, fmt: str, maps: dict, labels=LABEL_NAMES):
        """labels: the label names a --map may write (the config's [labels]; default the paper's)."""
        from jaxvac.io.tables import TableError, column_names, require_columns

        self.path, self.fmt, self.maps = str(path), fmt, maps
        try:
            self.names = column_names(path, hint="check the reference catalogue's path")
        except TableError as e:
            raise TrainsetError(str(e)) from None
        self.lower = require_columns(self.names)  # slots and --map are checked below, each with its alias
        allowed = set(generic_dests(labels)) | set(self.slots())
        bad = [d for d in maps if d not in allowed]
        if bad:
            raise TrainsetError(f"--map ...={bad[0]}: {bad[0]!r} is not a name trainset knows for --format {fmt}; "
                                f"use a label name or Err_<label> of the config's [labels] (add a new label "
                                f"there: docs/training.md), a curation column "
                                f"{list(CURATION_COLUMNS)}, a key {list(KEY_COLUMNS)}"
                                + (f", or a slot of the format {sorted(self.slots())}." if self.slots() else "."))
        for dest, src in maps.items():
            if src.lower() not in self.lower:
                raise TrainsetError(f"--map {src}={dest}: reference catalogue {self.path!r} has no column {src!r} "
                                    f"({self._listing()}).")
        self._cache: dict[str, np.ndarray] = {}
        self.n = None
        first = next(iter(self.names), None)
        if first is None:
            raise TrainsetError(f"reference catalogue {self.path!r} has no columns.")
        self.n = len(self._read(first))

    def slots(self) -> dict:
        if self.fmt == "apogee":
            return APOGEE
        if self.fmt == "pastel":
            return PASTEL
        if self.fmt == "gaia":
            bands = {b: names for b, (names, _, _) in GAIA_BANDS.items()}
            errs = {f"Err_{b}": names for b, (_, names, _) in GAIA_BANDS.items()}
            return {**GAIA, **bands, **errs}
        return {}

    def generic_dests(self) -> list[str]:
        """Mapped destinations that are not slots of the format (copied as is)."""
        return [d for d in self.maps if d not in self.slots()]

    def _listing(self) -> str:
        shown = self.names[:60]
        more = f" ... and {len(self.names) - 60} more" if len(self.names) > 60 else ""
        return f"it has {len(self.names)} columns: {', '.join(shown)}{more}"

    def column(self, slot: str, *, required: bool = True) -> str | None:
        """The file's name of the column feeding ``slot`` (--map first, then the format's names)."""
        if slot in self.maps:
            return self.lower[self.maps[slot].lower()]
        names = self.slots().get(slot, (slot,))
        for n in names:
            if n.lower() in self.lower:
                return self.lower[n.lower()]
        if required:
            looked = " or ".join(names)
            raise TrainsetError(
                f"reference catalogue {self.path!r} has no column for {slot} (looked for {looked} as the "
                f"{FORMAT_NAMES[self.fmt]} layout names it); {self._listing()}. Map one with --map SRC={slot}, "
                f"or choose the --format that matches the file.")
        return None

    def _read(self, name: str) -> np.ndarray:
        if name not in self._cache:
            from jaxvac.io.tables import TableError, read_table

            try:
                self._cache[name] = next(iter(read_table(self.path, [name]).values()))
            except TableError as e:
                raise TrainsetError(str(e)) from None
        return self._cache[name]

    def raw(self, slot: str, *, required: bool = True):
        name = self.column(slot, required=required)
        return None if name is None else self._read(name)

    def values(self, slot: str, *, required: bool = True) -> np.ndarray | None:
        """float64 values of a slot; missing (masked, NaN, <= -9990, text that is no number): NaN."""
        a = self.raw(slot, required=required)
        if a is None:
            return None
        return _floats(a, f"column {self.column(slot)!r} of {self.path!r} ({slot})")

    def text(self, slot: str, *, required: bool = True) -> np.ndarray | None:
        a = self.raw(slot, required=required)
        if a is None:
            return None
        if isinstance(a, np.ma.MaskedArray):
            return np.array(["" if m else str(v) for v, m in zip(a.data.tolist(), a.mask.tolist())], dtype=object)
        return np.array([str(v).strip() if not (isinstance(v, float) and v != v) else "" for v in a.tolist()],
                        dtype=object)

    def ids(self, slot: str):
        """Integer ids (obsid): int64, -1 where missing."""
        from jaxvac.io.match import as_ids

        return as_ids(self.raw(slot))


def _floats(a, what: str) -> np.ndarray:
    if isinstance(a, np.ma.MaskedArray):
        a = a.astype(np.float64).filled(np.nan)
    a = np.asarray(a)
    if a.ndim != 1:
        raise TrainsetError(f"{what} is a vector column (shape {a.shape}); map a scalar column with --map.")
    if a.dtype.kind in "iufb":
        v = a.astype(np.float64)
    else:
        v = np.array([_number(x) for x in a.tolist()], np.float64)
    v[v <= SENTINEL_MAX] = np.nan
    return v


def _number(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _angles(ref: ReferenceTable, slot: str, hours: bool, *, required: bool = True) -> np.ndarray | None:
    """RA or Dec in degrees: numbers as they are; text as decimal degrees or sexagesimal
    ('hh mm ss.s' for RA, '+dd mm ss' for Dec; ':' separators too)."""
    a = ref.raw(slot, required=required)
    if a is None:
        return None
    if isinstance(a, np.ma.MaskedArray) or np.asarray(a).dtype.kind in "iuf":
        return _floats(a, slot)
    out = np.full(len(a), np.nan)
    for i, s in enumerate(a.tolist()):
        parts = re.split(r"[\s:hdms]+", str(s).strip())
        parts = [p for p in parts if p]
        try:
            if len(parts) == 1:
                out[i] = float(parts[0])
            elif len(parts) in (2, 3):
                sign = -1.0 if parts[0].startswith("-") else 1.0
                x = abs(float(parts[0])) + float(parts[1]) / 60.0 + (float(parts[2]) / 3600.0 if len(parts) == 3 else 0.0)
                out[i] = sign * x * (15.0 if hours else 1.0)
        except ValueError:
            pass
    return out


# ----------------------------------------------------------------------------------------------
# Formats


def _apogee(ref: ReferenceTable, tcfg: TrainsetConfig, dropped: dict, notes: list):
    bad = np.zeros(ref.n, bool)
    for col, key in APOGEE_FLAGS.items():
        bits = getattr(tcfg, key)
        name = ref.lower.get(col.lower())
        if not bits:
            continue
        if name is None:
            notes.append(f"no {col} column: its bad bits {list(bits)} were not applied")
            continue
        flags = ref._read(name)
        flags = flags.filled(0) if isinstance(flags, np.ma.MaskedArray) else np.asarray(flags)
        flags = np.asarray(flags).astype(np.int64)
        for b in bits:
            hit = (flags >> b) & 1 == 1
            new = hit & ~bad
            if new.any():
                dropped[f"{col} bit {b} ({APOGEE_BIT_NAMES.get((col, b), 'bad')})"] = int(np.count_nonzero(new))
            bad |= hit
    keep = np.nonzero(~bad)[0]
    cols = {}
    for slot in APOGEE:
        if slot == "id":
            ids = ref.text("id", required=False)
            if ids is not None:
                cols["ref_id"] = ids[keep]
        elif slot in ("ra", "dec"):
            if "obsid" in ref.maps or "path" in ref.maps:
                continue
            cols[slot] = _angles(ref, slot, hours=False)[keep]
        else:
            cols[slot] = ref.values(slot)[keep]
    return cols, keep


def _pastel(ref: ReferenceTable, notes: list):
    ra = _angles(ref, "ra", hours=True) if "obsid" not in ref.maps and "path" not in ref.maps else None
    dec = _angles(ref, "dec", hours=False) if ra is not None else None
    ids = ref.text("id", required=False)
    if ids is not None and np.all(ids != ""):
        _, group = np.unique(ids, return_inverse=True)
    elif ra is not None:
        _, group = np.unique(np.stack([np.round(ra, 6), np.round(dec, 6)], axis=1), axis=0, return_inverse=True)
        notes.append("no star ID column: PASTEL entries were grouped by position (to 1e-6 deg)")
    else:
        group = np.arange(ref.n)
    group = group.ravel()
    # First row of each star, in the order the stars first appear.
    order = np.argsort(group, kind="stable")
    starts = np.ones(len(order), bool)
    starts[1:] = group[order][1:] != group[order][:-1]
    first = order[starts]
    keep = np.sort(first)
    star_of_group = np.empty(group.max() + 1 if len(group) else 0, np.int64)
    star_of_group[group[keep]] = np.arange(len(keep))
    star = star_of_group[group]
    cols = {}
    if ids is not None:
        cols["ref_id"] = ids[keep]
    if ra is not None:
        cols["ra"], cols["dec"] = ra[keep], dec[keep]
    for slot in ("Teff_PASTEL", "Err_Teff_PASTEL", "logg_PASTEL", "Err_logg_PASTEL", "feh_PASTEL", "Err_feh_PASTEL"):
        v = ref.values(slot, required=slot not in PASTEL_OPTIONAL)
        if v is None:
            notes.append(f"no column for {slot} (looked for {' or '.join(PASTEL[slot])}): it is NaN")
            v = np.full(ref.n, np.nan)
        cols[slot] = group_median(star, v, len(keep))
    n_entries = ref.n
    if n_entries != len(keep):
        notes.append(f"{n_entries:,} PASTEL entries of {len(keep):,} stars: each label is the median of a star's "
                     f"determinations, its error the median of their errors")
    return cols, keep


def group_median(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Median of the finite ``values`` of each group (0..n_groups-1), NaN for a group without one.

    Vectorised: sort by (group, value) with NaN last in each group, then take the middle one or
    two of the finite values (for an odd count the median is one of the values, bit for bit).
    """
    values = np.asarray(values, np.float64)
    finite = np.isfinite(values)
    order = np.lexsort((np.where(finite, values, np.inf), ~finite, group))
    v = values[order]
    counts = np.bincount(group[finite], minlength=n_groups)
    sizes = np.bincount(group, minlength=n_groups)
    start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    out = np.full(n_groups, np.nan)
    has = counts > 0
    lo = start[has] + (counts[has] - 1) // 2
    hi = start[has] + counts[has] // 2
    out[has] = np.where(lo == hi, v[lo], 0.5 * (v[lo] + v[hi]))
    return out


def _gaia(ref: ReferenceTable, tcfg: TrainsetConfig, pcfg: PhotometryConfig, dropped: dict, notes: list):
    plx = ref.values("parallax")
    eplx = ref.values("parallax_error")
    with np.errstate(invalid="ignore", divide="ignore"):
        poe = plx / eplx
    ok = np.isfinite(poe) & (plx > 0) & (poe > tcfg.min_parallax_over_error)
    if (~ok).any():
        dropped[f"parallax / parallax_error <= {tcfg.min_parallax_over_error:g} or missing ([trainset] "
                f"min_parallax_over_error): no distance"] = int(np.count_nonzero(~ok))
    keep = np.nonzero(ok)[0]
    plx, eplx = plx[keep], eplx[keep]
    frac = eplx / plx  # sigma_parallax / parallax
    dist = 1.0 / plx  # kpc
    ebv = ref.values("ebv")[keep]
    eebv = ref.values("ebv_error", required=False)
    if eebv is None:
        notes.append(f"no E(B-V) error column (looked for {' or '.join(GAIA['ebv_error'])}): taken as 0")
        eebv = np.zeros(ref.n)
    eebv = eebv[keep]
    cols = {}
    ids = ref.text("id", required=False)
    if ids is not None:
        cols["ref_id"] = ids[keep]
    geo = "obsid" not in ref.maps and "path" not in ref.maps  # else ra, dec only serve gb
    b = ref.values("b", required=False)
    ra = _angles(ref, "ra", hours=False, required=geo or b is None)
    dec = _angles(ref, "dec", hours=False, required=geo or b is None)
    if geo:
        cols["ra"], cols["dec"] = ra[keep], dec[keep]
    dm = 5.0 * np.log10(100.0 * dist)  # 5 log10(d / 10 pc), d in kpc
    r = dict(zip(_BANDS, pcfg.r()))
    absent = []
    for band in _BANDS:
        m = ref.values(band, required=False)
        if m is None:
            absent.append(band)
            cols[band] = np.full(len(keep), np.nan)
            cols[f"Err_{band}"] = np.full(len(keep), np.nan)
            continue
        m = m[keep]
        m[m >= MAG_BAD] = np.nan
        em = ref.values(f"Err_{band}", required=False)
        if em is not None:
            em = em[keep]
        else:
            foe_name = next((ref.lower[n.lower()] for n in GAIA_BANDS[band][2] if n.lower() in ref.lower), None)
            if foe_name is not None:
                with np.errstate(divide="ignore", invalid="ignore"):
                    em = 2.5 / LN10 / _floats(ref._read(foe_name), foe_name)[keep]
            else:
                notes.append(f"no error column for {band}'s magnitude: Err_{band} is NaN")
                em = np.full(len(keep), np.nan)
        cols[band] = m - dm - r[band] * ebv
        cols[f"Err_{band}"] = np.sqrt(em**2 + (5.0 / LN10 * frac) ** 2 + (r[band] * eebv) ** 2)
    if len(absent) == len(_BANDS):
        raise TrainsetError(f"reference catalogue {ref.path!r} has no magnitude column of any band (looked for "
                            f"{', '.join(GAIA_BANDS['a_gg'][0] + GAIA_BANDS['a_j'][0])}, ...); {ref._listing()}. "
                            f"Map them with --map SRC=a_gg etc. (apparent magnitudes).")
    if absent:
        notes.append(f"no magnitude column for {', '.join(absent)}: those labels are NaN (map with --map SRC=BAND)")
    cols["dist"] = dist
    cols["Err_dist"] = dist * frac
    if b is not None:
        cols["gb"] = b[keep]
    else:
        from jaxvac.run.astrometry import galactic

        cols["gb"] = galactic(ra[keep], dec[keep])[1]
    cols["ebv"] = ebv
    return cols, keep
