"""`jaxvac report CATALOGUE`: PNG plots, summary.md and a self-contained index.html of a catalogue."""

from __future__ import annotations

import click


@click.command(name="report")
@click.argument("catalogue", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the plots, summary.md and index.html [default: CATALOGUE without suffix + '_report'].")
def command(catalogue, out_dir):
    """Plots of a catalogue written by `jaxvac run`: Kiel diagram coloured by [Fe/H],
    [Fe/H] vs [alpha/M], M_G vs BP-RP, X-Y and X-Z density maps with the Sun and the Galactic
    centre, label histograms and flagged shares; summary.md with per-label medians, errors and
    flagged counts over their denominators; and index.html, one page holding all of it with the
    run's provenance from the catalogue header, readable offline (plots embedded, no external
    resource). Axis limits are percentiles, stated in each caption (docs/catalogue.md).

    \b
    Examples:
      jaxvac report demo/catalogue.fits     # -> demo/catalogue_report/index.html, summary.md, *.png
      jaxvac report cat.parquet --out qa/   # -> qa/index.html ...
    """
    from jaxvac.cli import on_interrupt
    from jaxvac.display.report import report_catalogue

    on_interrupt("the report folder may be incomplete; rerun the same command")

    for p in report_catalogue(catalogue, out_dir):  # a file that is not a catalogue: ReportError, one line (cli.py)
        click.echo(p)
