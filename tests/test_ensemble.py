"""The fused forward pass of the stacked networks against separate networks and NumPy float64."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxvac.labels import LABEL_NAMES, VMP_FEH_MAX, VMP_TEFF_MAX
from jaxvac.model import MLP, N_INPUT, N_VMP_INPUT, PAPER_VMP_RULE, StackedMLP, init_stack, predict_standardized
from jaxvac.train.job import ModelConfig
from jaxvac.train.fit import clip_by_member_norm
from jaxvac.kernels.ensemble import ensemble_forward, member_axes, per_member_sq_norm, select_members, vmp_forward

HIDDEN, VMP_HIDDEN = ModelConfig().hidden, ModelConfig().vmp_hidden  # the DR8 sizes (configs/dr8.toml [model])


def numpy_member(params: dict, m: int, x: np.ndarray) -> np.ndarray:
    """Member m written out layer by layer in float64 NumPy (independent of the kernel)."""
    w = [np.asarray(a, np.float64) for a in params["w"]]
    b = [np.asarray(a, np.float64) for a in params["b"]]
    h = np.maximum(x @ w[0][:, m, :] + b[0][m], 0.0)
    for wl, bl in zip(w[1:-1], b[1:-1]):
        h = np.maximum(h @ wl[m] + bl[m], 0.0)
    return h @ w[-1][m] + b[-1][m]


@pytest.fixture(scope="module")
def real():
    """The real-size 23-network stack (1974-512-256-64-1) and a small batch."""
    params = init_stack(3, N_INPUT, HIDDEN, len(LABEL_NAMES))
    x = np.random.default_rng(0).standard_normal((6, N_INPUT)).astype(np.float32)
    return params, x


def test_fused_equals_separate_networks_real_sizes(real):
    params, x = real
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        fused = np.asarray(jax.jit(ensemble_forward)(p64, jnp.asarray(x, jnp.float64)))
        assert fused.dtype == np.float64 and fused.shape == (6, 23)
        for m in range(23):
            sep = np.asarray(MLP.from_stack(p64, m)(jnp.asarray(x, jnp.float64)))
            np.testing.assert_allclose(fused[:, m], sep, rtol=1e-6, atol=1e-6)
    # float32 fused pass against the float64 NumPy layers
    f32 = np.asarray(jax.jit(ensemble_forward)(params, jnp.asarray(x)))
    ref = np.stack([numpy_member(params, m, x.astype(np.float64)) for m in range(23)], 1)
    assert np.std(ref) > 0.1  # outputs are not trivially zero
    np.testing.assert_allclose(f32, ref, rtol=0, atol=2e-4 * np.abs(ref).max())


def test_nnx_module_and_vmp_forward():
    stack = StackedMLP(N_VMP_INPUT, VMP_HIDDEN, 1, seed=5)
    x = np.random.default_rng(1).standard_normal((5, N_VMP_INPUT)).astype(np.float32)
    ref = numpy_member(stack.arrays(), 0, x.astype(np.float64))
    np.testing.assert_allclose(np.asarray(jax.jit(vmp_forward)(stack.arrays(), x)), ref, atol=1e-4)
    np.testing.assert_allclose(np.asarray(stack(x))[:, 0], ref, atol=1e-4)


def test_member_init_does_not_depend_on_stack_size():
    a = init_stack(0, 10, (6, 4), 3)
    b = init_stack(0, 10, (6, 4), 7)
    np.testing.assert_array_equal(np.asarray(a["w"][0]), np.asarray(b["w"][0][:, :3]))
    np.testing.assert_array_equal(np.asarray(a["w"][-1]), np.asarray(b["w"][-1][:3]))


def test_gradient_of_one_member_is_zero_in_all_others():
    params = init_stack(1, 12, (8, 6, 4), 5)
    x = jnp.asarray(np.random.default_rng(2).standard_normal((16, 12)), jnp.float32)
    m = 2
    g = jax.jit(jax.grad(lambda p: jnp.sum(ensemble_forward(p, x)[:, m] ** 2)))(params)
    for leaf, ax in zip(jax.tree.leaves(g), jax.tree.leaves(member_axes(g))):
        leaf = np.moveaxis(np.asarray(leaf), ax, 0)
        assert np.abs(leaf[m]).max() > 0
        assert np.all(leaf[np.arange(5) != m] == 0)


def test_per_member_clipping_matches_numpy_and_does_not_couple_members():
    params = init_stack(2, 12, (8, 4), 4)
    rng = np.random.default_rng(3)
    grads = jax.tree.map(lambda a: jnp.asarray(rng.standard_normal(a.shape), jnp.float32), params)
    big = jax.tree.map(lambda a, ax: a * jnp.where(jnp.arange(a.shape[ax]) == 0, 1e6, 1.0).reshape(
        [-1 if i == ax else 1 for i in range(a.ndim)]), grads, member_axes(grads))
    # reference per-member norms
    axes = jax.tree.leaves(member_axes(grads))
    sq = sum(np.sum(np.moveaxis(np.asarray(a, np.float64), ax, 0).reshape(4, -1) ** 2, 1)
             for a, ax in zip(jax.tree.leaves(grads), axes))
    np.testing.assert_allclose(np.asarray(per_member_sq_norm(grads)), sq, rtol=1e-5)
    clip = clip_by_member_norm(3.0)
    out, _ = jax.jit(clip.update)(grads, clip.init(params))
    scale = np.minimum(1.0, 3.0 / np.sqrt(sq))
    for a, o, ax in zip(jax.tree.leaves(grads), jax.tree.leaves(out), axes):
        expect = np.moveaxis(np.asarray(a, np.float64), ax, 0) * scale.reshape(-1, *[1] * (a.ndim - 1))
        np.testing.assert_allclose(np.moveaxis(np.asarray(o), ax, 0), expect, rtol=1e-5, atol=1e-7)
    # Adam after the clip: members 1..3 step identically whether member 0's gradient is huge or not.
    # Standard promotion here only: optax's bias correction raises a Python float to the int32
    # step count (optax/tree_utils/_tree_math.py, tree_bias_correction), which strict forbids.
    tx = optax.chain(clip_by_member_norm(3.0), optax.adam(1e-3))
    with jax.numpy_dtype_promotion("standard"):
        state = tx.init(params)
        u1, _ = jax.jit(tx.update)(grads, state, params)
        u2, _ = jax.jit(tx.update)(big, state, params)
    for a, b, ax in zip(jax.tree.leaves(u1), jax.tree.leaves(u2), axes):
        a, b = np.moveaxis(np.asarray(a), ax, 0), np.moveaxis(np.asarray(b), ax, 0)
        np.testing.assert_array_equal(a[1:], b[1:])


def test_select_members_keeps_per_member_weights():
    a = init_stack(0, 6, (4,), 3)
    b = init_stack(9, 6, (4,), 3)
    out = select_members(jnp.array([True, False, True]), a, b)
    for la, lb, lo, ax in zip(*(jax.tree.leaves(t) for t in (a, b, out)), jax.tree.leaves(member_axes(a))):
        la, lb, lo = (np.moveaxis(np.asarray(t), ax, 0) for t in (la, lb, lo))
        np.testing.assert_array_equal(lo[[0, 2]], la[[0, 2]])
        np.testing.assert_array_equal(lo[1], lb[1])


def test_predict_standardized_destandardises_and_applies_vmp_rule():
    m = len(LABEL_NAMES)
    params = {"ensemble": init_stack(0, N_INPUT, (4, 3), m), "vmp": init_stack(1, N_VMP_INPUT, (3,), 1)}
    rng = np.random.default_rng(4)
    x = rng.standard_normal((64, N_INPUT)).astype(np.float32)
    y_mean = rng.normal(size=m).astype(np.float32)
    y_std = rng.uniform(0.5, 2, m).astype(np.float32)
    net = np.stack([numpy_member(params["ensemble"], j, x.astype(np.float64)) for j in range(m)], 1)
    # centre Teff and [Fe/H] on the rule's thresholds so that both sides occur
    t, f = LABEL_NAMES.index("Teff_PASTEL"), LABEL_NAMES.index("feh_PASTEL")
    y_mean[t] = VMP_TEFF_MAX - y_std[t] * np.median(net[:, t])
    y_mean[f] = VMP_FEH_MAX - y_std[f] * np.median(net[:, f])
    params |= {"y_mean": y_mean, "y_std": y_std, "vmp_mean": np.float32(-2.0), "vmp_std": np.float32(0.4)}
    y, vmp = predict_standardized(params, jnp.asarray(x), vmp_rule=PAPER_VMP_RULE)
    assert np.all(np.isnan(np.asarray(predict_standardized(params, jnp.asarray(x))[1])))  # no rule: no estimate
    ref = y_mean + y_std * net
    np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    ref_vmp = -2.0 + 0.4 * numpy_member(params["vmp"], 0, x[:, :N_VMP_INPUT].astype(np.float64))
    cand = (np.asarray(y)[:, f] < VMP_FEH_MAX) & (np.asarray(y)[:, t] < VMP_TEFF_MAX)
    assert 0 < cand.sum() < len(x)
    np.testing.assert_allclose(np.asarray(vmp)[cand], ref_vmp[cand], atol=1e-4)
    assert np.all(np.isnan(np.asarray(vmp)[~cand]))


def test_renoise_adds_the_missing_noise_and_leaves_brighter_targets_alone():
    """renoise: a snrg-100 spectrum re-noised to a target t gets per-pixel noise of std
    sqrt(1/t**2 - 1/100**2) / x_std; a target above its own snrg adds nothing; bad pixels stay 0."""
    import jax
    import jax.numpy as jnp

    from jaxvac.train.fit import renoise

    b, d = 4, 20000
    x = jnp.ones((b, d), jnp.float32).at[:, :10].set(0.0)
    own = jnp.array([100.0, 100.0, 100.0, 20.0])
    x_std = jnp.full((d,), 0.5, jnp.float32)
    out = np.asarray(renoise(jax.random.PRNGKey(0), x, own, x_std, (25.0, 25.0)))  # t = 25 for all
    want = np.sqrt(1 / 25.0**2 - 1 / 100.0**2) / 0.5
    np.testing.assert_allclose((out[:3, 10:] - 1).std(1), want, rtol=0.03)
    assert np.array_equal(out[3], np.asarray(x[3]))  # own snrg 20 < target 25: no noise
    assert np.all(out[:, :10] == 0)  # bad pixels
