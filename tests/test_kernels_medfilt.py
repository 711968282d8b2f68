"""The masked median filter against a brute-force masked median, and its edge rules.

Runs under strict dtype promotion (tests/conftest.py, FLOAT64_REFERENCE_MODULES); the ``x64``
tests run the filter itself in float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from jaxvac.kernels.medfilt import masked_median_filter, selection_network

WIDTH = 21
SHAPE = (3, 64)  # one compilation per method for every test of this module
_network = jax.jit(lambda v, g: masked_median_filter(v, g, width=WIDTH, method="network"))
_sort = jax.jit(lambda v, g: masked_median_filter(v, g, width=WIDTH, method="sort"))


def brute_force(values, good, width=WIDTH):
    """Plain-Python masked running median ('valid' mode): 0 and count 0 for an all-bad window."""
    rows, n = values.shape
    med = np.zeros((rows, n - width + 1))
    cnt = np.zeros((rows, n - width + 1), int)
    for r in range(rows):
        for i in range(n - width + 1):
            vals = sorted(float(values[r, i + k]) for k in range(width) if good[r, i + k] and np.isfinite(values[r, i + k]))
            cnt[r, i] = len(vals)
            if vals:
                h = len(vals) // 2
                med[r, i] = vals[h] if len(vals) % 2 else 0.5 * (vals[h - 1] + vals[h])
    return med, cnt


def test_selection_network_sorts_every_zero_one_input():
    """0-1 principle: the pruned network leaves the 11 lowest of any 21 inputs sorted."""
    pairs = selection_network(WIDTH, WIDTH // 2 + 1)
    assert len(pairs) == 99
    code = np.arange(1 << WIDTH, dtype=np.uint32)
    wires = [((code >> i) & 1).astype(bool) for i in range(WIDTH)]
    for i, j in pairs:
        wires[i], wires[j] = wires[i] & wires[j], wires[i] | wires[j]
    zeros = WIDTH - sum(w.astype(np.int8) for w in wires)
    for r in range(WIDTH // 2 + 1):
        np.testing.assert_array_equal(wires[r], zeros <= r)


values_strategy = arrays(
    np.float32, SHAPE, elements=st.one_of(st.floats(-1e3, 1e3, width=32), st.sampled_from([0.0, 1.0, 2.0]))
)


@settings(max_examples=40, deadline=None)
@given(values=values_strategy, good=arrays(np.bool_, SHAPE), sparse=st.booleans())
def test_median_equals_brute_force(values, good, sparse):
    if sparse:  # many windows with few, even-numbered or no good pixels
        good = good & (np.arange(SHAPE[1]) % 5 == 0)
    want_med, want_cnt = brute_force(values, good)
    for method in (_network, _sort):
        med, cnt = (np.asarray(a) for a in method(values, good))
        np.testing.assert_array_equal(cnt, want_cnt)
        np.testing.assert_allclose(med, want_med, rtol=1e-6, atol=1e-6)


def test_edge_and_all_bad_rules():
    v = np.tile(np.arange(SHAPE[1], dtype=np.float32), (SHAPE[0], 1))
    g = np.ones(SHAPE, bool)
    g[0] = False  # row 0: nothing good -> 0 with count 0, never NaN
    g[1, :30] = False  # row 1: the first windows see only their right-hand pixels
    v[2, 5] = np.nan  # row 2: a NaN marked good counts as bad
    med, cnt = (np.asarray(a) for a in _network(v, g))
    assert np.all(med[0] == 0) and np.all(cnt[0] == 0)
    # output i covers inputs i..i+20; row 1 window 0 has good inputs 30..20 -> none; window 10 has 30
    assert cnt[1, 0] == 0 and med[1, 0] == 0
    assert cnt[1, 10] == 1 and med[1, 10] == 30
    assert cnt[1, 11] == 2 and med[1, 11] == 30.5  # even count: mean of the two middle values
    assert cnt[2, 0] == 20 and med[2, 0] == np.median(np.delete(np.arange(21.0), 5))
    assert np.isfinite(med).all()


# no values below 1e-300: halving one would leave the normal range (XLA on CPU flushes
# subnormals to zero), where 0.5 x + 0.5 x == x no longer holds
values64_strategy = arrays(
    np.float64, SHAPE,
    elements=st.one_of(st.floats(-1e3, 1e3).filter(lambda v: v == 0 or abs(v) > 1e-300), st.sampled_from([0.0, 1.0, 2.0])),
)


@pytest.mark.x64
@settings(max_examples=20, deadline=None)
@given(values=values64_strategy, good=arrays(np.bool_, SHAPE))
def test_float64_median_equals_brute_force_exactly(values, good):
    """In float64 the filter is exact: 0.5 lo + 0.5 hi and 0.5 (lo + hi) round the same."""
    want_med, want_cnt = brute_force(values, good)
    for method in (_network, _sort):
        med, cnt = method(values, good)
        assert med.dtype == jnp.float64 and cnt.dtype == jnp.int32
        np.testing.assert_array_equal(np.asarray(cnt), want_cnt)
        np.testing.assert_array_equal(np.asarray(med), want_med)


@pytest.mark.x64
def test_float32_stays_float32_with_x64_on():
    v = np.random.default_rng(7).normal(size=SHAPE).astype(np.float32)
    g = np.ones(SHAPE, bool)
    for method in (_network, _sort):
        med, cnt = method(v, g)
        assert (med.dtype, cnt.dtype) == (jnp.float32, jnp.int32)


def test_module_runs_under_strict_promotion_without_x64():
    """The conftest fixture is active here (and x64 is not): int32 + float32 must raise."""
    assert jax.config.jax_numpy_dtype_promotion == "strict" and not jax.config.jax_enable_x64
    with pytest.raises(jax.dtypes.TypePromotionError, match="strict"):
        jnp.ones(2, jnp.int32) + jnp.ones(2, jnp.float32)
