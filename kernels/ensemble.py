"""The fused forward pass of a stack of M independent ReLU MLPs sharing one input.

One network per label (Wang et al. 2022, Sect. 3; SPEC.md "Networks"): 23 networks
1974-512-256-64-1 on the standardised normalised flux, and the very-metal-poor network
524-256-64-1 on its first 524 pixels (3900-4400 A). Member m computes

.. math::

    h^{(0)}_m = x, \\quad
    h^{(l)}_m = \\mathrm{ReLU}(h^{(l-1)}_m W^{(l)}_m + b^{(l)}_m) \\ (l < L), \\quad
    y_m = h^{(L-1)}_m w^{(L)}_m + b^{(L)}_m .

The members share x, so layer 1 of all of them is ONE matmul of the (B, D) input with the
(D, M*H1) concatenation of their first-layer weights (87% of the FLOPs of the 23-net ensemble);
the later layers are batched matmuls over the member axis. Parameters are a plain pytree::

    {"w": [W1 (D, M, H1), W2 (M, H1, H2), ..., WL (M, H_{L-1})],
     "b": [b1 (M, H1),    b2 (M, H2),     ..., bL (M,)]}

W1 is input-major so the layer-1 matmul needs no transpose; every other array has the member
axis first. ``MEMBER_AXIS`` / :func:`member_axes` say where the member axis is in each leaf.

Pure functions of arrays: no error checking is performed here (``jaxvac.model`` validates).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array


def n_members(params: dict) -> int:
    """M, the number of stacked networks."""
    return params["b"][0].shape[0]


def member_axes(params: dict) -> dict:
    """A pytree like ``params`` holding the member axis of each leaf (1 for W1, else 0)."""
    return {
        "w": [1] + [0] * (len(params["w"]) - 1),
        "b": [0] * len(params["b"]),
    }


def ensemble_forward(params: dict, x: Array, precision=None) -> Array:
    """All M networks on one batch: ``Float[Array, "batch d"] -> Float[Array, "batch m"]``.

    x: (B, D) standardised normalised flux (dimensionless). Returns (B, M) outputs in the
    networks' (standardised) label units. ``precision`` is passed to the matmuls
    (None: the backend default, e.g. TF32 on recent NVIDIA GPUs; ``jax.lax.Precision.HIGHEST``
    for full float32). The output dtype is that of the layer-1 product.
    """
    ws, bs = params["w"], params["b"]
    d, m, h1 = ws[0].shape
    b = x.shape[0]
    h = jnp.dot(x, ws[0].reshape(d, m * h1), precision=precision).reshape(b, m, h1)
    # Member-major from layer 2 on: (m, b, h) @ (m, h, o) is a plain batched matmul, ~15-20%
    # faster on CPU than contracting "bmi,mio->bmo" (measured at B = 1024, paper sizes).
    h = jax.nn.relu(h + bs[0]).transpose(1, 0, 2)
    for w, bias in zip(ws[1:-1], bs[1:-1]):
        h = jax.nn.relu(jnp.matmul(h, w, precision=precision) + bias[:, None, :])
    return jnp.einsum("mbi,mi->bm", h, ws[-1], precision=precision) + bs[-1]


def vmp_forward(params: dict, x_vmp: Array, precision=None) -> Array:
    """The very-metal-poor network: ``Float[Array, "batch 524"] -> Float[Array, "batch"]``.

    x_vmp: (B, 524) standardised flux of 3900-4400 A (the first 524 network inputs). ``params``
    is a one-member stack (see module docstring); returns its output (standardised [Fe/H]).
    """
    return ensemble_forward(params, x_vmp, precision=precision)[:, 0]


def per_member_sq_norm(tree: dict) -> Array:
    """Sum of squares of each member's entries over all leaves: (M,). Equation: ||g_m||^2."""
    axes = member_axes(tree)

    def sq(a, ax):
        other = tuple(i for i in range(a.ndim) if i != ax)
        return jnp.sum(jnp.square(a), axis=other) if other else jnp.square(a)

    return sum(jax.tree.leaves(jax.tree.map(sq, tree, axes)))


def scale_members(tree: dict, scale: Array) -> dict:
    """Multiply member m's entries in every leaf by scale[m] (scale: (M,))."""
    axes = member_axes(tree)

    def f(a, ax):
        shape = [1] * a.ndim
        shape[ax] = a.shape[ax]
        return a * scale.reshape(shape).astype(a.dtype)

    return jax.tree.map(f, tree, axes)


def take_members(tree: dict, index) -> dict:
    """Members ``index`` (a static slice or an integer array) of every leaf, along its member axis."""
    axes = member_axes(tree)
    return jax.tree.map(lambda a, ax: a[(slice(None),) * ax + (index,)], tree, axes)


def select_members(mask: Array, on_true: dict, on_false: dict) -> dict:
    """Per member m: on_true's entries where mask[m], else on_false's (mask: (M,) bool)."""
    axes = member_axes(on_true)

    def f(a, b, ax):
        shape = [1] * a.ndim
        shape[ax] = a.shape[ax]
        return jnp.where(mask.reshape(shape), a, b)

    return jax.tree.map(f, on_true, on_false, axes)
