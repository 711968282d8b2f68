"""`jaxvac info` through click's CliRunner: the manifest's values, rejects, help."""

import csv
import json

import pytest
from click.testing import CliRunner

from jaxvac.cli import main


@pytest.fixture(scope="module")
def report(lamost_dir):
    result = CliRunner().invoke(main, ["info", "--json", str(lamost_dir)])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_json_gives_the_manifest_values(lamost_dir, report):
    with open(lamost_dir / "MANIFEST.tsv") as f:
        manifest = {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}
    rows = {r["path"].split("/")[-1]: r for r in report["spectra"]}
    assert set(rows) == set(manifest) and report["rejects"] == []
    for name, m in manifest.items():
        r = rows[name]
        assert r["layout"] == m["layout"].split(":")[0]
        assert r["release"] == ("" if m["data_v"] == "(none)" else m["data_v"])
        assert r["npix"] == int(m["npix"])
        assert r["offset"] == round((float(m["coeff0"]) - 3.5682) / 1e-4)
        assert r["obsid"] == (-1 if m["obsid"] == "(none)" else int(m["obsid"]))
        assert (r["class"], r["subclass"]) == (m["class"], m["subclass"])
        assert r["snrg"] == pytest.approx(float(m["snrg"]), rel=1e-6)
        if m["z"] == "-9999":
            assert r["rv"] is None
        else:
            assert r["rv"] == pytest.approx(float(m["z"]) * 299792.458, rel=1e-12)
        assert 0 <= r["bad_fraction"] < 0.2
    s = report["summary"]
    assert (s["files"], s["spectra"], s["rejects"]) == (25, 25, 0)
    assert s["by_layout"] == {"image": 17, "table": 8}
    assert s["by_class"] == {"STAR": 23, "QSO": 1, "Unknown": 1}
    assert s["by_release"]["LAMOST DR8"] == 8 and s["by_release"][""] == 1


def test_text_output_lists_spectra_rejects_and_summary(lamost_dir, tmp_path):
    (tmp_path / "broken.fits.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    (tmp_path / "zero.fits").write_bytes(b"")
    good = lamost_dir / "spec-55859-F5902_sp03-232.fits.gz"
    result = CliRunner().invoke(main, ["info", str(good), str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split("\t")[:3] == ["file", "layout", "release"]
    assert lines[1].split("\t") == [str(good), "image", "LAMOST DR8", "3906", "0", "103232",
                                    "STAR", "F4", "94.11", "10.2", "0.001"]
    assert f"REJECT\t{tmp_path / 'zero.fits'}\tempty file (0 bytes)" in lines
    assert any(ln.startswith(f"REJECT\t{tmp_path / 'broken.fits.gz'}\ttruncated gzip stream")
               for ln in lines)
    assert "# files: 3" in lines and "# rejects: 2" in lines
    assert "# reject kinds: empty file (0 bytes) 1, truncated gzip stream 1" in lines


def test_help_has_an_example():
    result = CliRunner().invoke(main, ["info", "--help"])
    assert result.exit_code == 0 and "jaxvac info ../shared/lamost" in result.output
    assert CliRunner().invoke(main, ["info"]).exit_code == 2  # PATH is required
