"""`jaxvac merge OUT`: join the parts of a sharded run into the final catalogue."""

from __future__ import annotations

import sys

import click


@click.command(name="merge")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["fits", "parquet"]), default=None,
              help="Catalogue format [default: from the suffix of OUT].")
def command(out, fmt):
    """Merge OUT.parts/ (written by `jaxvac run --shard I/N` jobs or several processes) into OUT.

    Rows come out in input order; uqflag is computed over the whole catalogue; an input covered
    by two parts is an error (it would be a duplicated row). Safe to rerun.

    \b
    Example:
      for i in 0 1 2 3; do jaxvac run ... --shard $i/4 --out cat.fits & done; wait
      jaxvac merge cat.fits
    """
    from jaxvac.run.loop import merge

    try:
        path, n_rows, n_rej = merge(out, fmt=fmt)
    except (FileNotFoundError, RuntimeError) as e:
        click.echo(f"jaxvac merge: {e}", err=True)
        sys.exit(1)
    click.echo(f"{path}: {n_rows} rows, {n_rej} rejects")
