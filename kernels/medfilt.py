"""Masked running median: the median of the good pixels in each window of ``width`` pixels.

Two formulations give the same numbers:

* ``"network"`` (default): the ``width`` shifted views of the array are fed to a min/max
  selection network (Batcher's odd-even merge sort, pruned to the lowest ``width // 2 + 1``
  ranks; bad pixels enter as +inf). It is a fixed sequence of elementwise ``minimum`` and
  ``maximum`` that XLA fuses into one loop; no (B, M, width) tensor is ever formed.
  For width 21: 99 comparators.
* ``"sort"``: stacks the views into a (..., M, width) tensor and calls ``jnp.sort``.

In both, the median of the n good values is the middle one for odd n and the mean of the two
middle ones for even n (as ``numpy.median``). A window with no good pixel gives 0 and count 0.
No error checking is performed here.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
from jax import Array


@functools.lru_cache(maxsize=None)
def selection_network(n: int, k: int) -> tuple[tuple[int, int], ...]:
    """Comparators (i, j), i < j, that leave the k smallest of n inputs sorted on wires 0..k-1.

    Batcher's odd-even merge sort on the next power of two (Knuth, TAOCP vol. 3, 5.3.4), with
    wires n.. held at +inf (comparators that touch them are no-ops and dropped) and comparators
    that cannot reach wires 0..k-1 removed.
    """
    size = 1 << max(0, (n - 1).bit_length())
    pairs = []
    p = 1
    while p < size:
        step = p
        while step >= 1:
            for j in range(step % p, size - step, 2 * step):
                for i in range(min(step, size - j - step)):
                    if (i + j) // (2 * p) == (i + j + step) // (2 * p):
                        pairs.append((i + j, i + j + step))
            step //= 2
        p *= 2
    # Wires >= n hold +inf and only ever move to higher wires: min(x, inf) = x is a no-op.
    pairs = [(i, j) for i, j in pairs if j < n]
    live, kept = set(range(k)), []
    for i, j in reversed(pairs):
        if i in live or j in live:
            live |= {i, j}
            kept.append((i, j))
    return tuple(reversed(kept))


def _lowest_ranks_network(views: list[Array], k: int) -> list[Array]:
    """The k smallest of the elementwise values in ``views``, sorted, as k arrays."""
    wires = list(views)
    for i, j in selection_network(len(wires), k):
        wires[i], wires[j] = jnp.minimum(wires[i], wires[j]), jnp.maximum(wires[i], wires[j])
    return wires[:k]


def masked_median_filter(
    values: Array, good: Array, *, width: int, method: str = "network"
) -> tuple[Array, Array]:
    """Running median of the good pixels, 'valid' mode: no padding at all.

    .. math::
        m_i = \\mathrm{median}\\{ v_{i+k} : 0 \\le k < w,\\ g_{i+k} \\}, \\qquad
        n_i = \\#\\{ k : g_{i+k} \\}

    Output pixel i covers input pixels i .. i + width - 1, so it sits at the centre of its
    window, input pixel i + width // 2. Callers that need a filtered value at every pixel of a
    region pass the region widened by width // 2 real pixels on each side (see
    ``jaxvac.kernels.normalize``). Non-finite values count as bad.

    Args:
        values: float32 (..., N).
        good: bool (..., N).
        width: odd window width in pixels, N >= width.
        method: ``"network"`` or ``"sort"`` (same results; see the module docstring).

    Returns:
        median: float32 (..., N - width + 1), 0 where the window has no good pixel.
        count: int32 (..., N - width + 1) good pixels in each window.
    """
    m = values.shape[-1] - width + 1
    good = good & jnp.isfinite(values)
    masked = jnp.where(good, values, jnp.inf)
    count = sum(good[..., k : k + m].astype(jnp.int32) for k in range(width))
    nrank = width // 2 + 1
    lo_rank = (count - 1) // 2
    hi_rank = count // 2
    if method == "network":
        ranks = _lowest_ranks_network([masked[..., k : k + m] for k in range(width)], nrank)
        lo, hi = ranks[0], ranks[0]
        for r in range(1, nrank):
            lo = jnp.where(lo_rank == r, ranks[r], lo)
            hi = jnp.where(hi_rank == r, ranks[r], hi)
    elif method == "sort":
        stacked = jnp.sort(jnp.stack([masked[..., k : k + m] for k in range(width)], axis=-1), axis=-1)
        lo = jnp.take_along_axis(stacked, jnp.clip(lo_rank, 0, width - 1)[..., None], axis=-1)[..., 0]
        hi = jnp.take_along_axis(stacked, jnp.clip(hi_rank, 0, width - 1)[..., None], axis=-1)[..., 0]
    else:
        raise ValueError(f"method must be 'network' or 'sort', got {method!r}.")
    median = jnp.where(count > 0, 0.5 * lo + 0.5 * hi, 0.0)
    return median, count
