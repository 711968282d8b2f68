"""`jaxvac run`: the value-added catalogue from spectra (thin wrapper of jaxvac.run.loop.run_catalog)."""

from __future__ import annotations

import click


def _shard(ctx, param, value):
    if value is None:
        return (0, 1)
    try:
        i, n = (int(x) for x in value.split("/"))
    except ValueError:
        raise click.BadParameter(f"expected i/n such as 3/16, got {value!r}.") from None
    if not 0 <= i < n:
        raise click.BadParameter(f"need 0 <= i < n, got {value!r}.")
    return (i, n)


@click.command(name="run")
@click.option("--model", required=True, type=click.Path(exists=True, file_okay=False),
              help="Checkpoint directory written by `jaxvac train` (RUN/checkpoint).")
@click.option("--input", "inputs", required=True, multiple=True,
              help="Spectra: a directory (recursive), a glob in quotes, a text file of paths, or a "
                   "FITS/CSV table with a 'path' column. Repeat to combine. Or one store directory "
                   "written by `jaxvac pack` (same catalogue, no FITS parsing).")
@click.option("--on-bad-shard", type=click.Choice(["stop", "skip"]), default="stop", show_default=True,
              help="With a store: stop at a shard whose checksum fails, or skip it and list its inputs "
                   "as rejects ('bad shard: checksum mismatch').")
@click.option("--crossmatch", type=click.Path(exists=True, dir_okay=False), default=None,
              help="FITS/CSV table: obsid, Gaia source id, Ks, e_Ks, E(B-V) [, e_E(B-V)]. Without it "
                   "dist_phot and X/Y/Z are NaN with flag_dist_phot = 1.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Catalogue to write (.fits, or .parquet). Parts go to OUT.parts/ while running.")
@click.option("--config", default="dr8.toml", show_default=True, help="Recipe: a built-in config name (dr8, demo) or a path to a TOML file (a file wins over a name).")
@click.option("--batch-size", type=int, default=None, help="Spectra per device batch [config: run.batch_size].")
@click.option("--workers", type=int, default=None, help="Reader processes; 0 reads in this process [default: CPUs].")
@click.option("--parallel", type=click.Choice(["sharding", "pmap", "none"]), default="sharding", show_default=True,
              help="Use all local devices with a NamedSharding, with jax.pmap, or one device.")
@click.option("--shard", callback=_shard, default=None, metavar="I/N",
              help="Do share I of N (job arrays without jax.distributed); then `jaxvac merge OUT`.")
@click.option("--coordinator", default=None, metavar="HOST:PORT", help="jax.distributed coordinator address.")
@click.option("--num-processes", type=int, default=None, help="jax.distributed process count.")
@click.option("--process-id", type=int, default=None, help="jax.distributed process id.")
@click.option("--format", "fmt", type=click.Choice(["fits", "parquet"]), default=None,
              help="Catalogue format [default: from the suffix of OUT].")
@click.option("--min-snrg", type=float, default=None, help="Skip spectra with snrg <= this [config: 10].")
@click.option("--all-classes", is_flag=True, help="Process every CLASS, not only STAR.")
@click.option("--fresh", is_flag=True,
              help="Start over: discard the parts in OUT.parts/ (of this or another run); OUT, if it exists, is "
                   "replaced at the end.")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing OUT that no parts in OUT.parts/ record (another run's catalogue); parts "
                   "that match this run are still used. Without it (or --fresh) such an OUT is refused.")
@click.option("--keep-parts", is_flag=True, help="Keep OUT.parts/ after the merge (default: removed once OUT is written).")
@click.option("--force-lock", is_flag=True,
              help="Take over OUT's lock when a run on another host holds it (a job that crashed there). "
                   "A dead run's lock on this host is taken over without it.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def command(model, inputs, on_bad_shard, crossmatch, out, config, batch_size, workers, parallel, shard, coordinator,
            num_processes, process_id, fmt, min_snrg, all_classes, fresh, overwrite, keep_parts, force_lock,
            no_progress):
    """Stellar labels, errors, flags, distances and positions for every spectrum.

    Streams the spectra through the reader, the normalisation kernels and the checkpoint's label
    networks (the paper's 23 with dr8/demo; the catalogue has exactly the checkpoint's label
    columns) + the very-metal-poor net where [Fe/H] < -1.5 and Teff < 6500 K, then the error
    model, the training-range flags, Galactic coordinates, the spectro-photometric distance and
    X/Y/Z (with a_ks among the labels).
    Non-STAR spectra and snrg <= 10 go to the SKIPPED table with the reason; unreadable files go
    to the REJECTS table with the reason (inputs = rows + rejects + skipped, counted in the header). The run is resumable: rerun the same command after a crash and it
    continues where it stopped (--fresh to start over).

    \b
    Examples:
      jaxvac run --model demo/run/checkpoint --input demo/survey/spectra \\
                 --crossmatch demo/survey/crossmatch.fits --out demo/catalogue.fits --config demo
      jaxvac pack --input dr8/spectra --out dr8.store   # once: FITS -> store
      jaxvac run --model demo/run/checkpoint --input dr8.store --out catalogue.fits
      jaxvac run ... --shard 3/16          # job 3 of a 16-job array; then: jaxvac merge OUT
      srun -n 8 jaxvac run ...             # jax.distributed, detected from SLURM
    """
    from jaxvac.cli import on_interrupt
    from jaxvac.run.distributed import initialize
    from jaxvac.run.parts import parts_dir

    on_interrupt(f"progress saved in {parts_dir(out)}/; rerun the same command to continue")
    pid, nproc, barrier = initialize(coordinator, num_processes, process_id)
    from jaxvac.run.loop import run_catalog

    summary = run_catalog(
        model, list(inputs), out, crossmatch=crossmatch, config=config, batch_size=batch_size,
        workers=workers, parallel=parallel, shard=shard, fresh=fresh, fmt=fmt,
        progress=False if no_progress else None, min_snrg=min_snrg,
        classes=("STAR", "GALAXY", "QSO", "Unknown", "") if all_classes else None,
        process=(pid, nproc), barrier=barrier, on_bad_shard=on_bad_shard,
        overwrite=overwrite, keep_parts=keep_parts, force_lock=force_lock,
    )
    for note in summary.notes:
        click.echo(f"note: {note}", err=True)
    for line in summary.lines():
        click.echo(line)
    if shard[1] > 1:
        click.echo(f"share {shard[0]}/{shard[1]} done; after all shares: jaxvac merge {out}")
