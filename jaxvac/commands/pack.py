"""`jaxvac pack`: convert spectra once into a packed store (thin wrapper of jaxvac.io.pack.pack)."""

from __future__ import annotations

import click


@click.command(name="pack")
@click.option("--input", "inputs", required=True, multiple=True,
              help="Spectra: a directory (recursive), a glob in quotes, a text file of paths, or a "
                   "FITS/CSV table with a 'path' column. Repeat to combine.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Store directory to write (created; a rerun continues an interrupted pack).")
@click.option("--shard-size", type=int, default=4096, show_default=True, help="Input files per shard.")
@click.option("--workers", type=int, default=None, help="Reader processes; 0 reads in this process [default: CPUs].")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def command(inputs, out, shard_size, workers, no_progress):
    """Read the FITS files once into a store that `jaxvac run --input STORE` reads.

    Keeps only the pixels the normalisation needs (the two windows with the median-filter margin
    and room for the largest rv shift, |rv| <= 4000 km/s: 2,250 float32 flux + ivar pixels a
    spectrum) and the reader's metadata, in fixed-size shards with a CRC-32 checksum per file. The
    catalogue from the store is the same as from the FITS files. Resumable: rerun the same command
    after a kill.

    \b
    Example:
      jaxvac pack --input dr8/spectra --out dr8.store
      jaxvac run --model RUN/checkpoint --input dr8.store --out catalogue.fits
    """
    from jaxvac.cli import on_interrupt
    from jaxvac.io.pack import pack

    on_interrupt(f"the complete shards in {out}/ are kept; rerun the same command to continue")
    summary = pack(list(inputs), out, shard_size=shard_size, workers=workers,
                   progress=False if no_progress else None)
    for line in summary.lines():
        click.echo(line)
