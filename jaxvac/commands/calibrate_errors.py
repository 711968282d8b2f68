"""`jaxvac calibrate-errors CATALOGUE`: fit sigma_r = a + c / snrg**b per label from repeats."""

from __future__ import annotations

import math

import click


@click.command(name="calibrate-errors")
@click.argument("catalogue", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", default="calibrate_errors", show_default=True, type=click.Path(file_okay=False),
              help="Folder for coefficients.{fits,csv,md}, bins.csv, errors.toml and calibrate_errors.png.")
@click.option("--config", default="dr8.toml", show_default=True,
              help="Config whose [errors] table gives the pairing/binning settings and the reference coefficients: "
                   "a built-in name (dr8, demo) or a path to a TOML file.")
@click.option("--star-column", default=None,
              help="Column identifying a star (default: the first of star_id, gaiaid, gaia_source_id, source_id, designation, desig).")
@click.option("--snr-column", default="snrg", show_default=True, help="Column with the g-band SNR.")
@click.option("--labels", default=None, help="Comma-separated label columns to calibrate (default: every label column present: the labels of "
                   "the --into checkpoint, else any label of the config's [labels] and [vmp]).")
@click.option("--dpi", default=80, show_default=True, type=click.IntRange(20, 600), help="Resolution of calibrate_errors.png.")
@click.option("--into", "into", default=None, type=click.Path(file_okay=False), metavar="CHECKPOINT",
              help="Also make the fitted rows the error model of this checkpoint (RUN/checkpoint; a new step): "
                   "`jaxvac run` then uses them (header ERRMODEL = repeats:...). sigma_m is kept from the checkpoint.")
def command(catalogue, out_dir, config, star_column, snr_column, labels, dpi, into):
    """Fit the random-error coefficients a, b, c of every label from repeat observations.

    CATALOGUE is a FITS, CSV or Parquet table with one row per spectrum: a star id, snrg and label
    columns (the labels of the --into checkpoint, else those of the config's [labels]). Spectra of one star whose SNR differ by < 10% are
    paired; (x1 - x2) / sqrt(2) is binned by SNR and sigma = a + c / SNR**b fitted per label
    (Wang et al. 2022, Table 2 and Fig. 5). See docs/errors.md.

    \b
    Examples:
      jaxvac calibrate-errors repeats.fits --out calibrate_errors
      jaxvac calibrate-errors demo/catalogue.fits --star-column gaiaid --labels Teff_PASTEL,feh_PASTEL
      jaxvac calibrate-errors repeats.csv --config demo --dpi 50
      jaxvac calibrate-errors demo/catalogue.fits --star-column gaiaid --into demo/run/checkpoint
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from jaxvac.cli import on_interrupt
    from jaxvac.errors import JaxvacError
    from jaxvac.train.calibrate_job import run_calibration

    on_interrupt(f"files already in {out_dir}/ may be from this or an earlier call; rerun the same command")
    wanted = [s.strip() for s in labels.split(",") if s.strip()] if labels else None
    cal, paths = run_calibration(catalogue, out_dir, config, star_column, snr_column, wanted, dpi, into)
    if not any(lc.fit for lc in cal.labels):  # every coefficient NaN: the files are of no use
        first, others = (cal.labels[0], len(cal.labels) - 1) if cal.labels else (None, 0)
        why = (f"{first.name}: {first.status}" + (f"; likewise {others} other labels" if others else "")
               if first else "no label column")
        raise JaxvacError(
            f"no label of {catalogue!r} could be fitted ({why}); every coefficient in {out_dir}/ is NaN. Give a "
            f"catalogue with more repeat observations ({cal.counts.get('pairs', 0)} pairs here), or lower "
            f"[errors] min_pairs_per_bin in a config given with --config.")

    console = Console()
    if not console.is_terminal:  # a pipe or a log file: do not squeeze the table into 80 columns
        console = Console(width=120)
    for k, v in cal.counts.items():
        console.print(f"{k}: {v}")
    tab = Table(title="sigma_r = scale * (a + c / snrg**b)", box=box.SIMPLE)
    for h in ("label", "pairs", "bins", "a", "b", "c", "chi2/dof"):
        tab.add_column(h, justify="left" if h == "label" else "right", no_wrap=True)

    def pm(v, e):  # two significant digits of the error, the value to the same decimal
        if math.isnan(v):
            return "-"
        if not (math.isfinite(e) and e > 0):
            return f"{v:.4g}"
        dec = max(0, 1 - math.floor(math.log10(e)))
        return f"{v:.{dec}f}±{e:.{dec}f}"

    for lc in cal.labels:
        (a, b, c), errs = lc.abc, (lc.fit.errors if lc.fit else (math.nan,) * 3)
        chi = f"{lc.fit.chi2:.1f}/{lc.fit.dof}" if lc.fit else "-"
        tab.add_row(lc.name, str(lc.n_pairs), str(lc.bins.n.size), pm(a, errs[0]), pm(b, errs[1]), pm(c, errs[2]), chi)
    console.print(tab)
    for lc in cal.labels:
        if lc.fit is None:
            console.print(f"[yellow]{lc.name} not fitted: {lc.status}[/yellow]")
    for p in paths:
        console.print(f"wrote {p}")
