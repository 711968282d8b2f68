"""`jaxvac report CATALOGUE`: PNG plots and a Markdown summary of a catalogue."""

from __future__ import annotations

import click


@click.command(name="report")
@click.argument("catalogue", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the plots and summary.md [default: CATALOGUE without suffix + '_report'].")
def command(catalogue, out_dir):
    """Plots of a catalogue written by `jaxvac run`: Kiel diagram coloured by [Fe/H],
    [Fe/H] vs [alpha/M], M_G vs BP-RP, X-Y and X-Z density, label histograms, flag fractions,
    and summary.md with per-label medians, errors and flagged fractions.

    \b
    Example:
      jaxvac report demo/catalogue.fits     # -> demo/catalogue_report/*.png, summary.md
    """
    from pathlib import Path

    from jaxvac.run.catalog import read_catalog
    from jaxvac.display.report import write_report

    rows, rejects = read_catalog(catalogue)
    out = Path(out_dir) if out_dir else Path(catalogue).with_name(Path(catalogue).stem + "_report")
    for p in write_report(rows, out, title=f"jaxvac report of {Path(catalogue).name}", n_rejects=len(rejects)):
        click.echo(p)
