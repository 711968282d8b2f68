"""Label uncertainties and range flags of the catalogue (SPEC.md "Uncertainties", "Networks").

The error of label k for a spectrum with g-band signal-to-noise ``snrg`` is (Wang et al. 2022,
Sect. 4 and Table 2)::

    sigma_k = sqrt(sigma_r**2 + sigma_m**2),    sigma_r = scale_k * (a_k + c_k / snrg**b_k)

A row fitted by ``jaxvac train`` may also carry value factors: sigma_k is multiplied by
``value_factors[j]``, j the bin of ``value_edges`` the label's own estimate falls in (the
networks' errors differ between kinds of star: metal-poor [Fe/H], hot Teff), or the estimate of
the row's ``value_label`` (the magnitudes: their error is that of the luminosity class, so the
bins are of logg_PASTEL); with ``value_snr_edges`` there is one list of factors per snrg range
(``value_factors[r][j]``, r the range snrg falls in: at low snrg a giant's spectrum can pass for
a dwarf's, so the kinds of star mix in the bins differently), and SNR factors:
sigma_k is multiplied by ``snr_factors`` interpolated linearly in log snrg between ``snr_knots``
(constant beyond them), where the fitted curve's form cannot follow how the error changes with
snrg (the simulator's magnitudes: noise at low snrg, more giants among the bright stars). A row
may carry second value factors too: sigma_k is also multiplied by ``value2_factors[i]``, i the
bin of ``value2_edges`` the estimate of ``value2_label`` falls in (the magnitudes: binned on
logg_PASTEL, they also err with metallicity, their networks failing on metal-poor stars).

``sigma_r`` is the random error, fitted from repeat observations (``jaxvac calibrate-errors``);
``sigma_m`` is the method error (the scatter on the training stars). ``scale`` is 100 for
Teff_PASTEL, because the paper fitted Teff residuals divided by 100 K, and 1 for every other
label. The coefficients are the ``[errors.coefficients]`` table of ``configs/dr8.toml``
(Table 2), or the error model a checkpoint carries (fitted by ``jaxvac train`` on held-out
residuals of those very networks, or written into it by ``jaxvac calibrate-errors --into``):
``[errors] source`` chooses, :func:`run_error_model` applies the choice. Range flags likewise
use the checkpoint's training ranges (:func:`run_ranges`), or the configured ranges of the labels
(``[labels]``; Table 1 for the paper's, ``jaxvac.labels``).

Every function here works on a list of label names: the paper's 23 (``jaxvac.labels.LABEL_NAMES``)
by default, or the labels of any checkpoint (``LabelSchema.from_metadata(meta).names``).

feh_VMP (the VMP label) has no row in Table 2: its error is its method error, ``feh_vmp_sigma`` =
0.176 dex, at every SNR (unless a config or checkpoint adds a calibrated row for it).

Missing inputs: where ``snrg`` is not finite or <= 0 the error is NaN (no SNR, no error); where
an estimate is NaN its error is NaN. Flags are 1 outside the closed range [lo, hi] and, by
default, 1 for a NaN estimate (an estimate that does not exist is not inside the training grid).

This runs on the catalogue (millions of rows), in vectorised float64 NumPy.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from collections.abc import Mapping, Sequence

import numpy as np

from jaxvac.config import ConfigError, load_config, recipe_defaults, section
from jaxvac.labels import LABEL_NAMES, PAPER, VMP, LabelSchema, checkpoint_schema

__all__ = [
    "ErrorsConfig",
    "ErrorCoefficients",
    "ErrorModel",
    "label_errors",
    "vmp_error",
    "range_flags",
    "default_ranges",
    "run_error_model",
    "run_ranges",
    "checkpoint_schema",
    "ERROR_SOURCES",
    "value_bin",
]

ERROR_SOURCES = ("checkpoint", "config")  # values of [errors] source

_ROW_KEYS = ("a", "b", "c", "sigma_m", "scale", "snr_min", "snr_max")
_VALUE_KEYS = ("value_edges", "value_factors")  # optional per-row lists: Err x factor of the estimate's bin
_VALUE_LABEL = "value_label"  # optional with them: whose estimate picks the bin (default the row's own)
_VALUE_SNR = "value_snr_edges"  # optional with them: snrg edges (R - 1) of R lists of value factors
_VALUE2_KEYS = ("value2_edges", "value2_factors")  # optional per-row lists: Err x factor of value2_label's bin
_VALUE2_LABEL = "value2_label"  # required with them: whose estimate picks that bin
_SNR_KEYS = ("snr_knots", "snr_factors")  # optional per-row lists: Err x factor interpolated in log snrg
_ROW_DEFAULTS = {"scale": 1.0, "snr_min": 0.0, "snr_max": math.inf}


@dataclasses.dataclass(frozen=True)
@recipe_defaults("errors")
class ErrorsConfig:
    """The ``[errors]`` table of a config; the defaults are those of configs/dr8.toml [errors].

    source: where ``jaxvac run`` takes Err_ and the flag ranges from: "checkpoint" (the error
        model and training ranges the checkpoint carries; the coefficients below and Table 1 for a
        checkpoint without them) or "config" (the coefficients below and Table 1, always).
    coefficients: label name -> {a, b, c, sigma_m, scale=1}, for any label of the config's
        ``[labels]`` and ``[vmp]`` (default: Wang et al. 2022 Table 2 for the paper's 23 labels,
        from dr8.toml); a model's labels need a row here only where its checkpoint has none.
    feh_vmp_sigma: dex, error of feh_VMP when the table has no feh_VMP row (SPEC.md: 0.176).
    pair_snr_tolerance: calibration pairs two spectra of one star only if
        |snr1 - snr2| / ((snr1 + snr2) / 2) < pair_snr_tolerance (SPEC.md: 10%).
    snr_bin_edges: snrg bin edges of the calibration (increasing, > 0).
    min_pairs_per_bin: calibration bins with fewer pairs are left out of the fit; for held-out
        residuals (``jaxvac train``) the least number of stars per bin.
    heldout_bins: at most this many snrg bins, of equal star counts, for held-out residuals.
    heldout_b_min: lowest exponent b of a held-out fit (< 0: Err may rise with snrg).
    heldout_value_bins: M >= 2 gives each held-out fit value factors over M bins of equal counts
        of the label's estimate (0 or 1: none); a label with fewer than M * min_pairs_per_bin
        held-out stars gets none.
    heldout_value_label: training set -> label: the value factors of that set's labels are
        taken over bins of that label's estimate instead of their own (dr8.toml: the magnitudes
        over logg_PASTEL, the luminosity class their error follows; the APOGEE labels over
        feh_APOGEE, the metallicity theirs follows); that label itself, a set mapped to "", not
        listed, or whose label the model lacks keeps its own estimates.
    heldout_value2_label: training set -> label: that set's labels also get second value
        factors, over bins of that label's estimate at the quantiles ``heldout_value2_quantiles``
        of the held-out stars (dr8.toml: the magnitudes over feh_PASTEL, bins finer at the
        metal-poor end, where their networks fail); fitted jointly with the first (a set mapped
        to "", not listed, or whose label the model lacks gets none; nor does that label itself).
    heldout_value2_quantiles: increasing quantiles in (0, 1) of the held-out stars' estimates at
        which the second value factors' bins are cut (an edge is dropped where a bin would hold
        fewer than min_pairs_per_bin rows).
    heldout_snr_factors: give each held-out fit SNR factors: the scatter of residual / fitted
        error in each of its snrg bins, interpolated in log snrg, for where the curve's form
        cannot follow the residuals (an error that falls, then rises with snrg).
    heldout_snr_factors_p: the SNR factors are kept only where they differ from 1 beyond chance:
        chi2 = sum over the bins of (ln f / err_rel)**2 above the 1 - p quantile of chi2 with
        as many degrees of freedom as bins (0: always kept).
    heldout_vmp_validation: the VMP label's fit also takes the VMP network's validation stars
        (never trained on), where the held-out stars are a test catalogue's: its candidates there
        are few (179 on the demo survey, 22 per snrg bin), its validation stars reach the ends
        of its metallicity range, where its errors have their tails.
    heldout_renoise: (lo, hi, top) snrg: a label with fewer than ``heldout_renoise_min`` held-out
        stars at snrg lo-hi gets ``heldout_renoise_copies`` copies of each of its held-out stars
        at snrg hi-top, re-noised to a snrg drawn log-uniformly in lo-hi, for its error fit (the
        held-out stars nearest above lo-hi stand for its population there; docs/errors.md).
        Snrg below hi is a range of its own in every held-out fit: one snrg bin, and value
        factors of its own (``value_snr_edges`` = [hi]) where it has M * min_pairs_per_bin stars
        and copies.
    heldout_warn_rel: ``jaxvac train`` warns when a label's Err is pinned down by its held-out
        stars to worse than this relative standard error in some snrg bin (err_rel of
        :func:`jaxvac.train.calibrate.heldout_error_rows`); 0 never warns.
    scatter: per-bin scatter of the residuals, "std" (sample standard deviation, as the paper)
        or "mad" (1.4826 * median absolute deviation from the median: robust to outliers).
    """

    source: str
    coefficients: Mapping[str, Mapping[str, float]]
    feh_vmp_sigma: float
    pair_snr_tolerance: float
    snr_bin_edges: tuple[float, ...]
    min_pairs_per_bin: int
    heldout_bins: int
    heldout_b_min: float
    heldout_value_bins: int
    heldout_value_label: Mapping[str, str]
    heldout_value2_label: Mapping[str, str]
    heldout_value2_quantiles: tuple[float, ...]
    heldout_snr_factors: bool
    heldout_snr_factors_p: float
    heldout_vmp_validation: bool
    heldout_renoise: tuple[float, float, float]
    heldout_renoise_min: int
    heldout_renoise_copies: int
    heldout_warn_rel: float
    scatter: str

    def __post_init__(self):
        edges = np.asarray(self.snr_bin_edges, dtype=float)
        if edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)) or np.any(edges <= 0) or np.any(np.diff(edges) <= 0):
            raise ConfigError(f"[errors] snr_bin_edges must be >= 2 increasing positive numbers, got {self.snr_bin_edges!r}.")
        if not 0 < self.pair_snr_tolerance < 2:
            raise ConfigError(f"[errors] pair_snr_tolerance is a relative SNR difference in (0, 2), got {self.pair_snr_tolerance!r}; SPEC.md uses 0.10.")
        if self.source not in ERROR_SOURCES:
            raise ConfigError(f"[errors] source must be one of {list(ERROR_SOURCES)}, got {self.source!r}; "
                              f"\"checkpoint\" uses the error model the checkpoint carries.")
        if self.scatter not in ("std", "mad"):
            raise ConfigError(f"[errors] scatter must be 'std' or 'mad', got {self.scatter!r}.")
        if int(self.min_pairs_per_bin) != self.min_pairs_per_bin or self.min_pairs_per_bin < 2:
            raise ConfigError(f"[errors] min_pairs_per_bin must be an integer >= 2, got {self.min_pairs_per_bin!r}.")
        r = self.heldout_renoise
        if not (isinstance(r, (list, tuple)) and len(r) == 3 and all(isinstance(v, (int, float)) for v in r)
                and 0 < r[0] < r[1] < r[2]):
            raise ConfigError(f"[errors] heldout_renoise must be three increasing snrg values [lo, hi, top] > 0, got {r!r}.")
        for key in ("heldout_renoise_min", "heldout_renoise_copies", "heldout_value_bins"):
            v = getattr(self, key)
            if isinstance(v, bool) or int(v) != v or v < 0:
                raise ConfigError(f"[errors] {key} must be an integer >= 0, got {v!r}; 0 turns it off.")
        for key, example in (("heldout_value_label", "logg_PASTEL"), ("heldout_value2_label", "feh_PASTEL")):
            vl = getattr(self, key)
            if not (isinstance(vl, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in vl.items())):
                raise ConfigError(f"[errors] {key} must be a table {{ SET = \"label\" }}, e.g. "
                                  f"{{ LGMWAS = \"{example}\" }}, got {vl!r}.")
        q = self.heldout_value2_quantiles
        if not (_finite_numbers(q) and all(0 < x < 1 for x in q) and all(b > a for a, b in zip(q[:-1], q[1:]))):
            raise ConfigError(f"[errors] heldout_value2_quantiles must be increasing numbers in (0, 1), e.g. "
                              f"[0.05, 0.15, 0.4], got {q!r}.")
        if not isinstance(self.heldout_vmp_validation, bool):
            raise ConfigError(f"[errors] heldout_vmp_validation must be true or false, got {self.heldout_vmp_validation!r}.")
        if not isinstance(self.heldout_snr_factors, bool):
            raise ConfigError(f"[errors] heldout_snr_factors must be true or false, got {self.heldout_snr_factors!r}.")
        p = self.heldout_snr_factors_p
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ConfigError(f"[errors] heldout_snr_factors_p must be a probability in [0, 1) (0.05: keep SNR factors "
                              f"that differ from 1 beyond 5 % chance; 0: keep them always), got {p!r}.")
        w = self.heldout_warn_rel
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not (math.isfinite(w) and w >= 0):
            raise ConfigError(f"[errors] heldout_warn_rel must be a number >= 0 (a relative error, 0.1 = 10 %; 0: "
                              f"never warn), got {w!r}.")
        if not (math.isfinite(self.feh_vmp_sigma) and self.feh_vmp_sigma >= 0):
            raise ConfigError(f"[errors] feh_vmp_sigma must be a finite number >= 0 (dex), got {self.feh_vmp_sigma!r}.")


@dataclasses.dataclass(frozen=True)
class ErrorCoefficients:
    """One row of Table 2: sigma_r = scale * (a + c / snr**b); sigma_m in the label's unit.

    snr_min, snr_max: snr is clipped into this range first (a fitted curve is not extrapolated
    beyond the SNR of the data it was fitted to); Table 2 rows: 0 and inf, no clipping.
    """

    name: str
    a: float
    b: float
    c: float
    sigma_m: float
    scale: float = 1.0
    snr_min: float = 0.0
    snr_max: float = math.inf
    value_edges: tuple[float, ...] = ()  # increasing bin edges of the label's estimate (M - 1)
    value_factors: tuple = ()  # the total error's factor per bin (M; empty: 1), or R such lists with value_snr_edges
    value_label: str = ""  # the label whose estimate picks the value bin ("": the row's own)
    value_snr_edges: tuple[float, ...] = ()  # increasing snrg (R - 1) between the R lists of value_factors
    value2_edges: tuple[float, ...] = ()  # increasing bin edges of value2_label's estimate (M2 - 1)
    value2_factors: tuple[float, ...] = ()  # the total error's second factor per bin (M2; empty: 1)
    value2_label: str = ""  # the label whose estimate picks the second bin
    snr_knots: tuple[float, ...] = ()  # increasing snrg of the SNR factors (K >= 2)
    snr_factors: tuple[float, ...] = ()  # the total error's factor at each knot (K; empty: 1)

    def factor(self, values, snrg=None) -> np.ndarray:
        """(N,) factor of estimates ``values`` (N,): value_factors[j], j = number of value_edges <=
        value; with value_snr_edges value_factors[r][j], r = number of them <= snrg (N,, then
        required; r = 0 where snrg is NaN); 1 without value factors, and where the estimate is NaN."""
        v = np.asarray(values, np.float64)
        if not self.value_factors:
            return np.ones(v.shape)
        table = np.asarray(self.value_factors, np.float64).reshape(-1, len(self.value_edges) + 1)
        r = np.zeros(v.shape, int)
        if self.value_snr_edges:
            if snrg is None:
                raise ValueError(f"the value factors of {self.name} differ between snrg ranges; pass snrg too.")
            r = value_bin(self.value_snr_edges, snrg)
        return np.where(np.isfinite(v), table[r, value_bin(self.value_edges, v)], 1.0)

    def factor2(self, values2) -> np.ndarray:
        """(N,) second factor of value2_label's estimates ``values2`` (N,): value2_factors[i], i =
        number of value2_edges <= value; 1 without second factors, and where the estimate is NaN."""
        v = np.asarray(values2, np.float64)
        if not self.value2_factors:
            return np.ones(v.shape)
        return np.where(np.isfinite(v), np.asarray(self.value2_factors)[value_bin(self.value2_edges, v)], 1.0)

    def snr_factor(self, snrg) -> np.ndarray:
        """(N,) factor at snrg (N,): snr_factors interpolated linearly in log snrg between the
        snr_knots, the end factors beyond them; 1 without SNR factors, and where snrg <= 0 or NaN."""
        s = np.asarray(snrg, np.float64)
        if not self.snr_factors:
            return np.ones(s.shape)
        good = np.isfinite(s) & (s > 0)
        f = np.interp(np.log(np.where(good, s, 1.0)), np.log(self.snr_knots), self.snr_factors)
        return np.where(good, f, 1.0)


def value_bin(edges, x) -> np.ndarray:
    """(N,) int: the bin of each x (N,) among sorted edges, the number of edges <= x (a NaN x
    takes 0's bin: the callers give NaN estimates a factor 1, NaN snrg the first range). The one
    rule for the error model's bins, in the fit (``jaxvac.train.calibrate``) and in a run."""
    x = np.asarray(x, np.float64)
    return np.searchsorted(np.asarray(edges, np.float64), np.where(np.isfinite(x), x, 0.0), side="right")


def _finite_numbers(v) -> bool:
    return isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                and math.isfinite(x) for x in v)


def _row_lists(source: str, name: str, row, table: str) -> dict:
    """The optional lists of a row, checked: value_edges / value_factors (M - 1 increasing finite
    edges, M finite factors > 0; with value_snr_edges, R - 1 increasing snrg > 0, R such lists of
    M), value2_edges / value2_factors (as value_edges / value_factors, one list) and snr_knots /
    snr_factors (K increasing snrg > 0, K finite factors > 0); each pair both or neither, M, K >= 2."""
    def increasing(v):
        return all(b > a for a, b in zip(v[:-1], v[1:]))

    out = {}
    for (pos, fac), n_pos, what in ((_VALUE_KEYS, -1, "M - 1 increasing finite edges and M"),
                                    (_VALUE2_KEYS, -1, "M - 1 increasing finite edges and M"),
                                    (_SNR_KEYS, 0, "K increasing snrg > 0 and K")):
        have = [k for k in (pos, fac) if k in row]
        if not have:
            continue
        at, factors = row.get(pos), row.get(fac)
        nested = fac == "value_factors" and _VALUE_SNR in row
        lists = factors if nested else [factors]
        ok = len(have) == 2 and _finite_numbers(at) and isinstance(lists, (list, tuple)) and len(lists) >= 1
        ok = ok and all(_finite_numbers(f) and len(f) == len(at) - n_pos >= 2 and all(x > 0 for x in f) for f in lists)
        ok = ok and increasing(at) and (n_pos != 0 or at[0] > 0)
        if nested:
            se = row[_VALUE_SNR]
            ok = ok and _finite_numbers(se) and len(se) >= 1 and len(lists) == len(se) + 1 and increasing(se) and se[0] > 0
            what += " (with value_snr_edges: R - 1 increasing snrg > 0 and R lists of M)"
        if not ok:
            raise ConfigError(f"In {source}: {table} {name} {pos} / {fac} must come together: {what} finite factors "
                              f"> 0 ({'M' if n_pos else 'K'} >= 2), got {at!r} and {factors!r}"
                              + (f" with {_VALUE_SNR} {row[_VALUE_SNR]!r}." if nested else "."))
        out |= {pos: tuple(float(x) for x in at),
                fac: tuple(tuple(float(x) for x in f) for f in lists) if nested else tuple(float(x) for x in factors)}
        if nested:
            out[_VALUE_SNR] = tuple(float(x) for x in row[_VALUE_SNR])
    if _VALUE_SNR in row and _VALUE_SNR not in out:
        raise ConfigError(f"In {source}: {table} {name}.{_VALUE_SNR} comes only with value_edges and value_factors.")
    return out


def _row(source: str, name: str, row, table: str = "[errors.coefficients]") -> ErrorCoefficients:
    if not isinstance(row, Mapping):
        raise ConfigError(f"In {source}: {table} {name} must be a table {{a, b, c, sigma_m}}, got {row!r}.")
    unknown = sorted(set(row) - set(_ROW_KEYS) - set(_VALUE_KEYS) - set(_VALUE2_KEYS) - set(_SNR_KEYS)
                     - {_VALUE_LABEL, _VALUE_SNR, _VALUE2_LABEL})
    missing = sorted({"a", "b", "c", "sigma_m"} - set(row))
    if unknown or missing:
        what = " and ".join(([f"has unknown key(s) {unknown}"] if unknown else []) + ([f"lacks {missing}"] if missing else []))
        raise ConfigError(
            f"In {source}: {table} {name} {what}; "
            f"each row needs a, b, c, sigma_m and may have scale (default 1), snr_min, snr_max, "
            f"value_edges with value_factors (and value_label, value_snr_edges), value2_edges with value2_factors "
            f"and value2_label, snr_knots with snr_factors."
        )
    vals = {k: row[k] for k in _ROW_KEYS if k in row}
    if vals.get("snr_max") == "inf":  # how a checkpoint's JSON writes an unbounded snr_max
        vals["snr_max"] = math.inf
    for k, v in vals.items():
        bad = isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v)
        bad = bad or (k != "snr_max" and not math.isfinite(v)) or (k != "b" and v < 0) or (k == "scale" and v == 0)
        if bad:
            raise ConfigError(f"In {source}: {table} {name}.{k} must be a finite number >= 0 (b any finite number, "
                              f"scale > 0, snr_max may be inf), got {v!r}.")
    if vals.get("snr_min", 0.0) > vals.get("snr_max", math.inf):
        raise ConfigError(f"In {source}: {table} {name} has snr_min {vals['snr_min']!r} > snr_max {vals['snr_max']!r}.")
    lists = _row_lists(source, name, row, table)
    vl = row.get(_VALUE_LABEL, "")
    if not isinstance(vl, str) or (vl and "value_factors" not in lists):
        raise ConfigError(f"In {source}: {table} {name}.value_label must be a label name that comes with value_edges "
                          f"and value_factors, got {vl!r}.")
    v2 = row.get(_VALUE2_LABEL, "")
    if not isinstance(v2, str) or bool(v2) != ("value2_factors" in lists):
        raise ConfigError(f"In {source}: {table} {name}.value2_label must be a label name, given exactly when "
                          f"value2_edges and value2_factors are, got {v2!r}.")
    return ErrorCoefficients(name=name, **{k: float(v) for k, v in vals.items()}, **lists,
                             **({"value_label": vl} if vl and vl != name else {}),
                             **({"value2_label": v2} if v2 else {}))


@dataclasses.dataclass(frozen=True)
class ErrorModel:
    """Coefficients of every label; ``sigma`` evaluates them on a catalogue's snrg column.

    rows: one ErrorCoefficients per label, in the model's label order (the paper's 23 of
    ``jaxvac.labels.LABEL_NAMES`` by default, or a checkpoint's labels), then the VMP label's if
    calibrated. vmp_name: the VMP label (its row is optional: without one its error is
    ``feh_vmp_sigma``), None for a model without a VMP network. Build it with
    ``ErrorModel.from_config(cfg)``, ``from_rows`` or ``ErrorModel.default()`` (configs/dr8.toml).
    """

    rows: tuple[ErrorCoefficients, ...]
    feh_vmp_sigma: float = 0.176
    vmp_name: str | None = VMP.name

    @classmethod
    def from_config(cls, cfg: Mapping, names: Sequence[str] | None = None, vmp: str | None = VMP.name,
                    partial: bool = False) -> ErrorModel:
        """From a loaded config (``jaxvac.config.load_config``).

        ``[errors.coefficients]`` may hold a row for any label of the config's ``[labels]`` (every
        set) or ``[vmp]``, and for the paper's; every row is checked. names: the labels the model
        needs (default the paper's 23), each with a row unless ``partial`` (then those without one
        are left out: a fallback for a checkpoint's own rows); vmp: the VMP label, whose row is
        taken when the table has one.
        """
        source = cfg.get("_source", ["<config>"])[-1]
        ec = section(cfg, "errors", ErrorsConfig)
        table = ec.coefficients or {}
        allowed = _config_names(cfg)
        unknown = sorted(set(table) - set(allowed))
        if unknown:
            raise ConfigError(f"In {source}: [errors.coefficients] has unknown label(s) {unknown}; labels are "
                              f"{list(allowed)} (a label of your own: list it in [labels] first).")
        checked = {n: _row(source, n, table[n]) for n in table}
        names = LABEL_NAMES if names is None else tuple(names)
        missing = [n for n in names if n not in table]
        if missing and not partial:
            raise ConfigError(
                f"In {source}: [errors.coefficients] lacks {missing}; every label needs a row "
                f"(inherit the paper's with base = \"dr8.toml\"; for a label of your own add "
                f"[errors.coefficients] {missing[0]} = {{ a = ..., b = ..., c = ..., sigma_m = ... }})."
            )
        rows = [checked[n] for n in names if n in checked]
        if vmp and vmp in checked and vmp not in names:
            rows.append(checked[vmp])
        return cls(rows=tuple(rows), feh_vmp_sigma=ec.feh_vmp_sigma, vmp_name=vmp)

    @staticmethod
    def default() -> ErrorModel:
        """Wang et al. (2022) Table 2, from configs/dr8.toml."""
        return _default_model()

    @classmethod
    def from_rows(cls, rows: Mapping[str, Mapping], feh_vmp_sigma: float, source: str = "<rows>",
                  fallback: ErrorModel | None = None, names: Sequence[str] | None = None,
                  vmp: str | None = VMP.name) -> ErrorModel:
        """From {label: {a, b, c, sigma_m[, scale]}} (other keys such as n, status are ignored).

        names: the model's labels (default the paper's 23); vmp: its VMP label (optional row).
        A label of ``names`` missing from ``rows`` takes ``fallback``'s row; one that neither
        has, or a row for a label outside names + vmp, raises ConfigError naming ``source``.
        """
        names = LABEL_NAMES if names is None else tuple(names)
        allowed = names + ((vmp,) if vmp and vmp not in names else ())
        unknown = sorted(set(rows) - set(allowed))
        if unknown:
            raise ConfigError(f"In {source}: error-model rows for unknown label(s) {unknown}; labels are {list(allowed)}.")
        have = set(rows) | set(fallback.names if fallback is not None else ())
        missing = [n for n in names if n not in have]
        if missing:
            raise ConfigError(f"In {source}: the error model lacks rows for {missing}; every label needs one.")
        out = []
        for n in allowed:
            if n in rows:
                keep = set(_ROW_KEYS) | set(_VALUE_KEYS) | set(_VALUE2_KEYS) | set(_SNR_KEYS) | {_VALUE_LABEL, _VALUE_SNR,
                                                                                                 _VALUE2_LABEL}
                out.append(_row(source, n, {k: v for k, v in rows[n].items() if k in keep}, table="error model"))
            elif fallback is not None and n in fallback.names:
                out.append(fallback.row(n))
        if not (math.isfinite(feh_vmp_sigma) and feh_vmp_sigma >= 0):
            raise ConfigError(f"In {source}: feh_vmp_sigma must be a finite number >= 0 (dex), got {feh_vmp_sigma!r}.")
        stray = [(r.name, key, lab) for r in out for key, lab in (("value_label", r.value_label), ("value2_label", r.value2_label))
                 if lab and lab not in names]
        if stray:
            raise ConfigError(f"In {source}: {stray[0][1]} of {stray[0][0]} is {stray[0][2]!r}, not a label of the model "
                              f"{list(names)}; its value factors need that label's estimate.")
        return cls(rows=tuple(out), feh_vmp_sigma=float(feh_vmp_sigma), vmp_name=vmp)

    def to_rows(self) -> dict[str, dict[str, float]]:
        """{label: {a, b, c, sigma_m, scale[, snr_min, snr_max][, value_edges, value_factors[,
        value_label][, value_snr_edges]][, value2_edges, value2_factors, value2_label][, snr_knots,
        snr_factors]}}, the inverse of
        :meth:`from_rows` (snr_min, snr_max only where they clip; the lists only where the row has
        them; value_factors a list of lists with value_snr_edges)."""
        return {r.name: {k: getattr(r, k) for k in _ROW_KEYS if _ROW_DEFAULTS.get(k) != getattr(r, k) or k == "scale"}
                | ({"value_edges": list(r.value_edges),
                    "value_factors": [list(f) for f in r.value_factors] if r.value_snr_edges else list(r.value_factors)}
                   if r.value_factors else {})
                | ({_VALUE_LABEL: r.value_label} if r.value_label else {})
                | ({_VALUE_SNR: list(r.value_snr_edges)} if r.value_snr_edges else {})
                | ({"value2_edges": list(r.value2_edges), "value2_factors": list(r.value2_factors),
                    _VALUE2_LABEL: r.value2_label} if r.value2_factors else {})
                | ({k: list(getattr(r, k)) for k in _SNR_KEYS} if r.snr_factors else {})
                for r in self.rows}

    def digest(self) -> str:
        """sha256 (first 16 hex digits) of the coefficients and feh_vmp_sigma: names the model in
        catalogue headers (card ERRMODEL)."""
        blob = json.dumps({"rows": self.to_rows(), "feh_vmp_sigma": self.feh_vmp_sigma}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.rows)

    @property
    def labels(self) -> tuple[str, ...]:
        """The rows' labels without the VMP label: the default columns of :meth:`sigma`."""
        return tuple(n for n in self.names if n != self.vmp_name)

    def row(self, name: str) -> ErrorCoefficients:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"No error coefficients for label {name!r}; the model has {list(self.names)}.")

    def _columns(self, names: Sequence[str] | None) -> dict[str, np.ndarray]:
        rows = [self.row(n) for n in (self.labels if names is None else names)]
        return {k: np.array([getattr(r, k) for r in rows], dtype=np.float64) for k in _ROW_KEYS}

    def random(self, snrg, names: Sequence[str] | None = None) -> np.ndarray:
        """Random error sigma_r = scale * (a + c / s**b), s = snrg clipped into [snr_min, snr_max].

        snrg: (N,) g-band SNR. names: labels (default :attr:`labels`, the 23 of LABEL_NAMES for
        the paper's model, in that order). Returns (N, len(names)) float64 in each label's unit;
        NaN rows where snrg is not finite or <= 0.
        """
        col = self._columns(names)
        snr = np.asarray(snrg, dtype=np.float64).reshape(-1, 1)
        good = np.isfinite(snr) & (snr > 0)
        safe = np.clip(np.where(good, snr, 1.0), col["snr_min"], col["snr_max"])
        out = col["scale"] * (col["a"] + col["c"] / safe ** col["b"])
        return np.where(good, out, np.nan)

    def sigma(self, snrg, names: Sequence[str] | None = None, values=None) -> np.ndarray:
        """Total error sqrt(sigma_r**2 + sigma_m**2), (N, len(names)) float64 in label units.

        NaN rows where snrg is not finite or <= 0. For Teff_PASTEL at snrg = 50 with Table 2:
        sqrt((100 * (0.21 + 42.827 / 50**1.229))**2 + 75**2) = 93.58 K. values: (N, len(names))
        estimates; a row with value factors multiplies its column by :meth:`value_factor`. Without
        values the factors are not applied. A row with SNR factors multiplies its column by
        :meth:`ErrorCoefficients.snr_factor`.
        """
        col = self._columns(names)
        out = np.hypot(self.random(snrg, names), col["sigma_m"])
        rows = [self.row(n) for n in (self.labels if names is None else names)]
        for k, r in enumerate(rows):
            if r.snr_factors:
                out[:, k] *= r.snr_factor(np.asarray(snrg, np.float64).reshape(-1))
        if values is not None:
            out *= self.value_factor(names, values, snrg)
        return out

    def value_factor(self, names: Sequence[str] | None, values, snrg=None) -> np.ndarray:
        """(N, len(names)) value factors of estimates ``values`` (N, len(names)), columns in the
        order of ``names`` (default :attr:`labels`): :meth:`ErrorCoefficients.factor` of each row's
        own estimate, or of its value_label's column (which ``names`` must then hold), at snrg (N,;
        needed by a row with value_snr_edges), times :meth:`ErrorCoefficients.factor2` of its
        value2_label's column; 1 for a row without value factors."""
        names = list(self.labels if names is None else names)
        vals = np.asarray(values, np.float64).reshape(-1, len(names))
        snr = None if snrg is None else np.asarray(snrg, np.float64).reshape(-1)
        out = np.ones(vals.shape)
        for k, n in enumerate(names):
            r = self.row(n)
            for by in (r.value_label if r.value_factors else "", r.value2_label):
                if by and by not in names:
                    raise ValueError(f"the value factors of {n} are on {by}'s estimate; pass that label's "
                                     f"estimates too (names {names}).")
            if r.value_factors:
                out[:, k] = r.factor(vals[:, names.index(r.value_label or n)], snr)
            if r.value2_factors:
                out[:, k] *= r.factor2(vals[:, names.index(r.value2_label)])
        return out


@functools.lru_cache(maxsize=1)
def _default_model() -> ErrorModel:
    return ErrorModel.from_config(load_config("dr8.toml"))


def _config_names(cfg: Mapping) -> tuple[str, ...]:
    """Labels a config's [errors.coefficients] may name: the paper's (and feh_VMP), every label of
    its [labels] (all sets) and its [vmp] name."""
    names = [*PAPER.names, PAPER.vmp.label.name]
    if cfg.get("labels"):
        names += LabelSchema.from_config(cfg, sets=tuple(cfg["labels"])).names
    v = cfg.get("vmp")
    if isinstance(v, Mapping) and isinstance(v.get("name"), str):
        names.append(v["name"])
    return tuple(dict.fromkeys(names))


def label_errors(estimates, snrg, model: ErrorModel | None = None, names: Sequence[str] | None = None) -> np.ndarray:
    """Err_<label> columns of the catalogue.

    estimates: (N, K) label estimates, columns in the order of ``names`` (default the model's
    :attr:`ErrorModel.labels`: the 23 of LABEL_NAMES for the paper's). snrg: (N,). Returns (N, K)
    float64: ``model.sigma(snrg, names, estimates)`` (a row's value factors apply to the estimate),
    NaN where the estimate is NaN or snrg is unusable.
    """
    model = ErrorModel.default() if model is None else model
    names = model.labels if names is None else tuple(names)
    est = np.asarray(estimates)
    snr = np.asarray(snrg)
    if est.ndim != 2 or est.shape[1] != len(names) or snr.shape != (est.shape[0],):
        raise ValueError(
            f"label_errors needs estimates (N, {len(names)}) and snrg (N,), got {est.shape} and {snr.shape}."
        )
    sig = model.sigma(snr, names, est)
    return np.where(np.isfinite(est), sig, np.nan)


def vmp_error(feh_vmp, snrg=None, model: ErrorModel | None = None) -> np.ndarray:
    """Err_feh_VMP (the VMP label's error): (N,) float64 dex.

    The method error ``model.feh_vmp_sigma`` (0.176 dex) wherever feh_vmp is finite, NaN
    elsewhere (non-candidates). If the model has a calibrated row for its VMP label
    (``model.vmp_name``), that row is used with ``snrg`` (then required, (N,)) instead.
    """
    model = ErrorModel.default() if model is None else model
    feh = np.asarray(feh_vmp, dtype=np.float64)
    if model.vmp_name is not None and model.vmp_name in model.names:
        if snrg is None:
            raise ValueError(f"vmp_error: the error model has a calibrated {model.vmp_name} row, so snrg (N,) is "
                             f"needed; pass it.")
        snr = np.broadcast_to(np.asarray(snrg, dtype=np.float64), feh.shape)
        sig = model.sigma(snr.reshape(-1), [model.vmp_name], feh.reshape(-1, 1)).reshape(feh.shape)
    else:
        sig = np.full(feh.shape, model.feh_vmp_sigma)
    return np.where(np.isfinite(feh), sig, np.nan)


def default_ranges(names: Sequence[str] | None = None, schema: LabelSchema = PAPER) -> np.ndarray:
    """(K, 2) configured ranges [lo, hi] of the labels ``names`` of ``schema`` (default: the
    paper's, SPEC.md Table 1 from configs/dr8.toml; its VMP label allowed; names default: all of
    its labels); -inf/inf where none is configured. A checkpoint's own ranges take precedence."""
    by_name = {l.name: l for l in schema.with_vmp}
    names = schema.names if names is None else names
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise KeyError(f"No range for label(s) {unknown}; labels are {list(by_name)}.")
    return np.array([(by_name[n].lo, by_name[n].hi) for n in names], dtype=np.float64)


def range_flags(values, ranges=None, names: Sequence[str] | None = None, nan_flag: int = 1) -> np.ndarray:
    """flag_<label>: 0 where lo <= value <= hi, 1 outside (and for +-inf); ``nan_flag`` for NaN.

    values: (N, K) estimates (or (N,) with a single range). ranges: (K, 2) [lo, hi] per column,
    or a mapping name -> (lo, hi) read in the order of ``names`` (default LABEL_NAMES), or None
    for the paper's ranges of ``names`` (``default_ranges``); a trained checkpoint's ranges
    should be passed (:func:`run_ranges`). Returns int8 of the shape of values.
    """
    vals = np.asarray(values, dtype=np.float64)
    if ranges is None:
        rng = default_ranges(names)
    elif isinstance(ranges, Mapping):
        keys = LABEL_NAMES if names is None else names
        missing = [n for n in keys if n not in ranges]
        if missing:
            raise KeyError(f"range_flags: no range for {missing}; the ranges given cover {sorted(ranges)}.")
        rng = np.array([tuple(float(v) for v in ranges[n]) for n in keys], dtype=np.float64)
    else:
        rng = np.asarray(ranges, dtype=np.float64)
    if rng.shape == (2,):
        rng = rng.reshape(1, 2) if vals.ndim == 2 and vals.shape[-1] == 1 else rng
    if rng.shape[-1] != 2 or rng.ndim > 2 or (rng.ndim == 2 and (vals.ndim != 2 or vals.shape[-1] != rng.shape[0])):
        raise ValueError(
            f"range_flags needs values (N, K) with ranges (K, 2), or values (N,) with one (lo, hi); "
            f"got values {vals.shape} and ranges {rng.shape}."
        )
    lo, hi = rng[..., 0], rng[..., 1]
    if np.any(~(lo <= hi)):
        raise ValueError(f"range_flags: every range needs lo <= hi (finite or +-inf), got {rng.tolist()}.")
    inside = (vals >= lo) & (vals <= hi)
    return np.where(np.isnan(vals), np.int8(nan_flag), np.where(inside, 0, 1)).astype(np.int8)


def run_error_model(cfg: Mapping, metadata: Mapping | None, where: str = "checkpoint") -> tuple[ErrorModel, str]:
    """The error model ``jaxvac run`` uses for the checkpoint's labels, and its header value
    ``"<kind>:<digest>"``.

    ``[errors] source = "checkpoint"`` (the default) with a checkpoint whose metadata has an
    ``error_model`` (written by ``jaxvac train`` from held-out residuals for every label it
    trained, kind "checkpoint", or by ``jaxvac calibrate-errors --into``, kind "repeats"): that
    model; a label it lacks takes the config's row. Otherwise (``source = "config"``, or a
    checkpoint written before error models were stored) the config's ``[errors.coefficients]``
    (Table 2), kind "config". A label with a row in neither raises ConfigError naming
    ``[errors.coefficients] <label>`` and the fix.
    """
    schema = checkpoint_schema(metadata)
    names = schema.names
    vmp = schema.vmp.label.name if schema.vmp else None
    src = cfg.get("_source", ["<config>"])[-1]
    ec = section(cfg, "errors", ErrorsConfig)
    table = ec.coefficients or {}
    rec = (metadata or {}).get("error_model") if ec.source == "checkpoint" else None
    if not rec:
        missing = [n for n in names if n not in table]
        if missing:
            why = ("[errors] source = \"config\"" if ec.source == "config" else f"{where} carries no error model")
            raise ConfigError(
                f"In {src}: [errors.coefficients] {missing[0]} is missing ({why}; the model predicts {missing} "
                f"without a row); add [errors.coefficients] {missing[0]} = {{ a = ..., b = ..., c = ..., sigma_m = ... }} "
                f"(`jaxvac calibrate-errors` fits a, b, c), or use a checkpoint with an error model and "
                f"[errors] source = \"checkpoint\".")
        model = ErrorModel.from_config(cfg, names, vmp)
        return model, f"config:{model.digest()}"
    if not isinstance(rec, Mapping) or not isinstance(rec.get("rows"), Mapping):
        raise ConfigError(f"{where} has an error_model without a 'rows' table; retrain, or set [errors] source = \"config\".")
    missing = [n for n in names if n not in rec["rows"] and n not in table]
    if missing:
        raise ConfigError(
            f"{where}: its error model has no row for {missing} and {src} has no [errors.coefficients] {missing[0]}; "
            f"add [errors.coefficients] {missing[0]} = {{ a = ..., b = ..., c = ..., sigma_m = ... }} to the config, "
            f"or retrain (`jaxvac train` stores a row for every label it trains).")
    fallback = ErrorModel.from_config(cfg, names, vmp, partial=True)
    model = ErrorModel.from_rows(rec["rows"], float(rec.get("feh_vmp_sigma", fallback.feh_vmp_sigma)),
                                 source=f"{where} error_model", fallback=fallback, names=names, vmp=vmp)
    kind = "repeats" if rec.get("kind") == "repeats" else "checkpoint"
    return model, f"{kind}:{model.digest()}"


def run_ranges(cfg: Mapping, metadata: Mapping | None) -> tuple[np.ndarray, tuple[float, float] | None, str]:
    """(ranges (M, 2) in the checkpoint's label order, VMP range (lo, hi) or None for a model
    without VMP network, kind) of the flags of ``jaxvac run``.

    ``[errors] source = "checkpoint"`` and metadata with ``training_ranges`` (``jaxvac train``:
    the range of each label over the curated training stars, rule in docs/errors.md): those, kind
    "checkpoint"; otherwise, and for a label without a record, the ranges configured for the
    model's labels when it was trained (``[labels] range``, stored in the checkpoint; Table 1 for
    the paper's; -inf/inf where none was given), kind "config".
    """
    schema = checkpoint_schema(metadata)
    ec = section(cfg, "errors", ErrorsConfig)
    rec = (metadata or {}).get("training_ranges") if ec.source == "checkpoint" else None
    configured = default_ranges(schema=schema)
    vmp_conf = (schema.vmp.label.lo, schema.vmp.label.hi) if schema.vmp else None
    if not rec:
        return configured, vmp_conf, "config"
    labels = rec.get("labels", {})
    rng = np.array([[float(v) for v in labels.get(n, configured[k])] for k, n in enumerate(schema.names)], np.float64)
    vmp = tuple(float(v) for v in rec.get(schema.vmp.label.name, vmp_conf)) if schema.vmp else None
    return rng, vmp, "checkpoint"
