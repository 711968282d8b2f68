"""Issue 11 item 1, the run side: a catalogue has exactly the checkpoint's labels (+ Err_, flag_),
their units, feh_VMP only with a VMP rule and the distance/position columns only with
[astrometry] ks_label; the paper's schema keeps SPEC.md's columns exactly."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest

from jaxvac.config import ConfigError, load_config, recipe
from jaxvac.labels import PAPER, Label, LabelSchema
from jaxvac.run.astrometry import AstrometryConfig
from jaxvac.run.catalog import (CATALOG_DTYPE, catalog_columns, catalog_dtype, catalog_parameters, catalog_units,
                                empty_catalog, read_catalog, read_units, write_catalog)
from jaxvac.run.rows import assemble_rows
from jaxvac.run.uncertainties import ErrorModel, run_error_model, run_ranges

HEAD = ["gaiaid", "obsid", "designation", "ra_obs", "dec_obs", "gl", "gb", "snrg", "rv", "Err_rv"]
TAIL = ["ood_score", "qflag"]


def _with_err(names):
    return [x for n in names for x in (n, f"Err_{n}")]


# SPEC.md "The catalogue", written out by hand: the paper's columns in their order.
PAPER_BODY = ["Teff_PASTEL", "logg_PASTEL", "logg_APOGEE", "feh_PASTEL", "feh_APOGEE", "feh_VMP", "MH_APOGEE",
              "AFE_APOGEE", "CFE_APOGEE", "NFE_APOGEE"]
PAPER_BANDS = ["a_gg", "a_bp", "a_rp", "a_j", "a_h", "a_ks", "a_w1", "a_w2", "a_bap", "a_vap", "a_rap", "a_gsd",
               "a_rsd", "a_isd"]
PAPER_COLUMNS = (HEAD + _with_err(PAPER_BODY) + ["dist_phot", "Err_dist_phot"] + _with_err(PAPER_BANDS)
                 + ["X", "Y", "Z", "Err_X", "Err_Y", "Err_Z", "EBV", "uqflag"]
                 + [f"flag_{p}" for p in PAPER_BODY + ["dist_phot"] + PAPER_BANDS] + TAIL)

THREE = dataclasses.replace(PAPER, labels=PAPER.labels[:3], vmp=None)  # Teff, logg, [Fe/H] of PASTEL
GALAH = LabelSchema(labels=(Label("Teff_GALAH", "K", "GALAH", 3000.0, 8000.0, "effective temperature"),
                            Label("logg_GALAH", "dex", "GALAH", 0.0, 5.5, "surface gravity"),
                            Label("feh_GALAH", "dex", "GALAH", -4.0, 1.0, "[Fe/H]"),
                            Label("MgFe_GALAH", "dex", "GALAH", -math.inf, math.inf, "[Mg/Fe]")), vmp=None)


def test_the_paper_schema_gives_spec_columns_exactly():
    assert list(catalog_dtype(PAPER).names) == PAPER_COLUMNS
    assert catalog_dtype(PAPER) == CATALOG_DTYPE
    assert recipe()["astrometry"]["ks_label"] == AstrometryConfig().ks_label == "a_ks"
    units = {n: u for n, _, u, _ in catalog_columns(PAPER)}
    assert units["Teff_PASTEL"] == "K" and units["Err_feh_VMP"] == "dex" and units["a_ks"] == "mag"


def test_three_labels_give_exactly_their_columns():
    names = list(catalog_dtype(THREE).names)
    body = ["Teff_PASTEL", "logg_PASTEL", "feh_PASTEL"]
    assert names == HEAD + _with_err(body) + ["EBV", "uqflag"] + [f"flag_{n}" for n in body] + TAIL
    # from a config that lists PASTEL only and has no [vmp]: the same schema, the same columns
    cfg = {"labels": {"PASTEL": recipe()["labels"]["PASTEL"]}, "train": {"catalogs": {"PASTEL": "p.fits"}}}
    assert list(catalog_dtype(LabelSchema.from_config(cfg)).names) == names
    # a VMP rule adds feh_VMP where the paper puts it; a_ks alone adds the distance and positions
    cfg["vmp"] = recipe()["vmp"]
    with_vmp = list(catalog_dtype(LabelSchema.from_config(cfg)).names)
    assert with_vmp[10:18] == _with_err(body + ["feh_VMP"]) and "flag_feh_VMP" in with_vmp and "dist_phot" not in with_vmp
    ks = dataclasses.replace(THREE, labels=THREE.labels + (PAPER.labels[PAPER.index("a_ks")],))
    assert catalog_parameters(ks) == (*body, "dist_phot", "a_ks")
    assert {"X", "Err_Z", "flag_dist_phot"} <= set(catalog_dtype(ks).names)
    assert "dist_phot" not in catalog_dtype(ks, ks_label=None).names


def test_order_rule_for_a_mixed_schema():
    mixed = LabelSchema(labels=GALAH.labels[:2] + PAPER.labels[:3] + (PAPER.labels[PAPER.index("a_gg")],)
                        + (Label("a_u", "mag", "X", -1.0, 9.0, ""),) + GALAH.labels[2:], vmp=PAPER.vmp)
    assert catalog_parameters(mixed) == ("Teff_PASTEL", "logg_PASTEL", "feh_PASTEL", "feh_VMP", "Teff_GALAH",
                                         "logg_GALAH", "feh_GALAH", "MgFe_GALAH", "a_gg", "a_u")


@pytest.mark.parametrize("suffix", [".fits", ".parquet"])
def test_a_galah_catalogue_round_trips_with_its_units(tmp_path, suffix):
    from astropy.table import Table

    dtype = catalog_dtype(GALAH)
    rows = empty_catalog(3, dtype)
    rows["obsid"] = [1, 2, 3]
    rows["Teff_GALAH"] = [5000.0, 6000.0, np.nan]
    rows["MgFe_GALAH"] = [0.1, -0.2, 0.3]
    rows["designation"] = b"J1"
    with pytest.raises(ValueError, match="'Teff_GALAH' has no known unit"):
        write_catalog(tmp_path / f"x{suffix}", rows)
    p = write_catalog(tmp_path / f"cat{suffix}", rows, units=GALAH.units)
    back, rej = read_catalog(p)
    assert back.dtype == dtype and len(rej) == 0
    np.testing.assert_array_equal(back["Teff_GALAH"], rows["Teff_GALAH"])
    np.testing.assert_array_equal(back["flag_MgFe_GALAH"], [1, 1, 1])
    units = read_units(p)
    assert units == catalog_units(dtype, GALAH.units)
    assert (units["Teff_GALAH"], units["Err_Teff_GALAH"], units["logg_GALAH"], units["MgFe_GALAH"]) == ("K", "K", "dex", "dex")
    if suffix == ".fits":
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no UnitsWarning: dex is a TCOMM, not a TUNIT
            t = Table.read(p, hdu="CATALOG")
        assert list(t.colnames) == list(dtype.names)
        assert str(t["Teff_GALAH"].unit) == "K" and t["logg_GALAH"].unit is None
        assert t.meta[f"TCOMM{list(dtype.names).index('logg_GALAH') + 1}"] == "unit: dex"
    else:  # the units in the schema metadata, as a Python literal {column: unit}
        import ast

        import pyarrow.parquet as pq

        meta = pq.read_schema(p).metadata
        assert pq.read_schema(p).names == list(dtype.names)
        assert ast.literal_eval(meta[b"units"].decode())["MgFe_GALAH"] == "dex"


def _meta_rows(n):
    meta = np.zeros(n, dtype=[("obsid", "i8"), ("designation", "U20"), ("ra_obs", "f8"), ("dec_obs", "f8"),
                              ("ra", "f8"), ("dec", "f8"), ("snrg", "f4"), ("rv", "f4"), ("rv_err", "f4")])
    meta["obsid"] = np.arange(n) + 100
    meta["designation"] = "J0"
    meta["ra_obs"], meta["dec_obs"] = 10.0, 20.0
    meta["ra"], meta["dec"] = np.nan, np.nan
    meta["snrg"] = [10.0, 40.0, 200.0][:n]
    return meta


def test_errors_and_flags_of_a_non_paper_label_from_the_checkpoint_rows():
    teff = {"a": 0.5, "b": 1.0, "c": 20.0, "sigma_m": 60.0, "scale": 100.0}
    rows_ck = {"Teff_GALAH": teff, "logg_GALAH": {"a": 0.05, "b": 0.5, "c": 0.4, "sigma_m": 0.1},
               "feh_GALAH": {"a": 0.02, "b": 1.0, "c": 1.0, "sigma_m": 0.05},
               "MgFe_GALAH": {"a": 0.0, "b": 0.0, "c": 0.0, "sigma_m": 0.07, "status": "constant"}}
    meta = {**GALAH.to_metadata(), "error_model": {"kind": "checkpoint", "rows": rows_ck, "feh_vmp_sigma": 0.2},
            "training_ranges": {"labels": {"Teff_GALAH": [4000.0, 7000.0], "MgFe_GALAH": ["-inf", "inf"]}}}
    cfg = load_config("dr8")
    errors, kind = run_error_model(cfg, meta)
    assert kind.startswith("checkpoint:") and errors.labels == GALAH.names and errors.vmp_name is None
    ranges, vmp_range, how = run_ranges(cfg, meta)
    assert how == "checkpoint" and vmp_range is None
    np.testing.assert_array_equal(ranges, [[4000, 7000], [0, 5.5], [-4, 1], [-np.inf, np.inf]])
    y = np.array([[5000.0, 4.0, -0.5, 0.1], [7500.0, 6.0, np.nan, 9.0], [3900.0, 1.0, 0.0, -9.0]])
    out = assemble_rows(_meta_rows(3), y, np.full(3, np.nan), ranges=ranges, vmp_range=vmp_range, errors=errors,
                        crossmatch=None, astrometry=AstrometryConfig(), schema=GALAH)
    assert out.dtype == catalog_dtype(GALAH)
    snr = np.array([10.0, 40.0, 200.0])
    want_t = np.hypot(100 * (0.5 + 20 / snr), 60.0)  # 2500/10 -> hypot(250, 60) = 257.1 K at snrg 10
    np.testing.assert_allclose(out["Err_Teff_GALAH"], want_t, rtol=1e-6)
    assert out["Err_Teff_GALAH"][0] == pytest.approx(257.099, abs=1e-3)
    np.testing.assert_allclose(out["Err_MgFe_GALAH"], 0.07, rtol=1e-6)
    assert np.isnan(out["Err_feh_GALAH"][1])  # no estimate, no error
    assert out["flag_Teff_GALAH"].tolist() == [0, 1, 1]
    assert out["flag_logg_GALAH"].tolist() == [0, 1, 0]
    assert out["flag_feh_GALAH"].tolist() == [0, 1, 0]
    assert out["flag_MgFe_GALAH"].tolist() == [0, 0, 0]  # no range: never outside
    # source = "config": the ranges configured for the labels (stored in the checkpoint), -inf/inf where none
    cfg_c = {**cfg, "errors": {**cfg["errors"], "source": "config"}}
    ranges_c, _, how = run_ranges(cfg_c, {**meta, "ranges": [[3000.0, 8000.0], [0, 5.5], [-4, 1], ["-inf", "inf"]]})
    assert how == "config" and ranges_c[0].tolist() == [3000.0, 8000.0] and ranges_c[3].tolist() == [-np.inf, np.inf]


def test_a_label_without_any_error_row_names_the_key_and_the_fix():
    cfg = load_config("dr8")
    meta = {**GALAH.to_metadata(), "error_model": {"kind": "checkpoint", "rows": {
        "Teff_GALAH": {"a": 1.0, "b": 1.0, "c": 1.0, "sigma_m": 1.0}}, "feh_vmp_sigma": 0.2}}
    with pytest.raises(ConfigError, match=r"no row for \['logg_GALAH', 'feh_GALAH', 'MgFe_GALAH'\].*"
                                          r"\[errors.coefficients\] logg_GALAH = \{ a = "):
        run_error_model(cfg, meta)
    with pytest.raises(ConfigError, match=r"\[errors.coefficients\] Teff_GALAH is missing .*carries no error model"):
        run_error_model(cfg, GALAH.to_metadata())
    # the paper's labels of a 3-label model fall back to the config's Table 2 rows
    model, kind = run_error_model(cfg, THREE.to_metadata())
    assert kind.startswith("config:") and model.names == THREE.names
    assert model.row("Teff_PASTEL") == ErrorModel.default().row("Teff_PASTEL")


def test_config_coefficients_for_labels_of_the_config(tmp_path):
    base = load_config("dr8.toml")["_source"][-1]
    p = tmp_path / "galah.toml"
    p.write_text(f'base = "{base}"\n[labels]\nGALAH = [{{ name = "Teff_GALAH", unit = "K" }}, '
                 f'{{ name = "MgFe_GALAH", unit = "dex" }}]\n[errors.coefficients]\n'
                 f'Teff_GALAH = {{ a = 0.3, b = 1.0, c = 30.0, sigma_m = 80.0, scale = 100.0 }}\n')
    cfg = load_config(p)
    assert ErrorModel.from_config(cfg) == ErrorModel.default()  # the paper's 23: unchanged
    m = ErrorModel.from_config(cfg, ["Teff_GALAH"], vmp=None)
    assert m.sigma(np.array([30.0]))[0, 0] == pytest.approx(np.hypot(100 * (0.3 + 1.0), 80.0))
    with pytest.raises(ConfigError, match=r"lacks \['MgFe_GALAH'\].*\[errors.coefficients\] MgFe_GALAH = "):
        ErrorModel.from_config(cfg, ["Teff_GALAH", "MgFe_GALAH"], vmp=None)
    assert ErrorModel.from_config(cfg, ["Teff_GALAH", "MgFe_GALAH"], vmp=None, partial=True).names == ("Teff_GALAH",)
    p.write_text(p.read_text() + "Teff_GALA = { a = 0.3, b = 1.0, c = 30.0, sigma_m = 80.0 }\n")
    with pytest.raises(ConfigError, match=r"unknown label\(s\) \['Teff_GALA'\]"):
        ErrorModel.from_config(load_config(p), ["Teff_GALAH"], vmp=None)


def test_parts_keep_the_run_columns_and_units(tmp_path):
    from jaxvac.run.catalog import REJECT_DTYPE, SKIPPED_DTYPE
    from jaxvac.run.parts import PartsError, PartStore, collect_parts, parts_units

    dtype = catalog_dtype(GALAH)
    units = catalog_units(dtype, GALAH.units)
    store = PartStore(tmp_path / "p", {"run": 1}, dtype=dtype, units=units)
    rows = empty_catalog(2, dtype)
    rows["Teff_GALAH"] = [4500.0, 5500.0]
    none = np.zeros(0, np.int64)
    store.write(rows[1:], np.array([1]), np.zeros(0, REJECT_DTYPE), none, np.zeros(0, SKIPPED_DTYPE), none)
    store.write(rows[:1], np.array([0]), np.zeros(0, REJECT_DTYPE), none, np.zeros(0, SKIPPED_DTYPE), none)
    got, _, _ = collect_parts(tmp_path / "p")
    assert got.dtype == dtype and got["Teff_GALAH"].tolist() == [4500.0, 5500.0]
    assert parts_units(tmp_path / "p") == units
    PartStore(tmp_path / "p", {"run": 1}).write(empty_catalog(1), np.array([2]), np.zeros(0, REJECT_DTYPE), none,
                                                np.zeros(0, SKIPPED_DTYPE), none)
    with pytest.raises(PartsError, match="different column layouts"):
        collect_parts(tmp_path / "p")


@pytest.fixture(scope="module")
def three_label_run(tmp_path_factory):
    """run_catalog end to end with random networks for Teff/logg/[Fe/H] only (no VMP network)."""
    from jaxvac.run.loop import run_catalog
    from jaxvac.simulate import simulate_survey
    from jaxvac.train import checkpoint

    tmp = tmp_path_factory.mktemp("three")
    survey = tmp / "survey"
    simulate_survey(survey, 24, seed=5, workers=1, progress=False)
    ck = checkpoint.save_random(tmp / "ck", (8,), (4,), schema=THREE)
    out = tmp / "cat.fits"
    summary = run_catalog(ck, survey / "spectra", out, crossmatch=survey / "crossmatch.fits", config="dr8",
                          batch_size=8, workers=0, progress=False, keep_parts=True)
    return {"tmp": tmp, "out": out, "summary": summary, "ck": ck, "survey": survey}


def test_run_catalog_writes_exactly_the_checkpoint_columns(three_label_run):
    from jaxvac.run.merge import merge

    out = three_label_run["out"]
    rows, _ = read_catalog(out)
    assert rows.dtype == catalog_dtype(THREE) and len(rows) == three_label_run["summary"].rows_out > 0
    assert not {"dist_phot", "X", "feh_VMP", "a_ks", "flag_dist_phot"} & set(rows.dtype.names)
    units = read_units(out)
    assert (units["Teff_PASTEL"], units["Err_logg_PASTEL"], units["feh_PASTEL"]) == ("K", "dex", "dex")
    snr = rows["snrg"].astype(np.float64)
    want = ErrorModel.default().sigma(snr, ["Teff_PASTEL"])[:, 0]  # no error model in the checkpoint: Table 2
    ok = np.isfinite(rows["Teff_PASTEL"])
    np.testing.assert_allclose(rows["Err_Teff_PASTEL"][ok], want[ok], rtol=1e-6)
    lo, hi = PAPER.labels[0].lo, PAPER.labels[0].hi
    np.testing.assert_array_equal(rows["flag_Teff_PASTEL"], ~((rows["Teff_PASTEL"] >= lo) & (rows["Teff_PASTEL"] <= hi)))
    assert rows["gaiaid"].max() >= 0  # the cross-match still gives Gaia ids and E(B-V)
    # `jaxvac merge` on the kept parts, alone, writes the same columns, values and units
    again = three_label_run["tmp"] / "again.parquet"
    (three_label_run["tmp"] / "cat.fits.parts").rename(three_label_run["tmp"] / "again.parquet.parts")
    merge(again, keep_parts=True)
    back, _ = read_catalog(again)
    assert back.dtype == rows.dtype and read_units(again) == units
    for name in rows.dtype.names:
        np.testing.assert_array_equal(back[name], rows[name], err_msg=name)
