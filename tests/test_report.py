import numpy as np

from jaxvac.run.catalog import empty_catalog
from jaxvac.display.report import flag_fractions, label_summary, write_report


def _cat(n=200, seed=1):
    rng = np.random.default_rng(seed)
    r = empty_catalog(n)
    r["uqflag"] = 1
    r["Teff_PASTEL"] = rng.uniform(4000, 7000, n)
    r["logg_PASTEL"] = rng.uniform(1, 5, n)
    r["feh_PASTEL"] = rng.normal(-0.3, 0.4, n)
    r["Err_Teff_PASTEL"] = 100.0
    for k in ("a_gg", "a_bp", "a_rp", "X", "Y", "Z", "feh_APOGEE", "AFE_APOGEE"):
        r[k] = rng.normal(0, 1, n)
    r["flag_Teff_PASTEL"] = 0
    r["flag_Teff_PASTEL"][:50] = 1
    return r


def test_flag_fractions_and_summary_known_values():
    r = _cat()
    frac = flag_fractions(r)
    assert frac["Teff_PASTEL"] == 50 / 200
    assert frac["a_isd"] == 1.0  # missing everywhere -> flagged
    summ = {s[0]: s for s in label_summary(r)}
    assert summ["Teff_PASTEL"][1] == 200
    assert summ["Teff_PASTEL"][2] == np.median(r["Teff_PASTEL"].astype(np.float64))
    assert summ["Teff_PASTEL"][5] == 100.0
    assert summ["a_isd"][1] == 0


def test_write_report_writes_every_plot_and_the_table(tmp_path):
    paths = write_report(_cat(), tmp_path, n_rejects=3)
    names = sorted(p.name for p in paths)
    assert names == sorted(["kiel.png", "feh_alpha.png", "cmd.png", "xy.png", "xz.png",
                            "label_histograms.png", "flag_fractions.png", "summary.md"])
    for p in paths:
        assert p.stat().st_size > 1000 or p.suffix == ".md"
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "summary.md").read_text()
    assert "- rows: 200" in md and "- rejected inputs: 3" in md
    assert "| Teff_PASTEL [K] | 200 |" in md and "0.250 |" in md
