"""`jaxvac merge OUT`: join the parts of a sharded run into the final catalogue."""

from __future__ import annotations

import click


@click.command(name="merge")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["fits", "parquet"]), default=None,
              help="Catalogue format [default: from the suffix of OUT].")
@click.option("--allow-partial", is_flag=True,
              help="Merge even if inputs are missing (a share not run or not finished): the header says "
                   "PARTIAL = T and NMISSING; the parts are kept. Without it such a merge is refused.")
@click.option("--keep-parts", is_flag=True, help="Keep OUT.parts/ after the merge (default: removed once OUT is written).")
@click.option("--force-lock", is_flag=True,
              help="Take over OUT's lock when a run on another host holds it (a job that crashed there).")
def command(out, fmt, allow_partial, keep_parts, force_lock):
    """Merge OUT.parts/ (written by `jaxvac run --shard I/N` jobs or several processes) into OUT.

    Rows come out in input order; uqflag is computed over the whole catalogue; an input covered
    by two parts is an error (it would be a duplicated row). Safe to rerun.

    \b
    Example:
      for i in 0 1 2 3; do jaxvac run ... --shard $i/4 --out cat.fits & done; wait
      jaxvac merge cat.fits
    """
    from jaxvac.cli import on_interrupt
    from jaxvac.run.loop import merge

    on_interrupt(f"the parts are kept until {out} is written whole; rerun the same command to merge")
    m = merge(out, fmt=fmt, allow_partial=allow_partial, keep_parts=keep_parts, force_lock=force_lock)
    for note in m.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"{m.path}: {m.rows} rows, {m.rejects} rejects, {m.skipped} skipped"
               + (f", {m.missing} inputs missing (PARTIAL)" if m.missing else ""))
