"""``jaxvac calibrate-errors`` as a library call: a repeat catalogue in, tables and figure out.

:func:`run_calibration` reads the catalogue (:func:`read_repeats`, through
:func:`jaxvac.io.tables.read_table`), fits with :func:`jaxvac.train.calibrate.calibrate` and
writes, each atomically (:mod:`jaxvac.io.atomic`), into one folder:

    coefficients.fits   HDU COEFFS (one row per label: a, b, c, errors, chi2, pairs, reference)
                        and HDU BINS (one row per label and SNR bin)
    coefficients.csv    COEFFS as CSV;  coefficients.md  COEFFS as a Markdown table
    bins.csv            BINS as CSV
    errors.toml         an [errors.coefficients] table to merge into a config
    calibrate_errors.png  the figure (:func:`jaxvac.display.plots.plot_calibration`)

With ``into`` (``--into CHECKPOINT``) the fitted rows also become the error model of a trained
checkpoint (:func:`write_into_checkpoint`: a new step, kind "repeats"), which ``jaxvac run`` uses
with ``[errors] source = "checkpoint"`` and names in the catalogue header (ERRMODEL = repeats:...).

Which columns are labels: those of the checkpoint given with ``into`` (its label schema, VMP label
included), else any label the config lists (``[labels]``, every set, and ``[vmp]``) or the paper's;
``labels`` picks some of them. The config's ``[errors.coefficients]`` rows, where it has them, are
the reference (curves, scales and the sigma_m kept).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxvac.config import ConfigError
from jaxvac.display.plots import plot_calibration
from jaxvac.io.atomic import atomic_path, atomic_write
from jaxvac.io.tables import column_names, read_table, require_columns
from jaxvac.labels import PAPER, LabelSchema
from jaxvac.run.uncertainties import ErrorModel, ErrorsConfig, checkpoint_schema
from jaxvac.train.calibrate import Calibration, calibrate
from jaxvac.train.dataset import DatasetError

__all__ = ["STAR_COLUMNS", "Repeats", "read_repeats", "coefficient_table", "bin_table", "write_calibration",
           "run_calibration", "write_into_checkpoint"]

STAR_COLUMNS = ("star_id", "gaiaid", "gaia_source_id", "source_id", "designation", "desig")


@dataclasses.dataclass(frozen=True)
class Repeats:
    """Columns of a catalogue read for calibration: one row per spectrum."""

    star_id: np.ndarray  # (N,) ints or strings, possibly masked
    snrg: np.ndarray  # (N,) float64, NaN where missing
    values: dict[str, np.ndarray]  # label -> (N,) float64, NaN where missing
    star_column: str
    source: str


def read_repeats(
    path,
    star_column: str | None = None,
    snr_column: str = "snrg",
    labels: Sequence[str] | None = None,
    known: Sequence[str] | None = None,
) -> Repeats:
    """Read star id, snrg and label columns from a FITS, CSV or Parquet catalogue
    (jaxvac.io.tables): ``labels``, else every column present (matched without regard to case)
    whose name is in ``known`` (default the paper's 23 and feh_VMP; :func:`run_calibration` passes
    the checkpoint's or the config's labels). The star column is ``star_column`` or the first of
    STAR_COLUMNS present. Missing values become NaN (labels, snrg) or masked / NaN / empty ids
    (calibrate drops those rows)."""
    known = tuple(lab.name for lab in PAPER.with_vmp) if known is None else tuple(known)
    path = str(path)
    hint = "give a FITS, CSV or Parquet file with one row per spectrum"
    names = column_names(path, hint=hint)
    by_lower = require_columns(names)  # star, SNR and label columns are checked below, each message naming its kind

    def name(col, what):
        if col.lower() not in by_lower:
            raise DatasetError(f"Catalogue {path!r} has no {what} column {col!r}; its columns are {names}.")
        return by_lower[col.lower()]

    if star_column is None:
        star_column = next((c for c in STAR_COLUMNS if c in by_lower), None)
        if star_column is None:
            raise DatasetError(
                f"Catalogue {path!r} has none of the star id columns {list(STAR_COLUMNS)}; "
                f"name the column that identifies a star with --star-column (columns: {names})."
            )
    wanted = labels if labels is not None else [n for n in known if n.lower() in by_lower]
    if not wanted:
        raise DatasetError(
            f"Catalogue {path!r} has no label column; expected any of {list(known)} (columns: {names}); "
            f"name them with --labels."
        )
    star = name(star_column, "star id")
    snr = name(snr_column, "SNR")
    label_columns = {n: name(n, "label") for n in wanted}
    cols = read_table(path, [star, snr, *label_columns.values()], hint=hint)

    def numeric(col, what):
        c = cols[col]
        if c.dtype.kind not in "iuf":
            raise DatasetError(f"Catalogue {path!r}: column {col!r} ({what}) must be numeric, got dtype {c.dtype}.")
        return np.ma.filled(np.ma.asarray(c, dtype=np.float64), np.nan)

    if cols[star].dtype.kind not in "iufUSO":  # calibrate() pairs by integer or string ids
        raise DatasetError(f"Catalogue {path!r}: star id column {star!r} must hold integers or strings, got dtype "
                           f"{cols[star].dtype}; name another column with --star-column.")
    values = {n: numeric(c, "label") for n, c in label_columns.items()}
    return Repeats(star_id=cols[star], snrg=numeric(snr, "SNR"), values=values, star_column=star, source=path)


def coefficient_table(cal: Calibration, reference: ErrorModel | None = None):
    """astropy Table, one row per label: a, b, c with errors, chi2, pairs, status and, if given,
    the reference (e.g. Table 2) coefficients a_ref, b_ref, c_ref."""
    from astropy.table import Table

    rows = []
    for lc in cal.labels:
        a, b, c = lc.abc
        ea, eb, ec = lc.fit.errors if lc.fit else (math.nan,) * 3
        ref = reference.row(lc.name) if reference is not None and lc.name in reference.names else None
        rows.append({
            "label": lc.name, "scale": lc.scale, "a": a, "a_err": ea, "b": b, "b_err": eb, "c": c, "c_err": ec,
            "chi2": lc.fit.chi2 if lc.fit else math.nan, "dof": lc.fit.dof if lc.fit else 0,
            "n_pairs": lc.n_pairs, "n_bins": int(lc.bins.n.size),
            "a_ref": ref.a if ref else math.nan, "b_ref": ref.b if ref else math.nan, "c_ref": ref.c if ref else math.nan,
            "status": lc.status,
        })
    names = list(rows[0]) if rows else ["label"]
    return Table(rows=[[r[k] for k in names] for r in rows], names=names) if rows else Table(names=names, dtype=[str])


def bin_table(cal: Calibration):
    """astropy Table, one row per label and SNR bin: scatter and fitted sigma_r in label units."""
    from astropy.table import Table

    cols = {k: [] for k in ("label", "snr_lo", "snr_hi", "snr", "n_pairs", "scatter", "scatter_err", "fitted")}
    for lc in cal.labels:
        bs = lc.bins
        fitted = lc.scale * lc.fit(bs.snr) if lc.fit else np.full(bs.snr.shape, np.nan)
        for k in range(bs.n.size):
            for key, v in zip(cols, (lc.name, bs.lo[k], bs.hi[k], bs.snr[k], int(bs.n[k]), bs.scatter[k], bs.scatter_err[k], fitted[k])):
                cols[key].append(v)
    dtypes = ["U24", "f8", "f8", "f8", "i8", "f8", "f8", "f8"]
    return Table([np.asarray(v, dtype=d) for v, d in zip(cols.values(), dtypes)], names=list(cols))


def _markdown(tab) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v)

    head = "| " + " | ".join(tab.colnames) + " |\n|" + "---|" * len(tab.colnames) + "\n"
    return head + "".join("| " + " | ".join(fmt(row[c]) for c in tab.colnames) + " |\n" for row in tab)


def _toml(cal: Calibration, reference: ErrorModel | None, source: str) -> str:
    lines = [
        f"# Random-error coefficients fitted by `jaxvac calibrate-errors` from {source}",
        "# (sigma_r = scale * (a + c / snrg**b)). sigma_m is not measured by repeats: it is copied",
        "# from the reference config. Merge into a config that starts with base = \"dr8.toml\".",
        "[errors.coefficients]",
    ]
    for lc in cal.labels:
        if lc.fit is None:
            lines.append(f"# {lc.name}: not fitted ({lc.status})")
            continue
        if reference is not None and lc.name in reference.names:
            sm = reference.row(lc.name).sigma_m
        elif reference is not None and lc.name == reference.vmp_name:
            sm = reference.feh_vmp_sigma
        else:
            sm = 0.0
            lines.append(f"# {lc.name}: the reference config has no row, so sigma_m (the method error) is not known: set it")
        lines.append(
            f"{lc.name} = {{ a = {lc.fit.a:.6g}, b = {lc.fit.b:.6g}, c = {lc.fit.c:.6g}, "
            f"sigma_m = {sm:.6g}, scale = {lc.scale:g} }}"
        )
    return "\n".join(lines) + "\n"


def write_calibration(cal: Calibration, out_dir, reference: ErrorModel | None = None, source: str = "", dpi: int = 80,
                      units: dict[str, str] | None = None) -> list[str]:
    """Write coefficients.{fits,csv,md}, bins.csv, errors.toml and calibrate_errors.png into
    out_dir (created), each atomically (module docstring). units: {label: unit} for the figure
    (default the paper's). Returns the paths written."""
    from astropy.io import fits

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    coef, bins = coefficient_table(cal, reference), bin_table(cal)
    hdus = fits.HDUList([fits.PrimaryHDU(), fits.table_to_hdu(coef), fits.table_to_hdu(bins)])
    hdus[1].name, hdus[2].name = "COEFFS", "BINS"
    hdus[0].header["SOURCE"] = source  # the catalogue calibrated (long paths use CONTINUE cards)
    for name, write in (("coefficients.fits", hdus.writeto),
                        ("coefficients.csv", lambda tmp: coef.write(tmp, format="ascii.csv")),
                        ("bins.csv", lambda tmp: bins.write(tmp, format="ascii.csv"))):
        with atomic_path(out / name) as tmp:
            write(tmp)
    atomic_write(out / "coefficients.md", _markdown(coef))
    atomic_write(out / "errors.toml", _toml(cal, reference, source))
    plot_calibration(cal, out / "calibrate_errors.png", reference, dpi, units=units)
    return [str(out / n) for n in ("coefficients.fits", "coefficients.csv", "coefficients.md", "bins.csv",
                                   "errors.toml", "calibrate_errors.png")]


def write_into_checkpoint(cal: Calibration, checkpoint_dir, reference: ErrorModel, source: str = "") -> str:
    """Make the fitted rows the error model of the checkpoint ``checkpoint_dir`` (a new step).

    Each fitted label takes a, b, c and scale from the repeats and sigma_m (which repeats do not
    measure) from the checkpoint's current error model, else from ``reference`` (the config);
    labels not fitted keep the checkpoint's row (else the reference's). Recorded as kind "repeats"
    with its source and the error model it replaces. Returns the new step's path.
    """
    from jaxvac.train import checkpoint

    meta = checkpoint.read_metadata(checkpoint_dir)
    schema = checkpoint_schema(meta)
    names, vmp = schema.names, (schema.vmp.label.name if schema.vmp else None)
    old = meta.get("error_model") or {}
    base = ErrorModel.from_rows(old["rows"], float(old.get("feh_vmp_sigma", reference.feh_vmp_sigma)),
                                f"checkpoint {str(checkpoint_dir)!r}", fallback=reference, names=names,
                                vmp=vmp) if old.get("rows") else reference
    rows = base.to_rows()
    sm_vmp = base.feh_vmp_sigma
    fitted = []
    for lc in cal.labels:
        if lc.fit is None:
            continue
        if lc.name in rows:
            sigma_m = rows[lc.name]["sigma_m"]
        elif lc.name == vmp:
            sigma_m = sm_vmp
        else:  # a label with no row in the checkpoint nor the config: repeats do not measure sigma_m
            raise ConfigError(f"checkpoint {str(checkpoint_dir)!r} has no error-model row for {lc.name} and the config "
                              f"none either, so its method error sigma_m is unknown (repeats do not measure it); add "
                              f"[errors.coefficients] {lc.name} = {{ a = 0, b = 1, c = 0, sigma_m = <its method error> }} "
                              f"to the config, or retrain with `jaxvac train` (which stores a row for every label).")
        rows[lc.name] = {"a": lc.fit.a, "b": lc.fit.b, "c": lc.fit.c, "sigma_m": sigma_m, "scale": lc.scale,
                         "n": lc.n_pairs, "status": "repeats"}
        fitted.append(lc.name)
    model = ErrorModel.from_rows(rows, sm_vmp, f"repeats into checkpoint {str(checkpoint_dir)!r}", fallback=reference,
                                 names=names, vmp=vmp)
    record = {
        "kind": "repeats",
        "source": f"repeats {source}",
        "form": "Err = sqrt((scale * (a + c / snrg**b))**2 + sigma_m**2); a, b, c from repeat pairs, sigma_m kept "
                "(a refitted label drops its value and SNR factors: repeats measure the random error, not the kind of star "
                "nor the mix of stars at each snrg)",
        "rows": rows,
        "feh_vmp_sigma": sm_vmp,
        "fitted": fitted,
        "replaces": {"kind": old.get("kind", "config"), "digest": old.get("digest", base.digest())},
        "digest": model.digest(),
    }
    return str(checkpoint.update_metadata(checkpoint_dir, {"error_model": record}))


def run_calibration(
    catalogue,
    out_dir,
    config="dr8.toml",
    star_column: str | None = None,
    snr_column: str = "snrg",
    labels: Sequence[str] | None = None,
    dpi: int = 80,
    into=None,
) -> tuple[Calibration, list[str]]:
    """Read a catalogue, fit every label's a, b, c with the [errors] settings of ``config`` and
    write the tables and figure into ``out_dir``; the config's coefficients are the reference
    (and give each label's scale). ``into``: a checkpoint directory whose error model becomes the
    fitted one (:func:`write_into_checkpoint`); its labels are the ones looked for (module
    docstring). Returns the calibration and the paths written."""
    from jaxvac.config import load_config, section

    cfg = load_config(config)
    settings = section(cfg, "errors", ErrorsConfig)
    schema = _label_schema(cfg, into)
    known = [lab.name for lab in schema.with_vmp]
    if into is not None and labels is not None:
        other = [n for n in labels if n not in known]
        if other:
            raise DatasetError(f"--labels {','.join(other)}: not labels of checkpoint {str(into)!r} (--into), whose "
                               f"labels are {known}; calibrate those, or leave out --into.")
    vmp = schema.vmp.label.name if schema.vmp else (cfg.get("vmp") or {}).get("name", PAPER.vmp.label.name)
    reference = ErrorModel.from_config(cfg, schema.names, vmp, partial=True)
    rep = read_repeats(catalogue, star_column, snr_column, labels, known=known)
    cal = calibrate(rep.star_id, rep.snrg, rep.values, settings, reference)
    paths = write_calibration(cal, out_dir, reference, source=rep.source, dpi=dpi, units=schema.units)
    if into is not None:
        paths.append(write_into_checkpoint(cal, into, reference, source=rep.source))
    return cal, paths


def _label_schema(cfg, into) -> LabelSchema:
    """The labels calibration looks for: the checkpoint's (``into``), else every label of the
    config's [labels] (all sets, with its VMP rule) after the paper's (jaxvac.labels.PAPER)."""
    if into is not None:
        from jaxvac.train import checkpoint

        return checkpoint_schema(checkpoint.read_metadata(into))
    if not cfg.get("labels"):
        return PAPER
    mine = LabelSchema.from_config(cfg, sets=tuple(cfg["labels"]))
    extra = tuple(lab for lab in PAPER.labels if lab.name not in mine.names)
    return LabelSchema(labels=mine.labels + extra, vmp=mine.vmp or PAPER.vmp)
