"""How many training points lie near each query point: the run-time half of a k-nearest-neighbour
sparseness test (a query lies where the training points are sparse when fewer than k lie within
the radius; the radius comes from the training points' own k-th neighbour distances).

No error checking is performed here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array


@jax.jit
def neighbours_within(q: Array, points: Array, radius: Array) -> Array:
    """Number of points within ``radius`` of each query (Euclidean).

    .. math::
        n_b = \\#\\{n : \\lVert q_b - p_n \\rVert_2 \\le r\\}

    n_b < k exactly when the k-th nearest point is farther than r: counting needs no sort (a
    top-k over N costs 30x more on a CPU). The differences are formed one coordinate at a time
    (no |q|^2 - 2 q.p + |p|^2 cancellation, no matrix product whose precision a GPU lowers): D
    is a handful of labels.

    Args:
        q: float32 (B, D) queries. points: float32 (N, D), finite. radius: float32 scalar r.

    Returns:
        int32 (B,): n_b; 0 where a coordinate of q_b is not finite.
    """
    d2 = sum(jnp.square(q[:, j, None] - points[None, :, j]) for j in range(q.shape[1]))  # (B, N); NaN rows stay NaN
    return jnp.sum(d2 <= jnp.square(radius), axis=-1, dtype=jnp.int32)


def sparse_rows(y: Array, guard: dict) -> dict:
    """Which rows' estimates lie where each training set's stars are sparse.

    .. math::
        \\mathrm{sparse}_{b,s} = n_b\\big((y_{b,c_s} - \\mu_s) / \\sigma_s;\\ P_s,\\ r_s\\big) < k_s

    Args:
        y: float32 (B, M) label estimates.
        guard: set -> {"points" (N_s, D_s) standardised training estimates, "cols" int (D_s,)
            their columns of y, "center" (D_s,), "scale" (D_s,), "radius" (), "neighbours" int ()
            k_s} (``jaxvac.train.guard``).

    Returns:
        set -> bool (B,); True also where an estimate it reads is not finite.
    """
    out = {}
    for name, g in guard.items():
        z = (jnp.take(y, g["cols"], axis=1) - g["center"]) / g["scale"]
        out[name] = neighbours_within(z.astype(jnp.float32), g["points"], g["radius"]) < g["neighbours"]
    return out
