import subprocess
import sys

import jaxvac


def test_every_public_name_resolves_to_its_module_object():
    from jaxvac.train.checkpoint import load
    from jaxvac.io.lamost import read_spectrum
    from jaxvac.run.loop import run_catalog

    assert jaxvac.read_spectrum is read_spectrum
    assert jaxvac.load_checkpoint is load
    assert jaxvac.run_catalog is run_catalog
    for name in jaxvac.__all__[1:]:
        assert callable(getattr(jaxvac, name)), name


def test_import_and_help_do_not_load_jax():
    code = "import sys, jaxvac, jaxvac.cli; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_cli_lists_every_command():
    from click.testing import CliRunner

    from jaxvac.cli import COMMANDS, main

    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0
    for name in COMMANDS:
        assert name in r.output
        sub = CliRunner().invoke(main, [name, "--help"])
        assert sub.exit_code == 0 and "Usage:" in sub.output, name
