"""Every bad input a user can give the command line ends in one line on stderr, exit status 2,
no traceback, and nothing written where it should not be (click's CliRunner, in process).

Also: an unexpected error is one line naming a saved traceback (``--debug`` prints it), and
SIGTERM / SIGINT end a command with one line saying what was kept (exit 143 / 130).
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import fitsio
import pytest
from click.testing import CliRunner

import tiny_run
from jaxvac.cli import main


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return tiny_run.make(tmp_path_factory.mktemp("cli_errors"))


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _run(setup, out, *extra):
    return _invoke(*tiny_run.run_args(setup, out, "--workers", "0", *extra))


def _one_line(result, status: int = 2) -> str:
    """The single stderr line of a failed command (and no traceback anywhere)."""
    assert result.exit_code == status, (result.exit_code, result.stdout, result.stderr, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output and "Aborted" not in result.output
    return lines[0]


@pytest.fixture(scope="module")
def complete(setup):
    """A finished catalogue whose parts were kept."""
    out = setup["tmp"] / "done" / "cat.fits"
    r = _run(setup, out, "--keep-parts")
    assert r.exit_code == 0, r.output
    return out


def _copy_output(out: Path, dest: Path, parts: bool = True) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(out, dest / out.name)
    if parts:
        shutil.copytree(out.with_name(out.name + ".parts"), dest / (out.name + ".parts"))
    return dest / out.name


@pytest.mark.parametrize("damage", ["delete params/manifest.ocdbt", "truncate the parameter data files"])
def test_damaged_checkpoint(setup, tmp_path, damage):
    model = tmp_path / "checkpoint"
    shutil.copytree(setup["model"], model)
    step = next(p for p in model.iterdir() if p.name.isdigit())
    if damage.startswith("delete"):
        (step / "params" / "manifest.ocdbt").unlink()
    else:
        for f in (step / "params").rglob("*"):
            if f.is_file() and f.parent.name == "d":
                f.write_bytes(f.read_bytes()[:7])
    setup = dict(setup, model=model)
    line = _one_line(_run(setup, tmp_path / "cat.fits"))
    assert line.startswith("jaxvac run: checkpoint ") and str(model) in line
    assert "retrain it with `jaxvac train` or restore it" in line
    assert list(tmp_path.iterdir()) == [model]  # no catalogue, no parts folder, no lock


def test_config_value_of_wrong_type_writes_nothing_and_the_corrected_rerun_works(setup, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(f'base = "{setup["config"]}"\n[run]\nbatch_size = "abc"\n')
    out = tmp_path / "out" / "cat.fits"
    line = _one_line(_invoke(*tiny_run.run_args(dict(setup, config=bad), out, "--workers", "0")))
    assert line.startswith(f"jaxvac run: In {bad}: run.batch_size must be an integer, got \"abc\"")
    assert not out.parent.exists()  # nothing written: no manifest to block the corrected rerun
    bad.write_text(f'base = "{setup["config"]}"\n[run]\nbatch_size = 16\n')
    r = _invoke(*tiny_run.run_args(dict(setup, config=bad), out, "--workers", "0"))
    assert r.exit_code == 0, r.output
    assert out.is_file() and not out.with_name("cat.fits.parts").exists()


def test_model_hidden_of_wrong_type_fails_before_training_and_the_corrected_rerun_works(setup, tmp_path):
    cfg = tmp_path / "train.toml"
    body = ('base = "demo.toml"\n[train]\nmax_epochs = 1\nworkers = 0\nbatch_size = 32\n'
            '[curation]\napply_cuts = false\nbinary_removal = false\nclip_sigma = 0.0\n[model]\nvmp_hidden = [4]\n')
    cfg.write_text(body + 'hidden = "abc"\n')
    run_dir = tmp_path / "trained"
    line = _one_line(_invoke("train", "--config", cfg, "--data", setup["survey"], "--out", run_dir, "--no-progress"))
    assert line.startswith(f"jaxvac train: In {cfg}: model.hidden must be") and '"abc"' in line
    assert not run_dir.exists()
    cfg.write_text(body + "hidden = [8, 4]\n")
    r = _invoke("train", "--config", cfg, "--data", setup["survey"], "--out", run_dir, "--no-progress")
    assert r.exit_code == 0, (r.output, r.exception)
    assert (run_dir / "checkpoint").is_dir()


def test_unwritable_output_folder(setup, tmp_path):
    if os.geteuid() == 0:  # root writes anywhere a mode allows nothing; /sys refuses even root
        if not Path("/sys").is_dir():
            pytest.skip("running as root without /sys: no folder to make unwritable")
        out = Path("/sys/jaxvac-test-output/cat.fits")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        out = locked / "cat.fits"
    try:
        line = _one_line(_run(setup, out))
    finally:
        if os.geteuid() != 0:
            out.parent.chmod(0o700)
    assert line.startswith(f"jaxvac run: cannot create '{out}.parts' for the output '{out}'")
    assert "choose an output in a folder you can write (--out)" in line
    assert not out.exists()


def test_output_holding_another_models_parts(setup, complete, tmp_path):
    out = _copy_output(complete, tmp_path)
    other = tmp_path / "other_model"
    shutil.copytree(setup["model"], other)
    before = out.read_bytes()
    line = _one_line(_run(dict(setup, model=other), out))
    assert line == (f"jaxvac run: {out}.parts holds parts of a different run (differs in: model). "
                    f"Rerun with --fresh to start over, or choose another output name.")
    assert out.read_bytes() == before


def test_deleted_parts_and_another_model_never_replace_the_catalogue(setup, complete, tmp_path):
    out = _copy_output(complete, tmp_path, parts=False)
    before = out.read_bytes()
    other = tmp_path / "other_model"
    shutil.copytree(setup["model"], other)
    line = _one_line(_run(dict(setup, model=other), out))
    assert line.startswith(f"jaxvac run: '{out}' exists and '{out}.parts' holds no record of the run that wrote it "
                           f"(its header differs from this run in MODEL); rerun with --overwrite to replace it")
    assert "--fresh" in line
    assert out.read_bytes() == before and not Path(f"{out}.parts").exists()
    # The same model and inputs: the catalogue is this run's own, already complete: nothing is done.
    r = _run(setup, out)
    assert r.exit_code == 0 and "is already complete" in r.stdout and out.read_bytes() == before
    # --overwrite replaces it (with the other model's catalogue).
    r = _run(dict(setup, model=other), out, "--overwrite")
    assert r.exit_code == 0, r.output
    assert fitsio.read_header(out, "CATALOG")["MODEL"] == str(other.resolve())


def test_merge_after_only_one_of_two_shards(setup, tmp_path):
    out = tmp_path / "sharded.fits"
    assert _run(setup, out, "--shard", "0/2").exit_code == 0
    n = len(setup["truth"])
    missing = n - n // 2  # shard 1/2 holds inputs n//2 .. n-1
    line = _one_line(_invoke("merge", out))
    assert line == (f"jaxvac merge: '{out}.parts' covers {n // 2:,} of the {n:,} inputs ({missing:,} missing: missing "
                    f"from --shard 1/2 ({missing:,} of its {missing:,} inputs)); run the missing shares (the same "
                    f"`jaxvac run` with their --shard I/N), or merge anyway with --allow-partial.")
    assert not out.exists()
    r = _invoke("merge", out, "--allow-partial")
    assert r.exit_code == 0 and f"{missing} inputs missing (PARTIAL)" in r.stdout
    h = fitsio.read_header(out, "CATALOG")
    assert h["PARTIAL"] is True and h["NMISSING"] == missing
    assert h["NROWS"] + h["NREJECT"] + h["NSKIPPED"] + h["NMISSING"] == h["NINPUTS"] == n
    assert Path(f"{out}.parts").is_dir()  # kept: the missing share can still run
    assert _run(setup, out, "--shard", "1/2").exit_code == 0
    r = _invoke("merge", out)
    assert r.exit_code == 0, r.output
    h = fitsio.read_header(out, "CATALOG")
    assert "PARTIAL" not in h and h["NROWS"] + h["NREJECT"] + h["NSKIPPED"] == n
    assert not Path(f"{out}.parts").exists()  # removed after a complete merge


def test_merge_without_parts(tmp_path):
    line = _one_line(_invoke("merge", tmp_path / "nothing.fits"))
    assert line.startswith(f"jaxvac merge: no parts to merge: '{tmp_path}/nothing.fits.parts' has no manifest.json")


def test_info_on_a_missing_path(tmp_path):
    line = _one_line(_invoke("info", tmp_path / "absent.fits"))
    assert line == f"jaxvac info: no such file or directory: '{tmp_path}/absent.fits'; give .fits/.fits.gz files or folders holding them."


def test_calibrate_errors_that_fits_nothing(setup, complete, tmp_path):
    """The tiny survey has a handful of repeat pairs: no SNR bin has enough, no label is fitted."""
    line = _one_line(_invoke("calibrate-errors", complete, "--out", tmp_path / "cal"))
    assert line.startswith(f"jaxvac calibrate-errors: no label of '{complete}' could be fitted (Teff_PASTEL: only ")
    assert "every coefficient in" in line and "is NaN" in line and "min_pairs_per_bin" in line


def test_unexpected_error_is_one_line_with_a_saved_traceback(setup, monkeypatch, tmp_path):
    import jaxvac.run.loop

    def broken(*a, **k):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(jaxvac.run.loop, "run_catalog", broken)
    line = _one_line(_run(setup, tmp_path / "cat.fits"), status=1)
    assert line.startswith("jaxvac run: unexpected ZeroDivisionError: a bug (traceback saved in ")
    saved = Path(line.split("traceback saved in ", 1)[1].split(";", 1)[0])
    try:
        text = saved.read_text()
        assert "Traceback (most recent call last)" in text and "in broken" in text
    finally:
        saved.unlink()
    r = _invoke("--debug", *tiny_run.run_args(setup, tmp_path / "cat.fits"))
    assert r.exit_code == 1 and "Traceback (most recent call last)" in r.stderr and "in broken" in r.stderr


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_ends_a_command_with_one_line_saying_what_was_kept(setup, monkeypatch, tmp_path, sig, status):
    import jaxvac.run.loop

    def interrupted(*a, **k):
        os.kill(os.getpid(), sig)
        time.sleep(5)  # the handler raises in here
        raise AssertionError("the signal did not interrupt the run")

    monkeypatch.setattr(jaxvac.run.loop, "run_catalog", interrupted)
    out = tmp_path / "cat.fits"
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    line = _one_line(_run(setup, out), status=status)
    assert line == (f"jaxvac run: interrupted ({sig.name}): progress saved in {out}.parts/; "
                    f"rerun the same command to continue")
    assert {s: signal.getsignal(s) for s in before} == before  # handlers restored after the command
