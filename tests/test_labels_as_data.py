"""Labels are data (issue 11): a config lists the labels and sets; the checkpoint records them;
`jaxvac run` writes exactly their columns.

End to end on a simulated survey, as a user with one catalogue of their own would go:
- a table keyed by obsid, spectra under the official LAMOST file names (found through the LRS
  catalogue), labels a config names itself (a "GALAH" set: Teff_GALAH, logg_GALAH, feh_GALAH):
  `trainset` -> `train` -> a checkpoint with exactly 3 labels and no VMP network -> `run` -> a
  catalogue whose label columns are exactly those 3 (+ Err_, flag_), in the config's units;
- the PASTEL layout matched by RA/Dec, the paper's PASTEL set alone: 3 labels and the VMP
  network (its two labels exist), catalogue columns the 3 + feh_VMP.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import subprocess
import sys

import fitsio
import numpy as np
import pytest

from jaxvac.config import load_config
from jaxvac.io.spectra_index import build_index, read_index
from jaxvac.io.tables import read_table
from jaxvac.labels import PAPER, LabelError, LabelSchema
from jaxvac.run.catalog import read_catalog
from jaxvac.train.checkpoint import read_metadata

from lrs_table import write_lrs_catalogue  # tests/lrs_table.py

TINY = """base = "demo.toml"
[model]
hidden = [24, 12]
vmp_hidden = [8]
ood_components = 4
[train]
batch_size = 32
learning_rate = 0.003
max_epochs = 30
patience = 30
val_fraction = 0.2
workers = 0
test_catalog = ""
data_dir = "{data}"
cache_dir = "{cache}"
[train.catalogs]
{catalogs}
[curation]
apply_cuts = false
binary_removal = false
clip_sigma = 0.0
[run]
batch_size = 32
part_batches = 4
workers = 0
{extra}
"""

GALAH = """[labels]
GALAH = [
  { name = "Teff_GALAH", unit = "K", range = [3000.0, 9000.0], description = "effective temperature (GALAH DR3)" },
  { name = "logg_GALAH", unit = "dex" },
  { name = "feh_GALAH", unit = "dex", description = "[Fe/H] (GALAH DR3)" },
]
"""

# catalogue columns that are not labels (jaxvac.run.catalog), without a distance label
NON_LABEL = {"gaiaid", "obsid", "designation", "ra_obs", "dec_obs", "gl", "gb", "snrg", "rv", "Err_rv", "EBV",
             "uqflag", "ood_score", "qflag"}


def _jaxvac(*args, cwd=None):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    r = subprocess.run([sys.executable, "-m", "jaxvac.cli", *map(str, args)], capture_output=True, text=True,
                       env=env, cwd=cwd, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout + r.stderr


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    from jaxvac.simulate import simulate_survey

    out = tmp_path_factory.mktemp("labels") / "survey"
    simulate_survey(out, 500, seed=21, workers=1, progress=False, corrupt_fraction=0.0, nonstar_fraction=0.0)
    build_index(out / "spectra", out / "index.fits", workers=0)
    return out


def _truth(survey) -> dict[int, tuple[float, float, float]]:
    """obsid -> true (Teff, logg, [Fe/H]) of the simulated stars."""
    t = read_table(survey / "truth.fits")
    return {int(o): (a, b, c) for o, a, b, c in zip(t["obsid"], t["Teff_PASTEL"], t["logg_PASTEL"], t["feh_PASTEL"])}


def _label_columns(names) -> set[str]:
    return set(names) - NON_LABEL


def _triplets(*labels) -> set[str]:
    return {c for n in labels for c in (n, f"Err_{n}", f"flag_{n}")}


def test_own_labels_keyed_by_obsid_with_official_file_names(survey, tmp_path):
    # the official LRS catalogue (obsid, lmjd, planid, spid, fiberid) -> spec-*.fits.gz under --data
    idx = read_index(survey / "index.fits")
    write_lrs_catalogue(idx, tmp_path / "lrs.csv")
    official = np.array([os.path.basename(p).startswith("spec-") for p in idx["path"]])
    assert official.mean() > 0.8  # the simulator names the others <obsid>.fits, as some releases do
    ready = read_table(survey / "catalogs/train_pastel.fits")
    with open(tmp_path / "mine.csv", "w", newline="") as f:  # the user's own catalogue, keyed by obsid
        w = csv.writer(f)
        w.writerow(["LAMOST_OBSID", "TEFF", "LOGG", "FEH"])
        for row in zip(ready["obsid"], ready["Teff_PASTEL"], ready["logg_PASTEL"], ready["feh_PASTEL"]):
            w.writerow([int(row[0]), *(repr(float(v)) for v in row[1:])])
    cfg = tmp_path / "galah.toml"
    cfg.write_text(TINY.format(data=tmp_path, cache=tmp_path / "cache", catalogs='GALAH = "galah.fits"', extra=GALAH))

    _jaxvac("trainset", tmp_path / "mine.csv", "--out", tmp_path / "galah.fits", "--index", tmp_path / "lrs.csv",
            "--data", survey, "--config", cfg, "--map", "LAMOST_OBSID=obsid", "--map", "TEFF=Teff_GALAH",
            "--map", "LOGG=logg_GALAH", "--map", "FEH=feh_GALAH")
    _jaxvac("train", "--config", cfg, "--out", tmp_path / "run", "--no-progress")
    meta = read_metadata(tmp_path / "run" / "checkpoint")
    assert meta["labels"] == ["Teff_GALAH", "logg_GALAH", "feh_GALAH"] and meta["vmp"] is None
    assert meta["units"] == ["K", "dex", "dex"] and meta["training_sets"] == ["GALAH"] * 3
    assert len(meta["standardization"]["y_mean"]) == 3 and set(meta["error_model"]["rows"]) == {
        "Teff_GALAH", "logg_GALAH", "feh_GALAH"}

    out = tmp_path / "galah_cat.fits"
    _jaxvac("run", "--model", tmp_path / "run" / "checkpoint", "--input", survey / "spectra", "--out", out,
            "--config", cfg, "--no-progress")
    rows, _ = read_catalog(out)
    assert _label_columns(rows.dtype.names) == _triplets("Teff_GALAH", "logg_GALAH", "feh_GALAH")
    h = fitsio.read_header(str(out), "CATALOG")
    units = {h[f"TTYPE{i}"]: (h.get(f"TUNIT{i}"), h.get(f"TCOMM{i}")) for i in range(1, h["TFIELDS"] + 1)}
    assert units["Teff_GALAH"][0] == "K" and "dex" in str(units["feh_GALAH"])
    # the networks learnt the labels they were given: predictions follow the simulator's truth
    truth = _truth(survey)
    have = [(r["Teff_GALAH"], truth[int(r["obsid"])][0]) for r in rows if int(r["obsid"]) in truth]
    pred, true = np.array(have).T
    assert len(pred) > 50 and np.corrcoef(pred, true)[0, 1] > 0.8
    assert np.all(np.isfinite(rows["Err_Teff_GALAH"])) and set(np.unique(rows["flag_Teff_GALAH"])) <= {0, 1}


def test_paper_pastel_set_alone_matched_by_sky_keeps_its_vmp_network(survey, tmp_path):
    from jaxvac.train.trainset import build_trainset

    s = build_trainset(survey / "catalogs/ref_pastel.fits", tmp_path / "pastel.fits", index=survey / "index.fits",
                       fmt="pastel", by="sky")
    assert s.by == "sky" and s.rows_out > 50
    cfg = tmp_path / "pastel.toml"
    cfg.write_text(TINY.format(data=tmp_path, cache=tmp_path / "cache", catalogs='PASTEL = "pastel.fits"', extra=""))
    _jaxvac("train", "--config", cfg, "--out", tmp_path / "run", "--no-progress")
    meta = read_metadata(tmp_path / "run" / "checkpoint")
    assert meta["labels"] == ["Teff_PASTEL", "logg_PASTEL", "feh_PASTEL"]
    assert meta["vmp"]["name"] == "feh_VMP" and meta["vmp"]["feh_label"] == "feh_PASTEL"
    out = tmp_path / "pastel_cat.parquet"
    _jaxvac("run", "--model", tmp_path / "run" / "checkpoint", "--input", survey / "spectra", "--out", out,
            "--config", cfg, "--no-progress", "--crossmatch", survey / "crossmatch.fits")
    rows, _ = read_catalog(out)
    # no a_ks: no dist_phot, X, Y, Z (with a cross-match given)
    assert _label_columns(rows.dtype.names) == _triplets("Teff_PASTEL", "logg_PASTEL", "feh_PASTEL", "feh_VMP")
    cand = np.isfinite(rows["feh_VMP"])
    assert np.all((rows["feh_PASTEL"][cand] < -1.5) & (rows["Teff_PASTEL"][cand] < 6500))


# ---- the schema itself (no training) ----------------------------------------------------------


def _cfg(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text('base = "dr8.toml"\n' + text)
    return load_config(p)


def test_the_sets_trained_are_the_keys_of_train_catalogs(tmp_path):
    assert LabelSchema.from_config(load_config("dr8")) == PAPER and len(PAPER.names) == 23
    s = _cfg(tmp_path, '[train.catalogs]\nAPOGEE = "a.fits"\nPASTEL = "p.fits"\n')
    s = LabelSchema.from_config(s)
    assert s.sets == ("APOGEE", "PASTEL") and s.names[:2] == ("logg_APOGEE", "feh_APOGEE") and len(s.names) == 9
    assert s.vmp_indices() == (s.index("feh_PASTEL"), s.index("Teff_PASTEL"), -1.5, 6500.0)
    no_vmp = LabelSchema.from_config(_cfg(tmp_path, '[train.catalogs]\nAPOGEE = "a.fits"\n'))
    assert no_vmp.vmp is None and no_vmp.vmp_indices() is None
    off = LabelSchema.from_config(_cfg(tmp_path, '[train.catalogs]\nPASTEL = "p.fits"\n[vmp]\nenabled = false\n'))
    assert off.vmp is None and off.names == ("Teff_PASTEL", "logg_PASTEL", "feh_PASTEL")


def test_metadata_round_trip_and_checkpoints_from_before(tmp_path):
    s = LabelSchema.from_config(_cfg(tmp_path, '[train.catalogs]\nGALAH = "g.fits"\n' + GALAH))
    assert s.names == ("Teff_GALAH", "logg_GALAH", "feh_GALAH") and s.ranges()[1] == [-np.inf, np.inf]
    assert LabelSchema.from_metadata(s.to_metadata()) == s
    # format-2 checkpoints written before labels were data: the paper's 23 and its VMP rule
    old = {k: v for k, v in PAPER.to_metadata().items() if k != "descriptions"}
    old["vmp"] = {"name": "feh_VMP", "unit": "dex", "range": [-3.8, -1.0], "train_feh_max": -1.0}
    assert LabelSchema.from_metadata(old) == PAPER
    sub = dataclasses.replace(PAPER, labels=PAPER.labels[:3])
    assert LabelSchema.from_metadata(sub.to_metadata()).vmp_indices() == (2, 0, -1.5, 6500.0)


@pytest.mark.parametrize("text, match", [
    ('[train.catalogs]\nGALAH = "g.fits"\n', r"\[train.catalogs\] GALAH has no label list; add \[labels\] GALAH"),
    ('[train.catalogs]\nX = "g.fits"\n[labels]\nX = [{ name = "snrg", unit = "" }]\n', r"labels.X\[0\].name 'snrg' is a catalogue column"),
    ('[train.catalogs]\nX = "g.fits"\n[labels]\nX = [{ name = "Teff_PASTEL", unit = "K" }]\nY = []\n', None),
    ('[train.catalogs]\nX = "g.fits"\nPASTEL = "p.fits"\n[labels]\nX = [{ name = "Teff_PASTEL", unit = "K" }]\n', r"'Teff_PASTEL' is listed twice"),
    ('[train.catalogs]\nX = "g.fits"\n[labels]\nX = [{ name = "T", unit = "K", range = [5.0, 1.0] }]\n', r"labels.X\[0\].range must be \[lo, hi\] with lo < hi"),
    ('[train.catalogs]\nX = "g.fits"\n[labels]\nX = [{ name = "T", units = "K" }]\n', r"labels.X\[0\] has unknown key\(s\) \['units'\]"),
])
def test_label_errors_name_the_key(tmp_path, text, match):
    cfg = _cfg(tmp_path, text)
    if match is None:
        assert LabelSchema.from_config(cfg).names == ("Teff_PASTEL",)
        return
    with pytest.raises(LabelError, match=match):
        LabelSchema.from_config(cfg)
