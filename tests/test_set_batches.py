"""Issue 14: ``[train] set_batches`` (fit with ``groups``): each training set's networks step on
batches of their own stars. Checked against the stacked loss (an independent computation of the
same numbers), on the order of the members it returns, and on what each network learns."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxvac.kernels.ensemble import take_members
from jaxvac.model import init_stack
from jaxvac.train.fit import TrainConfig, _batch_indices, _group_plan, _grouped_loss, fit, member_losses


def test_grouped_loss_is_the_stacked_loss_of_each_groups_own_batch():
    """Group g's members scored on batch g alone equal the stacked members scored on all batches
    with every other group's stars weighted 0 (the stacked step of a sparse label matrix)."""
    rng = np.random.default_rng(1)
    params = init_stack(3, 12, (8, 4), 5)
    order, ranges = _group_plan(["b", "a", "b", "a", "a"], 5)
    assert order.tolist() == [1, 3, 4, 0, 2] and ranges == ((0, 3), (3, 5))
    params = take_members(params, order)
    xs = [rng.standard_normal((6, 12)).astype(np.float32), rng.standard_normal((4, 12)).astype(np.float32)]
    zs = [rng.standard_normal((6, 3)).astype(np.float32), rng.standard_normal((4, 2)).astype(np.float32)]
    ws = [np.ones((6, 3), np.float32), (rng.random((4, 2)) < 0.7).astype(np.float32)]
    total, per = _grouped_loss(params, ranges, xs, zs, ws)
    x_all = np.concatenate(xs)
    z_all = np.zeros((10, 5), np.float32)
    w_all = np.zeros((10, 5), np.float32)
    z_all[:6, :3], w_all[:6, :3] = zs[0], ws[0]
    z_all[6:, 3:], w_all[6:, 3:] = zs[1], ws[1]
    ref = member_losses(params, jnp.asarray(x_all), jnp.asarray(z_all), jnp.asarray(w_all))
    np.testing.assert_allclose(per, ref, rtol=1e-5)
    np.testing.assert_allclose(total, np.sum(ref), rtol=1e-5)
    g1 = jax.grad(lambda p: _grouped_loss(p, ranges, xs, zs, ws)[0])(params)
    g2 = jax.grad(lambda p: jnp.sum(member_losses(p, jnp.asarray(x_all), jnp.asarray(z_all), jnp.asarray(w_all))))(params)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_batch_indices_fill_the_common_number_of_steps():
    idx, valid = _batch_indices(np.arange(10), 4, steps=5)
    assert idx.shape == (5, 4) and valid.sum() == 10
    assert sorted(idx[valid].tolist()) == list(range(10))


def test_set_batches_learn_each_label_in_the_callers_order():
    """Two sets of stars with disjoint labels, the members of each set interleaved: trained with
    groups, every network predicts its own label (a linear function of its own pixel) and the
    results come back in the caller's member order."""
    rng = np.random.default_rng(0)
    n, d = 1200, 16
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = np.stack([2.0 * x[:, k] + 1.0 for k in range(5)], 1)
    in_a = np.arange(n) < 800
    sets = np.array(["A", "B", "A", "B", "A"])
    y[np.ix_(~in_a, sets == "A")] = np.nan
    y[np.ix_(in_a, sets == "B")] = np.nan
    cfg = dataclasses.replace(TrainConfig(), max_epochs=60, batch_size=128, patience=60, learning_rate=1e-2)
    res = fit(x, y, hidden=(16, 8), cfg=cfg, groups=sets)
    stacked = fit(x, y, hidden=(16, 8), cfg=cfg)
    from jaxvac.train.fit import predict_stack

    for r in (res, stacked):
        assert r.n_train.tolist() == (np.isfinite(y) & ~r.val_mask[:, None]).sum(0).tolist()
        np.testing.assert_allclose(r.y_mean, np.nanmean(np.where(r.val_mask[:, None], np.nan, y), 0), rtol=1e-6)
        pred = predict_stack(r.params, x[r.val_mask], r.y_mean, r.y_std)
        for k in range(5):
            own = np.isfinite(y[r.val_mask, k])
            err = np.std(pred[own, k] - y[r.val_mask][own, k])
            assert err < 0.5, (k, err)  # std 2 labels: a network on another's label would be off by ~2.8
    assert res.history.shape[1] == 5 and np.all(np.isfinite(res.best_val))


FOUR_DEVICES = """
import dataclasses, sys
import jax, numpy as np
from jaxvac.train.fit import TrainConfig, fit, predict_stack
assert len(jax.local_devices()) == 4
rng = np.random.default_rng(0)
x = rng.standard_normal((600, 16)).astype(np.float32)
y = np.stack([2.0 * x[:, k] + 1.0 for k in range(3)], 1)
y[:450, 2] = np.nan
y[450:, :2] = np.nan
cfg = dataclasses.replace(TrainConfig(), max_epochs=40, batch_size=101, patience=40, learning_rate=1e-2)
r = fit(x, y, hidden=(16, 8), cfg=cfg, groups=["A", "A", "B"])
pred = predict_stack(r.params, x[r.val_mask], r.y_mean, r.y_std)
own = np.isfinite(y[r.val_mask])
print("ERR", *[float(np.std(pred[own[:, k], k] - y[r.val_mask][own[:, k], k])) for k in range(3)])
"""


def test_set_batches_split_over_four_devices(tmp_path):
    """Each group's batch is rounded up to a multiple of the device count (a 104-star step: the
    groups get 76 and 28) and sharded over a 4-device data mesh; every network learns its label."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "four.py"
    script.write_text(FOUR_DEVICES)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, str(script)], env=env, cwd=Path(__file__).resolve().parents[1],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    err = [float(v) for v in out.stdout.split("ERR")[1].split()]
    assert len(err) == 3 and max(err) < 0.8, err  # std 2 labels: another network's label would be off by ~2.8


def test_augment_groups_renoise_only_the_named_sets():
    """With set batches, re-noising set A leaves set B's networks exactly as trained without any
    augmentation (their batches, keys and updates do not depend on A's), while A's change."""
    rng = np.random.default_rng(5)
    n, d = 600, 16
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = np.stack([2.0 * x[:, k] + 1.0 for k in range(4)], 1)
    sets = np.array(["A", "A", "B", "B"])
    y[np.ix_(np.arange(n) >= 300, sets == "A")] = np.nan
    y[np.ix_(np.arange(n) < 300, sets == "B")] = np.nan
    snr = np.full(n, 200.0)
    base = dataclasses.replace(TrainConfig(), max_epochs=5, batch_size=64, patience=10)
    plain = fit(x, y, hidden=(8, 4), cfg=base, groups=sets)
    noisy = fit(x, y, hidden=(8, 4), cfg=dataclasses.replace(base, noise_augment=True, augment_snr=(5.0, 10.0)),
                groups=sets, augment=(snr, np.full(d, 0.1, np.float32)), augment_groups={"A"})
    for a, b in zip(jax.tree.leaves(take_members(plain.params, slice(2, 4))), jax.tree.leaves(take_members(noisy.params, slice(2, 4)))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    moved = [np.abs(a - b).max() for a, b in zip(jax.tree.leaves(take_members(plain.params, slice(0, 2))),
                                                 jax.tree.leaves(take_members(noisy.params, slice(0, 2))))]
    assert max(moved) > 1e-3


def test_augment_sets_are_checked_before_training():
    import pytest

    from jaxvac.config import ConfigError
    from jaxvac.labels import PAPER
    from jaxvac.train.job import _check_augment_sets

    cfg = dataclasses.replace(TrainConfig(), noise_augment=True, augment_sets=("APOGEE",))
    with pytest.raises(ConfigError, match="set_batches = true"):
        _check_augment_sets(cfg, PAPER)
    _check_augment_sets(dataclasses.replace(cfg, set_batches=True), PAPER)
    _check_augment_sets(dataclasses.replace(cfg, augment_sets=("PASTEL", "APOGEE", "LGMWAS")), PAPER)  # all: no need
    with pytest.raises(ConfigError, match=r"\['GALAH'\], not trained sets"):
        _check_augment_sets(dataclasses.replace(cfg, augment_sets=("GALAH",), set_batches=True), PAPER)
