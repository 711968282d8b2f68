"""Fixed shapes compile once: the run's device step and the training epoch do not recompile.

Compilations are counted with JAX's own monitoring events (the ``count_compilations`` fixture
of tests/conftest.py: one event per jit trace, one per XLA compilation), so nothing in the code
under test is instrumented. Each test also shows that the counter does see a compilation when
the shape changes, so a silent counter cannot make it pass. The shapes here (batch sizes, hidden
sizes) are used by no other test, so their first call always compiles in this process.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from jaxvac.kernels.neighbours import sparse_rows
from jaxvac.labels import LABEL_NAMES
from jaxvac.model import N_INPUT, N_VMP_INPUT, Predictor, init_stack
from jaxvac.preprocess import LAYOUT
from jaxvac.run.device import Device
from jaxvac.train.fit import TrainConfig, fit
from jaxvac.train.guard import guard_arrays

HIDDEN, VMP_HIDDEN = (7, 5), (5,)  # tiny networks of shapes no other test uses


def tiny_predictor(seed: int = 0) -> Predictor:
    rng = np.random.default_rng(seed)
    m = len(LABEL_NAMES)
    params = {
        "ensemble": init_stack(seed, N_INPUT, HIDDEN, m), "vmp": init_stack(seed + 1, N_VMP_INPUT, VMP_HIDDEN, 1),
        "y_mean": rng.normal(size=m).astype(np.float32), "y_std": rng.uniform(0.5, 2, m).astype(np.float32),
        "vmp_mean": np.float32(-2.0), "vmp_std": np.float32(0.3),
    }
    return Predictor(params, rng.normal(1, 0.05, N_INPUT).astype(np.float32),
                     rng.uniform(0.05, 0.2, N_INPUT).astype(np.float32), {})


def guarded(pred: Predictor, seed: int = 0) -> Predictor:
    """pred with a sparseness guard on two sets: 64 random training points each, in estimates
    standardised by y_mean / y_std, radius 1 (what the device step does does not depend on them)."""
    rng = np.random.default_rng(seed)
    y_mean, y_std = np.asarray(pred.params["y_mean"]), np.asarray(pred.params["y_std"])
    meta = {name: {"cols": cols, "center": y_mean[cols].tolist(), "scale": y_std[cols].tolist(), "radius": 1.0,
                   "neighbours": 3} for name, cols in (("A", [0, 1, 2]), ("B", [3, 9]))}
    points = {name: {"points": rng.normal(0, 2, (64, len(g["cols"]))).astype(np.float32)} for name, g in meta.items()}
    return dataclasses.replace(pred, params={**pred.params, "guard": guard_arrays(meta, points)})


def spectra(seed: int, b: int):
    """b random spectra on the global grid: flux, ivar, good, rv (float32, bool)."""
    rng = np.random.default_rng(seed)
    flux = (50 + 5 * rng.normal(size=(b, LAYOUT.npix_in))).astype(np.float32)
    ivar = rng.uniform(0.5, 2.0, flux.shape).astype(np.float32)
    good = rng.random(flux.shape) > 0.05
    rv = rng.uniform(-300, 300, b).astype(np.float32)
    rv[0] = np.nan  # an unknown rv in every batch: the flagged path is part of the one program
    return flux, ivar, good, rv


@pytest.mark.parametrize("parallel", ["sharding", "none", "pmap"])
def test_device_step_compiles_once_per_batch_shape(parallel, count_compilations):
    device = Device(tiny_predictor(), parallel, batch_size=6, layout=LAYOUT)
    b = device.batch_size  # 6 rounded up to a multiple of the device count
    cache_size = getattr(device._fn, "_cache_size", None)  # jax.jit's own count (not on pmap)

    with count_compilations() as first:
        y, vmp, bad, status, extra = device.fetch(device.dispatch(*spectra(0, b)))
    assert first.traces and first.compiles, "the first batch of a new shape must compile"
    assert y.shape == (b, len(LABEL_NAMES)) and status.shape == (b,) and status[0] != 0
    assert extra == {}  # random networks: no ood basis, no sparseness guard
    size_after_first = cache_size() if cache_size else None

    with count_compilations() as second:  # same shapes, different content
        y2, *_ = device.fetch(device.dispatch(*spectra(1, b)))
    assert not second, f"the second batch recompiled: traced {second.traces}, compiled {second.compiles}"
    assert not np.array_equal(y, y2)  # it did run on the new batch
    if cache_size:
        assert cache_size() == size_after_first

    # a packed store passes good=None (bad pixels have ivar = 0): its own program, also compiled once
    for seed in (2, 3):
        flux, ivar, good, rv = spectra(seed, b)
        with count_compilations() as packed:
            device.fetch(device.dispatch(flux, np.where(good, ivar, 0).astype(np.float32), None, rv))
        assert bool(packed) == (seed == 2), f"packed batch {seed}: traced {packed.traces}, compiled {packed.compiles}"

    # with a sparseness guard: its own program, the same estimates, and per set the host's answer
    device_g = Device(guarded(tiny_predictor()), parallel, batch_size=6, layout=LAYOUT)
    yg, _, _, _, extra = device_g.fetch(device_g.dispatch(*spectra(0, b)))
    np.testing.assert_array_equal(yg, y)
    want = sparse_rows(jnp.asarray(yg), guarded(tiny_predictor()).params["guard"])
    assert sorted(extra["sparse"]) == ["A", "B"]
    for name, got in extra["sparse"].items():
        np.testing.assert_array_equal(got, np.asarray(want[name]))
    with count_compilations() as again:
        device_g.fetch(device_g.dispatch(*spectra(1, b)))
    assert not again, f"the guarded step recompiled: traced {again.traces}, compiled {again.compiles}"

    # the counter works: another batch shape is a new program
    with count_compilations() as other:
        device.fetch(device.dispatch(*spectra(4, b + device.n)))
    assert other.traces and other.compiles


def _data(seed: int, n: int = 90, d: int = 13, m: int = 3):
    """Standardised-flux-like x (n, d) and labels y (n, m) with the same NaN pattern for every seed."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = x[:, :m] @ rng.normal(size=(m, m)) + 0.1 * rng.normal(size=(n, m))
    y[::7, 1] = np.nan  # a label some stars lack
    return x, y


def _fit_counting(count_compilations, x, y, cfg):
    """fit(), with what was traced and compiled during each epoch (epoch 1 includes the set-up)."""
    per_epoch = []
    with count_compilations() as seen:

        def on_epoch(info):
            per_epoch.append(dataclasses.replace(seen, traces=list(seen.traces), compiles=list(seen.compiles)))
            seen.clear()

        result = fit(x, y, hidden=(6, 4), cfg=cfg, on_epoch=on_epoch)
        assert not seen, f"compiled after the last epoch: {seen}"
    return result, per_epoch


def test_training_epoch_compiles_only_in_the_first_epoch(count_compilations):
    cfg = dataclasses.replace(TrainConfig(), batch_size=16, eval_batch=40, max_epochs=4, patience=10, val_fraction=0.2)
    x, y = _data(0)
    result, epochs = _fit_counting(count_compilations, x, y, cfg)
    assert result.epochs_run == 4 and len(epochs) == 4
    assert "jit(_train_epoch)" in epochs[0].compiles and "jit(_val_loss)" in epochs[0].compiles
    for k, seen in enumerate(epochs[1:], start=2):
        assert not seen, f"epoch {k} recompiled: traced {seen.traces}, compiled {seen.compiles}"

    # a second training in the same process on other data of the same shapes compiles nothing
    _, again = _fit_counting(count_compilations, *_data(1), cfg)
    assert not any(again), [(e.traces, e.compiles) for e in again]

    # the counter works: another batch size is another epoch program, compiled in epoch 1 only
    _, other = _fit_counting(count_compilations, x, y, dataclasses.replace(cfg, batch_size=24, max_epochs=2))
    assert "jit(_train_epoch)" in other[0].compiles and not other[1]
