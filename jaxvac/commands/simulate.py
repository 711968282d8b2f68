"""`jaxvac simulate --n N --out DIR`: a synthetic LAMOST survey whose truth is known."""

from __future__ import annotations

import click


def _fraction(ctx, param, value):
    if value is not None and not 0.0 <= value <= 1.0:
        raise click.BadParameter(f"must be a fraction in [0, 1], got {value}.")
    return value


class _SurveyOption(click.Option):
    """An option whose default is the same-named field of SurveyOptions (jaxvac/simulate/survey.py),
    the defaults' one home. Read only when needed (parsing, --help): `jaxvac --help` stays fast."""

    def get_default(self, ctx, call=True):
        from jaxvac.simulate.survey import SurveyOptions

        return getattr(SurveyOptions(), self.name)


@click.command(name="simulate")
@click.option("--n", "n", type=click.IntRange(min=1), required=True,
              help="Number of spectra to write (repeats, non-stars and corrupt files included).")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True,
              help="Output directory; created, and refused if it exists and is not empty.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed. The same seed, N and options give the same bytes.")
@click.option("--workers", cls=_SurveyOption, type=click.IntRange(min=1),
              help="Processes rendering files (default: one per core from 1,024 spectra up, else 1). "
                   "The output does not depend on it.")
@click.option("--repeat-fraction", cls=_SurveyOption, type=float, show_default=True, callback=_fraction,
              help="Share of star spectra that re-observe a star at another S/N (duplicates for "
                   "the error model).")
@click.option("--low-snr-fraction", cls=_SurveyOption, type=float, show_default=True, callback=_fraction,
              help="Share of star spectra that are repeats in poor conditions, at snrg 10-20 (at most "
                   "--repeat-fraction): stars of every kind in the lowest S/N bin, for checking Err_ there.")
@click.option("--nonstar-fraction", cls=_SurveyOption, type=float, show_default=True, callback=_fraction,
              help="Share of GALAXY / QSO / Unknown spectra (45/25/30 per cent).")
@click.option("--sentinel-fraction", cls=_SurveyOption, type=float, show_default=True, callback=_fraction,
              help="Share of star spectra whose Z and Z_ERR are the failed-pipeline -9999.")
@click.option("--corrupt-fraction", cls=_SurveyOption, type=float, show_default=True, callback=_fraction,
              help="Share of files damaged on purpose (truncated, garbage, broken gzip, no END, "
                   "empty, wrong shape): a reader must reject each with a reason.")
@click.option("--table-fraction", cls=_SurveyOption, type=float, show_default=True, callback=_fraction,
              help="Share of files in the DR9+ table layout (the rest: DR5-DR8 image layout).")
@click.option("--gzip-fraction", cls=_SurveyOption, type=float, show_default=True, callback=_fraction,
              help="Share of files written as .fits.gz.")
@click.option("--test-fraction", cls=_SurveyOption, type=float, show_default=True, callback=_fraction,
              help="Share of stars held out in catalogs/test.fits (never in a training set).")
@click.option("--train-scale", cls=_SurveyOption, type=click.FloatRange(min=0.0, min_open=True), show_default=True,
              help="Training-set sizes as a multiple of the paper's (1,281 PASTEL, 8,753 APOGEE, "
                   "6,000 LGMWAS stars), capped by the stars that qualify.")
@click.option("--halo-fraction", cls=_SurveyOption, type=float, show_default=True, callback=_fraction,
              help="Mean share of halo stars (more means more very metal-poor stars).")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar with rate and ETA (default: when stderr is a terminal).")
def command(n, out, seed, workers, repeat_fraction, low_snr_fraction, nonstar_fraction, sentinel_fraction, corrupt_fraction,
            table_fraction, gzip_fraction, test_fraction, train_scale, halo_fraction, progress):
    """Write a synthetic LAMOST LRS survey with known labels.

    \b
    DIR/spectra/<PLANID>/spec-LMJD-PLANID_spSS-FFF.fits[.gz] (or <obsid>.fits[.gz])
        LAMOST files in the DR8 image and DR9+ table layouts, with real-looking headers.
    DIR/catalogs/train_pastel.fits, train_apogee.fits, train_lgmwas.fits
        training catalogues shaped like the paper's three sets: obsid, path, snrg, each label
        and Err_<label> (NaN where unknown), labels with reference-catalogue noise.
    DIR/catalogs/test.fits   held-out stars with all 23 true labels and feh_VMP.
    DIR/crossmatch.fits      obsid, gaia_source_id, Ks, e_Ks, EBV, e_EBV.
    DIR/truth.fits           every spectrum's true values (labels, rv, distance, class, flags).
    DIR/survey.json          seed, n, options, jaxvac version, counts.

    The stars come from a simple Galactic population (thin/thick disc, halo down to
    [Fe/H] = -4, red clump, C and N changing along the giant branch); the spectra from a
    parametric model whose line strengths follow all labels (docs/simulator.md says what is
    and is not modelled).

    \b
    Examples:
      jaxvac simulate --n 2000 --out sim/
      jaxvac simulate --n 20000 --out demo/ --seed 7 --workers 2
      jaxvac simulate --n 500 --out bad/ --corrupt-fraction 0.1 --sentinel-fraction 0.05
    """
    from jaxvac.cli import on_interrupt
    from jaxvac.errors import JaxvacError
    from jaxvac.simulate import simulate_survey

    on_interrupt(f"{out} is incomplete: delete it, then rerun the same command")
    try:
        info = simulate_survey(out, n, seed, progress=progress, workers=workers, repeat_fraction=repeat_fraction,
                               low_snr_fraction=low_snr_fraction,
                               nonstar_fraction=nonstar_fraction, sentinel_fraction=sentinel_fraction,
                               corrupt_fraction=corrupt_fraction, table_fraction=table_fraction,
                               gzip_fraction=gzip_fraction, test_fraction=test_fraction,
                               train_scale=train_scale, halo_fraction=halo_fraction)
    except (ValueError, FileExistsError) as e:  # bad options or a non-empty --out: one line (exit 2)
        raise JaxvacError(str(e)) from None
    c = info.counts
    click.echo(f"wrote {c['n_spectra']} spectra of {c['n_stars']} stars to {info.out_dir} in {info.seconds:.1f} s "
               f"({c['n_spectra'] / max(info.seconds, 1e-9):.0f} spectra/s)")
    click.echo(f"  repeats {c['n_repeats']}, non-stars {c['n_nonstar']}, sentinels {c['n_sentinel']}, "
               f"corrupt {c['n_corrupt']}, test stars {c['n_test_stars']}")
    for name, rows in info.catalog_sizes.items():
        click.echo(f"  {name}: {rows} rows")
