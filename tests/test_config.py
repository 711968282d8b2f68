import dataclasses
import importlib.resources
import shutil
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from jaxvac.config import ConfigError, builtin_dir, builtin_names, load_config, recipe_defaults, section
from jaxvac.run.astrometry import AstrometryConfig
from jaxvac.run.loop import RunConfig
from jaxvac.run.uncertainties import ErrorModel, ErrorsConfig
from jaxvac.train.dataset import CurationConfig
from jaxvac.train.fit import TrainConfig
from jaxvac.train.job import ModelConfig

BUILTIN = Path(importlib.resources.files("jaxvac.configs"))
RECIPE_SECTIONS = [(RunConfig, "run"), (TrainConfig, "train"), (CurationConfig, "curation"),
                   (ErrorsConfig, "errors"), (AstrometryConfig, "astrometry"), (ModelConfig, "model")]


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


# ---------------------------------------------------------------------------------------------
# Finding configs: built-in names through importlib.resources, paths first, base resolution


def test_builtin_configs_come_from_the_installed_package():
    assert builtin_dir() == BUILTIN and (BUILTIN / "__init__.py").is_file()
    assert builtin_names() == ["demo", "dr8"]


@pytest.mark.parametrize("name", ["dr8", "dr8.toml"])
def test_builtin_by_name_from_any_directory(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    assert load_config(name)["_source"] == [str((BUILTIN / "dr8.toml").resolve())]
    demo = load_config(name.replace("dr8", "demo"))["_source"]
    assert demo == [str((BUILTIN / "dr8.toml").resolve()), str((BUILTIN / "demo.toml").resolve())]
    assert all(Path(p).is_file() for p in demo)  # real files: checkpoints and headers hash them


def test_a_file_path_wins_over_a_builtin_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dr8.toml").write_text("[run]\nbatch_size = 7\n")
    cfg = load_config("dr8.toml")
    assert cfg["_source"] == [str(tmp_path / "dr8.toml")]
    assert section(cfg, "run", RunConfig).batch_size == 7
    # "dr8" is no file here, so it is the built-in name
    assert load_config("dr8")["_source"] == [str((BUILTIN / "dr8.toml").resolve())]


def test_base_resolves_next_to_the_file_first(tmp_path):
    (tmp_path / "dr8.toml").write_text("[run]\nbatch_size = 7\n")
    (tmp_path / "mine.toml").write_text('base = "dr8.toml"\n[run]\nworkers = 3\n')
    cfg = load_config(tmp_path / "mine.toml")
    assert cfg["_source"] == [str(tmp_path / "dr8.toml"), str(tmp_path / "mine.toml")]
    rc = section(cfg, "run", RunConfig)
    assert (rc.batch_size, rc.workers) == (7, 3)


@pytest.mark.parametrize("base", ["dr8.toml", "dr8"])
def test_base_among_builtins_from_a_copied_config(tmp_path, base):
    # a user copies demo.toml into a folder of their own: its base = "dr8.toml" is not beside it
    shutil.copy(BUILTIN / "demo.toml", tmp_path / "demo.toml")
    mine = tmp_path / "sub" / "mine.toml"
    mine.parent.mkdir()
    mine.write_text(f'base = "../demo.toml"\n[train]\nmax_epochs = 2\n')
    cfg = load_config(mine)
    assert cfg["_source"] == [str((BUILTIN / "dr8.toml").resolve()), str(tmp_path / "demo.toml"), str(mine)]
    assert section(cfg, "train", TrainConfig).max_epochs == 2
    assert section(cfg, "model", ModelConfig).hidden == (64, 32, 16)
    (tmp_path / "b.toml").write_text(f'base = "{base}"\n[run]\nworkers = 1\n')
    assert load_config(tmp_path / "b.toml")["_source"][0] == str((BUILTIN / "dr8.toml").resolve())


def test_not_found_names_what_where_and_the_builtin_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as e:
        load_config("dr9")
    msg = str(e.value)
    assert "Config 'dr9' not found" in msg and str(tmp_path / "dr9") in msg
    assert f"jaxvac.configs ({BUILTIN})" in msg and "['demo', 'dr8']" in msg and "\n" not in msg
    (tmp_path / "m.toml").write_text('base = "dr9.toml"\n')
    with pytest.raises(ConfigError) as e:
        load_config("m.toml")
    msg = str(e.value)
    assert msg.startswith(f"In {tmp_path / 'm.toml'}: base = 'dr9.toml' not found: no file '{tmp_path / 'dr9.toml'}'")
    assert "['demo', 'dr8']" in msg
    with pytest.raises(ConfigError, match="a name with a folder is not looked up among the built-in configs"):
        load_config("configs/dr9.toml")


def test_a_base_loop_is_refused(tmp_path):
    (tmp_path / "a.toml").write_text('base = "b.toml"\n')
    (tmp_path / "b.toml").write_text('base = "a.toml"\n')
    with pytest.raises(ConfigError, match=r"the base chain loops \(.*a.toml -> .*b.toml -> .*a.toml\)"):
        load_config(tmp_path / "a.toml")


# ---------------------------------------------------------------------------------------------
# Type checks when a section is built


@pytest.mark.parametrize(
    "text, name, cls, message",
    [
        ('[run]\nbatch_size = "abc"\n', "run", RunConfig,
         r'run.batch_size must be an integer, got "abc" \(a string\); write it like batch_size = 1024'),
        ('[model]\nhidden = "abc"\n', "model", ModelConfig,
         r'model.hidden must be a list of integers \[...\], got "abc" \(a string\); write it like hidden = \[512, 256, 64\]'),
        ("[model]\nhidden = [64, 32.5]\n", "model", ModelConfig, r"model.hidden\[1\] must be an integer, got 32.5 \(a number\)"),
        ("[run]\nmin_snrg = true\n", "run", RunConfig, r"run.min_snrg must be a number, got true \(a boolean\)"),
        ("[run]\nclasses = \"STAR\"\n", "run", RunConfig, r"run.classes must be a list of strings"),
        ("[curation]\napply_cuts = 1\n", "curation", CurationConfig, r"curation.apply_cuts must be true or false, got 1"),
        ("[curation]\ncuts = [1]\n", "curation", CurationConfig, r"curation.cuts\[0\] must be a table"),
        ("[train.catalogs]\nPASTEL = 3\n", "train", TrainConfig, r"train.catalogs.PASTEL must be a string in quotes, got 3"),
        ("[astrometry]\nr_ks = \"0.3\"\n", "astrometry", AstrometryConfig, r'astrometry.r_ks must be a number, got "0.3"'),
        ("[errors.coefficients]\nTeff_PASTEL = { a = \"x\" }\n", "errors", ErrorsConfig,
         r'errors.coefficients.Teff_PASTEL.a must be a number, got "x"'),
    ],
)
def test_wrong_types_are_refused_naming_file_key_type_and_value(tmp_path, text, name, cls, message):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=f"^In {p}: {message}") as e:
        section(load_config(p), name, cls)
    assert "\n" not in str(e.value)


def test_an_int_is_a_float_and_the_error_names_the_file_that_set_the_key(tmp_path):
    (tmp_path / "a.toml").write_text('base = "dr8"\n[run]\nworkers = "two"\n')
    (tmp_path / "b.toml").write_text('base = "a.toml"\n[run]\nmin_snrg = 5\n')
    cfg = load_config(tmp_path / "b.toml")
    with pytest.raises(ConfigError, match=f"^In {tmp_path / 'a.toml'}: run.workers must be an integer"):
        section(cfg, "run", RunConfig)
    cfg["run"]["workers"] = 2
    assert section(cfg, "run", RunConfig).min_snrg == 5


def test_a_dataclass_check_gets_the_file(tmp_path):
    p = tmp_path / "e.toml"
    p.write_text('[errors]\nscatter = "median"\n')
    with pytest.raises(ConfigError, match=f"^In {p}: \\[errors\\] scatter must be 'std' or 'mad'"):
        section(load_config(p), "errors", ErrorsConfig)


def test_train_and_run_refuse_a_bad_type_before_writing(tmp_path):
    from jaxvac.cli import main

    cfg = tmp_path / "bad.toml"
    cfg.write_text('base = "demo"\n[model]\nhidden = "abc"\n[run]\nbatch_size = "abc"\n')
    res = CliRunner().invoke(main, ["train", "--config", str(cfg), "--data", str(tmp_path), "--out", str(tmp_path / "t")])
    assert res.exit_code == 2 and f"In {cfg}: model.hidden must be a list of integers" in res.output
    model = tmp_path / "model"
    model.mkdir()
    res = CliRunner().invoke(main, ["run", "--model", str(model), "--input", str(tmp_path), "--out", str(tmp_path / "c.fits"),
                                    "--config", str(cfg), "--no-progress"])
    assert res.exit_code == 2 and f"In {cfg}: run.batch_size must be an integer" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml", "model"]


# ---------------------------------------------------------------------------------------------
# One home for the numbers: the dataclass defaults are dr8.toml's


@pytest.mark.parametrize("cls, name", RECIPE_SECTIONS, ids=[n for _, n in RECIPE_SECTIONS])
def test_dataclass_defaults_are_the_builtin_dr8_values(cls, name):
    with open(BUILTIN / "dr8.toml", "rb") as f:
        table = tomllib.load(f)[name]
    assert {f.name for f in dataclasses.fields(cls)} == set(table)

    def frozen(v):
        return tuple(frozen(x) for x in v) if isinstance(v, list) else {k: frozen(x) for k, x in v.items()} if isinstance(v, dict) else v

    default = cls()
    for key, value in table.items():
        assert getattr(default, key) == frozen(value), f"{name}.{key}"
    assert section({}, name, cls) == default == section(load_config("dr8"), name, cls)


def test_keys_a_table_lacks_come_from_dr8_and_defaults_are_not_shared(tmp_path):
    p = tmp_path / "own.toml"  # no base: the other keys are dr8.toml's
    p.write_text("[train]\nmax_epochs = 3\n[errors]\nscatter = \"mad\"\n")
    cfg = load_config(p)
    t = section(cfg, "train", TrainConfig)
    assert t.max_epochs == 3 and t.batch_size == TrainConfig().batch_size and t.out_dir == "runs/dr8"
    assert ErrorModel.from_config(cfg) == ErrorModel.default()
    t.catalogs["PASTEL"] = "elsewhere.fits"
    assert TrainConfig().catalogs["PASTEL"] == "catalogs/train_pastel.fits"


def test_recipe_defaults_refuses_a_second_home_and_a_missing_key():
    with pytest.raises(TypeError, match=r"batch_size has a default in the class .* delete the one in the class"):
        @dataclasses.dataclass(frozen=True)
        @recipe_defaults("run")
        class _Twice:
            batch_size: int = 1024

    with pytest.raises(TypeError, match=r"batch_sise has no value in .*dr8.toml \[run\]; add run.batch_sise there"):
        @dataclasses.dataclass(frozen=True)
        @recipe_defaults("run")
        class _Missing:
            batch_sise: int
