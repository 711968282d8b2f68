import dataclasses

import pytest

from jaxvac.config import ConfigError, load_config, section


@dataclasses.dataclass(frozen=True)
class _Demo:
    lr: float = 1e-3
    sizes: tuple = (512, 256)


def test_base_chain_merges_and_overrides(tmp_path):
    (tmp_path / "a.toml").write_text("[train]\nlr = 0.01\nsizes = [1, 2]\n")
    (tmp_path / "b.toml").write_text('base = "a.toml"\n[train]\nlr = 0.5\n')
    cfg = load_config(tmp_path / "b.toml")
    got = section(cfg, "train", _Demo)
    assert got == _Demo(lr=0.5, sizes=(1, 2))
    assert [p.split("/")[-1] for p in cfg["_source"]] == ["a.toml", "b.toml"]


def test_unknown_key_is_refused_with_its_name(tmp_path):
    (tmp_path / "c.toml").write_text("[train]\nlearning_rate = 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['learning_rate'\] in \[train\]"):
        section(load_config(tmp_path / "c.toml"), "train", _Demo)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.toml' not found"):
        load_config(tmp_path / "nope.toml")
