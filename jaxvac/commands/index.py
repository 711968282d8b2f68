"""`jaxvac index DIR --out INDEX.fits`: one row per spectrum from its header (jaxvac.io.spectra_index)."""

from __future__ import annotations

import click


@click.command(name="index")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Index to write: *.fits (HDU INDEX, HDU REJECTS) or *.parquet.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Reader processes; 0 reads in this process [default: one per CPU from 256 files a process].")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
def command(inputs, out, workers, progress):
    """Read the header of every spectrum once and write an index of them.

    INPUTS: directories (searched at any depth), globs in quotes, text lists of paths, or
    CSV/FITS tables with a path column. One row per readable file: obsid, ra, dec, snrg, class,
    lmjd, planid, spid, fiberid, rv (km/s; NaN when the header has no redshift) and the absolute
    path; files that cannot be read are counted, listed with their reason here and kept in the
    index (FITS: HDU REJECTS). Only the headers are parsed; no pixel is decoded.
    `jaxvac trainset --index INDEX` then finds the spectra of a reference catalogue's stars by
    obsid or by sky position.

    \b
    Examples:
      jaxvac index dr8/spectra --out dr8_index.fits
      jaxvac index 'dr8/**/spec-*.fits.gz' --out dr8_index.parquet --workers 8
    """
    from jaxvac.io.spectra_index import build_index

    summary = build_index(list(inputs), out, workers=workers, progress=progress)
    for line in summary.lines():
        click.echo(line)
