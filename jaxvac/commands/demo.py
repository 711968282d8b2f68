"""`jaxvac demo`: simulate, train, run, report and score against truth (what `make demo` runs)."""

from __future__ import annotations

import click


@click.command(name="demo")
@click.option("--out", default="demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the survey, the trained networks, the catalogue and the report.")
@click.option("--n", default=20000, show_default=True, help="Spectra in the simulated survey.")
@click.option("--seed", default=1, show_default=True, help="Seed of the simulated survey.")
@click.option("--config", default="demo.toml", show_default=True, help="Training and run recipe: a built-in config name (demo, dr8) or a path to a TOML file.")
@click.option("--workers", type=int, default=None, help="Processes for simulating and reading [default: CPUs].")
def command(out, n, seed, config, workers):
    """The whole method end to end on a synthetic LAMOST survey with known labels.

    \b
    1. simulate N spectra in the real FITS layouts, with training catalogues and a cross-match
    2. train the 23 networks and the very-metal-poor network (built-in config demo: smaller nets)
    3. run the catalogue over every spectrum (errors, flags, distances, X/Y/Z)
    4. write the report (Kiel diagram, CMD, maps, histograms, flag fractions)
    5. print per-label bias and scatter against the simulator's truth on held-out stars

    \b
    Example:
      jaxvac demo --out demo --n 20000
    """
    from jaxvac.cli import on_interrupt
    from jaxvac.config import load_config
    from jaxvac.demo import run_demo

    on_interrupt(f"finished steps stay in {out}/ and a rerun of the same command reuses them")
    load_config(config)  # a config that cannot be found or read stops here, before the survey is written
    run_demo(out, n=n, seed=seed, config=config, workers=workers, echo=click.echo)
