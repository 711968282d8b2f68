"""Checkpoints: exact round trip, restore on 1 and 4 devices, refusal of another grid, Layout or version."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvac.train import checkpoint
from jaxvac.train.checkpoint import CheckpointError
from jaxvac.labels import LABEL_NAMES, PAPER
from jaxvac.model import MLP, N_INPUT, N_VMP_INPUT, init_stack

REPO = Path(__file__).resolve().parents[1]
HIDDEN, VMP_HIDDEN = (8, 6, 4), (5, 3)


def _bundle(seed=0):
    rng = np.random.default_rng(seed)
    m = len(LABEL_NAMES)
    params = {"ensemble": init_stack(seed, N_INPUT, HIDDEN, m), "vmp": init_stack(seed + 1, N_VMP_INPUT, VMP_HIDDEN, 1)}
    params["ensemble"]["b"] = [jnp.asarray(rng.normal(size=b.shape), jnp.float32) for b in params["ensemble"]["b"]]
    st = {
        "x_mean": rng.normal(1, 0.1, N_INPUT).astype(np.float32), "x_std": rng.uniform(0.01, 0.2, N_INPUT).astype(np.float32),
        "y_mean": rng.normal(size=m).astype(np.float32), "y_std": rng.uniform(0.1, 3, m).astype(np.float32),
        "vmp_mean": np.float32(-2.1234567), "vmp_std": np.float32(0.3),
    }
    meta = {**PAPER.to_metadata(), "model": {"hidden": list(HIDDEN), "vmp_hidden": list(VMP_HIDDEN)}, "standardization": st,
            "config": {"train": {"seed": seed}}, "metrics": {"best_val_loss": {"Teff_PASTEL": float("nan")}}}
    return params, meta


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    params, meta = _bundle()
    d = tmp_path_factory.mktemp("ck") / "checkpoint"
    step = checkpoint.save(d, params, meta)
    return d, step, params, meta


def test_round_trip_is_exact(saved):
    d, step, params, meta = saved
    assert step.name == "0" and (step / "params").is_dir() and (step / "metadata").is_dir()
    p = checkpoint.load(d)
    for a, b in zip(jax.tree.leaves({"ensemble": params["ensemble"], "vmp": params["vmp"]}),
                    jax.tree.leaves({"ensemble": p.params["ensemble"], "vmp": p.params["vmp"]})):
        assert a.shape == b.shape and b.dtype == np.float32
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    st = meta["standardization"]
    np.testing.assert_array_equal(p.x_mean, st["x_mean"])
    np.testing.assert_array_equal(p.x_std, st["x_std"])
    np.testing.assert_array_equal(np.asarray(p.params["y_std"]), st["y_std"])
    assert np.asarray(p.params["vmp_mean"]) == st["vmp_mean"]
    assert p.metadata["labels"] == list(LABEL_NAMES) and p.metadata["units"][0] == "K"
    assert p.metadata["metrics"]["best_val_loss"]["Teff_PASTEL"] == "nan"  # JSON has no NaN
    assert p.metadata["grid"]["input_pixels"] == [[229, 1953], [3587, 3837]]
    # a second save is a new step; load takes the latest
    params2, meta2 = _bundle(seed=5)
    assert checkpoint.save(d, params2, meta2).name == "1"
    np.testing.assert_array_equal(np.asarray(checkpoint.load(d).params["ensemble"]["w"][0]), np.asarray(params2["ensemble"]["w"][0]))
    np.testing.assert_array_equal(np.asarray(checkpoint.load(d, step=0).params["ensemble"]["w"][0]),
                                  np.asarray(params["ensemble"]["w"][0]))


def _edit_metadata(step: Path, edit) -> None:
    f = step / "metadata" / "metadata"
    meta = json.loads(f.read_text())
    edit(meta)
    f.write_text(json.dumps(meta))


def test_other_grid_or_version_is_refused_with_the_difference(tmp_path):
    params, meta = _bundle()
    step = checkpoint.save(tmp_path / "g", params, meta)
    _edit_metadata(step, lambda m: m["grid"].update(log_step=2e-4))
    with pytest.raises(CheckpointError, match=r"another rest-frame grid.*log_step: checkpoint 0\.0002 vs here 0\.0001"):
        checkpoint.load(tmp_path / "g")
    step = checkpoint.save(tmp_path / "v", params, meta)
    _edit_metadata(step, lambda m: m.update(jaxvac_version="7.3.0"))
    with pytest.raises(CheckpointError, match=r"written by jaxvac 7\.3\.0; this is jaxvac"):
        checkpoint.load(tmp_path / "v")
    with pytest.raises(CheckpointError, match="no checkpoint directory"):
        checkpoint.load(tmp_path / "absent")


def test_the_whole_layout_is_recorded(saved):
    from jaxvac.preprocess import LAYOUT

    d, _, _, _ = saved
    rec = checkpoint.read_metadata(d, step=0)["layout"]
    assert rec == {"npix_in": 3909, "log_step": 1e-4, "windows": [[229, 1953], [3587, 3837]], "margin": 10, "width": 21,
                   "order": 6, "min_good_fraction": 0.25, "pivot_tol": 0.02, "continuum_floor": 0.01,
                   "max_abs_rv": 4000.0, "c_kms": 299792.458,
                   "norm_flux_min": -0.5, "norm_flux_max": 3.0, "max_abs_standardized": 10.0}  # the input range (issue 12)
    assert set(rec) == set(LAYOUT._fields)  # a field added to Layout is recorded too


@pytest.mark.parametrize("field, value", [("max_abs_rv", 3000.0), ("pivot_tol", 1e-6), ("min_good_fraction", 0.5),
                                          ("continuum_floor", 0.02), ("width", 23), ("max_abs_standardized", 8.0)])
def test_a_run_with_another_layout_is_refused_naming_the_field(tmp_path, field, value):
    from jaxvac.preprocess import LAYOUT

    other = LAYOUT._replace(**{field: value}, **({"margin": value // 2} if field == "width" else {}))
    params, meta = _bundle()
    checkpoint.save(tmp_path / "trained_other", params, meta, layout=other)
    said = re.escape(f"Layout.{field} = {value!r} there, {getattr(LAYOUT, field)!r} here")
    with pytest.raises(CheckpointError, match=rf"another Layout \(.*{said}.*\).*retrain") as e:
        checkpoint.load(tmp_path / "trained_other")  # what `jaxvac run` does: against jaxvac.preprocess.LAYOUT
    assert "\n" not in str(e.value)
    checkpoint.load(tmp_path / "trained_other", layout=other)  # the Layout it was trained with is accepted
    checkpoint.save(tmp_path / "trained_dr8", params, meta)
    with pytest.raises(CheckpointError, match=rf"Layout\.{field} = "):
        checkpoint.load(tmp_path / "trained_dr8", layout=other)


def test_run_catalog_refuses_networks_trained_with_another_layout(tmp_path):
    from jaxvac.preprocess import LAYOUT
    from jaxvac.run.loop import run_catalog

    params, meta = _bundle()
    step = checkpoint.save(tmp_path / "ck", params, meta, layout=LAYOUT._replace(max_abs_rv=2000.0))
    with pytest.raises(CheckpointError, match=r"Layout\.max_abs_rv = 2000\.0 there, 4000\.0 here"):
        run_catalog(step.parent, [], tmp_path / "cat.fits", progress=False)
    assert not (tmp_path / "cat.fits").exists()


def test_checkpoint_without_layout_record_is_refused_with_retrain(tmp_path):
    """Format 1 recorded no Layout (and its pivot_tol changed meanwhile): it is not assumed to be DR8's."""
    params, meta = _bundle()
    step = checkpoint.save(tmp_path / "old", params, meta)
    _edit_metadata(step, lambda m: (m.pop("layout"), m.update(format=1)))
    with pytest.raises(CheckpointError, match=r"checkpoint format 1; this jaxvac reads format 2\. Retrain"):
        checkpoint.load(tmp_path / "old")
    step = checkpoint.save(tmp_path / "stripped", params, meta)
    _edit_metadata(step, lambda m: m.pop("layout"))
    with pytest.raises(CheckpointError, match=r"records no normalisation Layout.*retrain with `jaxvac train`"):
        checkpoint.load(tmp_path / "stripped")


FOUR_DEVICES = textwrap.dedent("""
    import sys, numpy as np, jax
    from jaxvac.train import checkpoint
    from jaxvac.train.fit import TrainConfig, fit
    assert len(jax.devices()) == 4, jax.devices()
    p = checkpoint.load(sys.argv[1], step=0)
    assert len(p.params["ensemble"]["w"][0].sharding.device_set) == 4
    y, vmp = p.predict(np.load(sys.argv[2]))
    np.save(sys.argv[3], np.asarray(y)); np.save(sys.argv[4], np.asarray(vmp))
    # data-parallel training over the 4 devices (batch split on a 'data' mesh)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 6)).astype(np.float32)
    yy = np.stack([x[:, 0] - x[:, 1], 2 * x[:, 2]], 1)
    r = fit(x, yy, hidden=(16,), cfg=TrainConfig(max_epochs=40, patience=40, batch_size=30, learning_rate=0.01))
    print("VAL", *r.best_val)
""")


def test_restore_on_one_and_four_devices_gives_the_same_outputs(saved, tmp_path):
    d, _, _, _ = saved
    x = np.random.default_rng(7).standard_normal((64, N_INPUT)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    one = checkpoint.load(d, step=0, devices=jax.local_devices()[:1])
    y1, v1 = (np.asarray(a) for a in one.predict(x))
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    script = tmp_path / "four.py"
    script.write_text(FOUR_DEVICES)
    out = subprocess.run([sys.executable, str(script), str(d), str(tmp_path / "x.npy"), str(tmp_path / "y4.npy"),
                          str(tmp_path / "v4.npy")], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "y4.npy"), y1, rtol=1e-6, atol=1e-6 * np.abs(y1).max())
    np.testing.assert_array_equal(np.isnan(np.load(tmp_path / "v4.npy")), np.isnan(v1))
    val = [float(v) for v in out.stdout.split("VAL")[1].split()]
    assert len(val) == 2 and max(val) < 0.1, val


def test_a_model_of_three_labels_without_vmp_network(tmp_path):
    # labels are data (issue 11): the checkpoint holds what the config listed, and no VMP network
    # when the VMP rule's labels were not trained
    import dataclasses

    schema = dataclasses.replace(PAPER, labels=PAPER.labels[3:6], vmp=None)  # logg/feh/MH_APOGEE
    d = checkpoint.save_random(tmp_path / "ck", (8,), (4,), schema=schema)
    p = checkpoint.load(d)
    assert p.schema == schema and "vmp" not in p.params and p.vmp_rule is None
    x = np.random.default_rng(0).normal(size=(5, N_INPUT)).astype(np.float32)
    y, vmp = (np.asarray(a) for a in p.predict(x))
    assert y.shape == (5, 3) and np.all(np.isnan(vmp))
    ref = MLP.from_stack(p.params["ensemble"], 1)(x)  # member 1 = feh_APOGEE, y_mean 0, y_std 1
    np.testing.assert_allclose(y[:, 1], np.asarray(ref), rtol=1e-5, atol=1e-5)
    # a label record that does not match the networks is refused, naming the fix
    meta = checkpoint.read_metadata(d)
    bad = {k: v for k, v in meta.items() if k not in ("format", "grid", "layout", "jaxvac_version")}
    bad["labels"] = bad["labels"][:2]
    bad["units"], bad["training_sets"], bad["ranges"] = bad["units"][:2], bad["training_sets"][:2], bad["ranges"][:2]
    bad["descriptions"] = bad["descriptions"][:2]
    checkpoint.save(tmp_path / "bad", {"ensemble": p.params["ensemble"]}, bad)
    with pytest.raises(checkpoint.CheckpointError, match=r"lists 2 labels but has 3 networks; retrain"):
        checkpoint.load(tmp_path / "bad")
