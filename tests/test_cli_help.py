"""Every command's --help shows examples, with configs named as the CLI resolves them (`--config demo`)."""

import pytest
from click.testing import CliRunner

from jaxvac.cli import COMMANDS, main


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_has_examples(name):
    res = CliRunner().invoke(main, [name, "--help"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    head = next(i for i, line in enumerate(lines) if line.strip() in ("Example:", "Examples:"))
    examples = [line for line in lines[head + 1:] if line.strip().startswith("jaxvac ")]
    assert any(e.strip().startswith(f"jaxvac {name}") for e in examples), res.output
    assert "configs/demo.toml" not in res.output and "configs/dr8.toml" not in res.output
