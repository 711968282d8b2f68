"""The label networks (the paper's 23, or any list of labels) and the very-metal-poor (VMP) network as Flax NNX modules.

Wang et al. (2022) train one fully connected network per label: input the N_INPUT = 1974
standardised normalised-flux pixels, ReLU hidden layers, one output (SPEC.md "Networks"; the
hidden sizes are ``[model] hidden`` and ``vmp_hidden`` of configs/dr8.toml, passed in by the
caller and recorded in the checkpoint). jaxvac keeps the M label networks (M = 23 for the paper's
labels; any list a config gives, ``jaxvac.labels``) as ONE stacked parameter
tree with a member axis (:class:`StackedMLP`) whose forward pass is the fused kernel
:func:`jaxvac.kernels.ensemble.ensemble_forward`; :class:`MLP` is the same network as a plain
single-member NNX module (``nnx.Linear`` layers), used to check the stack and by the "loop"
benchmark. The VMP network (input 3900-4400 A, the first N_VMP_INPUT = 524 inputs) is a
one-member stack.

:class:`Predictor` bundles the trained parameters with their standardisation statistics and
evaluates both networks in one jitted call (:func:`predict_standardized`), returning labels in
physical units and feh_VMP where the candidate rule holds (NaN everywhere for a model without
the VMP network: its rule's labels were not trained).
"""

from __future__ import annotations

import dataclasses
import functools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxvac.constants import VMP_WINDOW, window_pixels
from jaxvac.kernels.ensemble import ensemble_forward, vmp_forward
from jaxvac.labels import PAPER, LabelSchema, checkpoint_schema
from jaxvac.preprocess import LAYOUT

N_INPUT = LAYOUT.npix_out  # network inputs: the pixels of constants.WINDOWS (1974)
_VMP_PIXELS = window_pixels(*VMP_WINDOW)
N_VMP_INPUT = _VMP_PIXELS[1] - _VMP_PIXELS[0]  # VMP network inputs: the first ones, constants.VMP_WINDOW (524)
if not LAYOUT.windows[0][0] == _VMP_PIXELS[0] < _VMP_PIXELS[1] <= LAYOUT.windows[0][1]:  # pragma: no cover
    raise RuntimeError(f"constants.VMP_WINDOW must be the start of the first window: its pixels {_VMP_PIXELS} "
                       f"must begin the window {LAYOUT.windows[0]}, as the VMP network reads the first inputs.")

PAPER_VMP_RULE = PAPER.vmp_indices()  # (feh index, teff index, feh_max, teff_max) of the paper's 23 labels


def init_stack(seed: int, n_in: int, hidden: tuple[int, ...], n_members: int) -> dict:
    """Initial float32 parameters of M networks n_in-hidden...-1 in the layout of jaxvac.kernels.ensemble.

    He-normal weights (std sqrt(2/fan_in)) for the ReLU layers, LeCun-normal (sqrt(1/fan_in))
    for the linear output, zero biases. Member m's weights come from NumPy's generator seeded
    with (seed, m, layer): they do not depend on M, and no JAX random kernel has to be compiled.
    """
    sizes = (n_in, *hidden, 1)
    ws, bs = [], []
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        std = np.sqrt((2.0 if layer < len(hidden) else 1.0) / fan_in)
        w = np.stack(
            [np.random.default_rng([seed, m, layer]).standard_normal((fan_in, fan_out), np.float32) * np.float32(std)
             for m in range(n_members)]
        )  # (M, fan_in, fan_out)
        if layer == 0:
            w = np.ascontiguousarray(np.transpose(w, (1, 0, 2)))  # (D, M, H1): layer 1 is one wide matmul
        if fan_out == 1:
            w = w[..., 0]  # (M, H_last)
        ws.append(jnp.asarray(w))
        bs.append(jnp.zeros((n_members, fan_out) if fan_out > 1 else (n_members,), jnp.float32))
    return {"w": ws, "b": bs}


class StackedMLP(nnx.Module):
    """M ReLU networks n_in-hidden-1 with per-member weights and a shared input.

    Parameters are ``nnx.Param`` arrays with a member axis (see jaxvac.kernels.ensemble for the
    layout); ``__call__(x (B, n_in)) -> (B, M)`` is the fused kernel.
    """

    def __init__(self, n_in: int, hidden: tuple[int, ...], n_members: int, *, seed: int = 0):
        p = init_stack(seed, n_in, tuple(hidden), n_members)
        self.w = nnx.List([nnx.Param(a) for a in p["w"]])
        self.b = nnx.List([nnx.Param(a) for a in p["b"]])

    def arrays(self) -> dict:
        """The parameters as the plain pytree the kernels take."""
        return {"w": [p[...] for p in self.w], "b": [p[...] for p in self.b]}

    def load_arrays(self, params: dict) -> None:
        """Overwrite the parameters with a pytree of the same layout and shapes."""
        for var, a in zip([*self.w, *self.b], [*params["w"], *params["b"]]):
            if var[...].shape != a.shape:
                raise ValueError(f"parameter shape mismatch: model has {var[...].shape}, got {a.shape}.")
            var[...] = a

    def __call__(self, x: jax.Array) -> jax.Array:
        return ensemble_forward(self.arrays(), x)


class MLP(nnx.Module):
    """One network n_in-hidden-1 with ``nnx.Linear`` layers (ReLU between, linear output)."""

    def __init__(self, n_in: int, hidden: tuple[int, ...], *, rngs: nnx.Rngs, param_dtype=jnp.float32,
                 kernel_init=nnx.initializers.lecun_normal()):
        sizes = (n_in, *hidden, 1)
        self.layers = nnx.List([nnx.Linear(i, o, rngs=rngs, param_dtype=param_dtype, kernel_init=kernel_init)
                                for i, o in zip(sizes[:-1], sizes[1:])])

    @classmethod
    def from_stack(cls, params: dict, m: int) -> "MLP":
        """Member m of a stacked parameter tree as a separate network (weights copied)."""
        w, b = params["w"], params["b"]
        ws = [w[0][:, m, :]] + [a[m] for a in w[1:-1]] + [w[-1][m][:, None]]
        bs = [a[m] for a in b[:-1]] + [b[-1][m : m + 1]]
        net = cls(ws[0].shape[0], tuple(a.shape[1] for a in ws[:-1]), rngs=nnx.Rngs(0), param_dtype=ws[0].dtype,
                  kernel_init=nnx.initializers.zeros)
        for layer, w, b in zip(net.layers, ws, bs):
            layer.kernel[...] = w
            layer.bias[...] = b
        return net

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers[:-1]:
            x = jax.nn.relu(layer(x))
        return self.layers[-1](x)[:, 0]


@partial(jax.jit, static_argnames=("precision", "vmp_rule"))
def predict_standardized(params: dict, x: jax.Array, precision=None,
                         vmp_rule: tuple[int, int, float, float] | None = None) -> tuple[jax.Array, jax.Array]:
    """Labels and feh_VMP of a batch in ONE jitted call.

    params: ``{"ensemble", "y_mean" (M,), "y_std" (M,)}`` and, for a model with the VMP network,
    ``{"vmp", "vmp_mean" (), "vmp_std" ()}``. x: (B, 1974) standardised normalised flux.
    vmp_rule: (feh index, teff index, feh_max, teff_max) of the candidate rule
    (``LabelSchema.vmp_indices``; ``PAPER_VMP_RULE`` for the paper's 23 labels: feh_PASTEL < -1.5 dex
    and Teff_PASTEL < 6500 K); None: no VMP estimate (feh_vmp all NaN), whatever the params hold.
    Returns labels (B, M) in physical units (y = mean + std * net) and feh_vmp (B,) in dex, NaN
    where the rule does not hold and everywhere without a VMP network.
    """
    y = params["y_mean"] + params["y_std"] * ensemble_forward(params["ensemble"], x, precision)
    if "vmp" not in params or vmp_rule is None:
        return y, jnp.full(x.shape[:1], jnp.nan, y.dtype)
    feh, teff, feh_max, teff_max = vmp_rule
    vmp = params["vmp_mean"] + params["vmp_std"] * vmp_forward(params["vmp"], x[:, :N_VMP_INPUT], precision)
    candidate = (y[:, feh] < feh_max) & (y[:, teff] < teff_max)
    return y, jnp.where(candidate, vmp, jnp.nan)


@dataclasses.dataclass
class Predictor:
    """Trained networks plus everything needed to apply them to standardised flux.

    params: the pytree of :func:`predict_standardized`, and from a checkpoint that has one the
    "unlike the training spectra" basis ``{"ood": {"basis" (K, 1974), "floor" ()}}``
    (:func:`jaxvac.kernels.ood.pca_residual_score`, used by the run's device step). x_mean, x_std:
    (1974,) flux standardisation statistics of the training stars. metadata: the checkpoint's JSON metadata
    (label names and units, training ranges, grid, config, version, metrics).
    """

    params: dict
    x_mean: np.ndarray
    x_std: np.ndarray
    metadata: dict

    @functools.cached_property
    def schema(self) -> LabelSchema:
        """The labels this model predicts (from its metadata, read once; ``jaxvac.labels``)."""
        return checkpoint_schema(self.metadata)

    @property
    def vmp_rule(self) -> tuple[int, int, float, float] | None:
        """The static VMP candidate rule of :func:`predict_standardized` (None: no VMP network)."""
        return self.schema.vmp_indices() if "vmp" in self.params else None

    def predict(self, x: jax.Array, precision=None) -> tuple[jax.Array, jax.Array]:
        """(labels (B, M), feh_vmp (B,)) from standardised flux x (B, N_INPUT)."""
        if x.ndim != 2 or x.shape[1] != N_INPUT:
            raise ValueError(f"x must be standardised flux of shape (batch, {N_INPUT}); got {tuple(x.shape)}.")
        return predict_standardized(self.params, x, precision=precision, vmp_rule=self.vmp_rule)
