"""`jaxvac trainset REF --index INDEX --out TRAIN.fits`: a training catalogue from a reference catalogue."""

from __future__ import annotations

import click


@click.command(name="trainset")
@click.argument("reference", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Training catalogue to write (*.fits or *.parquet), in the layout `jaxvac train` reads.")
@click.option("--format", "fmt", type=click.Choice(["apogee", "pastel", "gaia", "generic"]), default="generic",
              show_default=True, help="The reference catalogue's published layout (column names and conversions).")
@click.option("--index", "index", default=None,
              help="Spectra index from `jaxvac index`, or the official LAMOST LRS catalogue (with --data).")
@click.option("--data", "data_dir", default=None, type=click.Path(file_okay=False),
              help="Folder of the spectra an LRS catalogue names (any depth), or of relative paths in the reference.")
@click.option("--map", "maps", multiple=True, metavar="SRC=DEST",
              help="Take DEST (a label, Err_<label>, a curation column, obsid/path/ra/dec/id, or a slot of the "
                   "format) from column SRC. Repeatable.")
@click.option("--by", type=click.Choice(["auto", "path", "obsid", "sky"]), default="auto", show_default=True,
              help="How rows find spectra; auto: path, else obsid, else RA/Dec ([match] radius_arcsec, repeats).")
@click.option("--config", "config_path", default="dr8", show_default=True,
              help="Config for [match], [trainset] and [photometry] (a built-in name or a TOML path).")
@click.option("--relative-to", default=None, type=click.Path(file_okay=False),
              help="Write paths relative to this folder (e.g. the --data of `jaxvac train`) instead of absolute.")
def command(reference, out, fmt, index, data_dir, maps, by, config_path, relative_to):
    """Build a training catalogue from a reference catalogue in its published layout.

    Maps the reference's columns to jaxvac's label names (Teff_PASTEL, logg_APOGEE, a_gg, ...
    and Err_<label>), converts where needed (APOGEE bad-star bits dropped; PASTEL
    determinations of one star -> their median; Gaia parallax + apparent magnitudes + E(B-V)
    -> absolute magnitudes, dist, Err_dist, gb), finds each star's spectra in the index and
    writes obsid, path, snrg, the labels, the curation columns, ref_id, ref_row (and sep_arcsec).
    The paper's cuts are not applied here: `jaxvac train` applies [curation].

    \b
    Examples:
      jaxvac index dr8/spectra --out index.fits
      jaxvac trainset allStar-dr17-synspec_rev1.fits --format apogee --index index.fits --out train_apogee.fits
      jaxvac trainset pastel.fits --format pastel --index index.fits --out train_pastel.fits
      jaxvac trainset gaia_2mass_wise.fits --format gaia --index index.fits --out train_lgmwas.fits
      jaxvac trainset galah.csv --index index.fits --out train_galah.fits \\
          --map ra=ra --map dec=dec --map teff=Teff_PASTEL --map e_teff=Err_Teff_PASTEL
      jaxvac trainset mine.csv --index dr8_v2.0_LRS_catalogue.fits --data dr8/ --map obsid=obsid \\
          --map feh=feh_PASTEL --out train.fits
    """
    from jaxvac.config import load_config
    from jaxvac.train.trainset import build_trainset, parse_maps

    summary = build_trainset(reference, out, index=index, data_dir=data_dir, fmt=fmt, maps=parse_maps(maps), by=by,
                             cfg=load_config(config_path), relative_to=relative_to)
    for line in summary.lines():
        click.echo(line)
