"""The device step of a catalogue run: normalise, mask inputs outside the training range,
standardise, the label nets and the VMP net (when the model has one), and (when the checkpoint has
them) the "unlike the training spectra" score and the sparseness test of each training set, per batch.

Devices: ``parallel="sharding"`` (default) splits each batch over all local devices with a
NamedSharding; ``"pmap"`` does the same with jax.pmap; ``"none"`` uses one device.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

PARALLEL_MODES = ("sharding", "pmap", "none")


@functools.lru_cache(maxsize=None)
def _device_fn(layout, parallel: str, devices: tuple, vmp_rule):
    """The compiled per-batch device work: normalise, standardise, the label nets and the VMP net
    (vmp_rule: ``Predictor.vmp_rule``, static).

    Cached, so runs in one process (a benchmark, a notebook) compile each batch shape once.
    """
    from jaxvac.kernels.neighbours import sparse_rows
    from jaxvac.kernels.normalize import network_input
    from jaxvac.kernels.ood import pca_residual_score
    from jaxvac.kernels.standardize import bad_fraction
    from jaxvac.model import predict_standardized

    def step(params, x_mean, x_std, flux, ivar, good, rv, snrg):
        if good is None:  # a packed store: bad pixels have ivar = 0 (jaxvac.io.store)
            good = ivar > 0
        x, x_good, status = network_input(flux, ivar, good, rv, x_mean, x_std, layout=layout)
        y, vmp = predict_standardized(params, x, vmp_rule=vmp_rule)
        extra = {}  # what the checkpoint has the parameters of (jaxvac train since issue 12)
        if "ood" in params:
            if snrg is None:
                snrg = jnp.full(flux.shape[:1], jnp.nan, jnp.float32)
            extra["ood"] = pca_residual_score(x, x_good, params["ood"]["basis"], x_std, snrg, params["ood"]["floor"])
        if "guard" in params:
            extra["sparse"] = sparse_rows(y, params["guard"])
        return y, vmp, bad_fraction(x_good), status, extra

    return jax.pmap(step, devices=devices) if parallel == "pmap" else jax.jit(step)


class Device:
    """Runs the device step on one device, a NamedSharding over all local devices, or pmap."""

    def __init__(self, predictor, parallel: str, batch_size: int, layout):
        if parallel not in PARALLEL_MODES:
            raise ValueError(f"parallel must be one of {PARALLEL_MODES}, got {parallel!r}.")
        devices = jax.local_devices() if parallel != "none" else jax.local_devices()[:1]
        self.n = len(devices)
        self.batch_size = -(-batch_size // self.n) * self.n
        self.parallel = parallel
        self.description = f"{self.n} x {devices[0].platform} ({parallel})"
        self._fn = _device_fn(layout, parallel, tuple(devices), predictor.vmp_rule)
        if parallel == "pmap":
            # One copy per device along a leading axis, placed once (jax 0.10's pmap runs on
            # NamedSharding; device_put_replicated is gone).
            stacked = NamedSharding(Mesh(np.array(devices), ("d",)), PartitionSpec("d"))
            rep = lambda a: jax.device_put(np.stack([np.asarray(a)] * self.n), stacked)  # noqa: E731
            self.params = jax.tree.map(rep, predictor.params)
            self.stats = (rep(predictor.x_mean), rep(predictor.x_std))
        else:
            mesh = Mesh(np.array(devices), ("data",))
            self.data = NamedSharding(mesh, PartitionSpec("data"))
            repl = NamedSharding(mesh, PartitionSpec())
            self.params = jax.device_put(predictor.params, repl)
            self.stats = jax.device_put((predictor.x_mean, predictor.x_std), repl)

    def dispatch(self, flux, ivar, good, rv, snrg=None):
        """Start the device work of a batch; returns device arrays (not waited for).

        good: bool like flux, or None when bad pixels are those with ivar = 0 (a packed store).
        snrg: float32 (B,) g-band SNR for the ood_score (None: the score is NaN).
        """
        if self.parallel == "pmap":
            split = lambda a: None if a is None else a.reshape(self.n, a.shape[0] // self.n, *a.shape[1:])  # noqa: E731
            return self._fn(self.params, *self.stats, split(flux), split(ivar), split(good), split(rv), split(snrg))
        put = lambda a: None if a is None else jax.device_put(a, self.data)  # noqa: E731
        return self._fn(self.params, *self.stats, put(flux), put(ivar), put(good), put(rv), put(snrg))

    def fetch(self, out):
        """Wait for a dispatched batch; host arrays with the batch axis first: (labels (B, M),
        feh_vmp (B,) (NaN without a VMP network), bad_fraction (B,), status (B,), extra), extra
        holding what the checkpoint has the parameters of: "ood" (B,) the "unlike the training
        spectra" score, "sparse" {set: bool (B,)} the sparseness test of each training set."""
        out = jax.tree.map(np.asarray, out)
        if self.parallel == "pmap":
            out = jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), out)
        return out
