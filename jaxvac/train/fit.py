"""Training of M stacked networks at once, each on its own stars (Wang et al. 2022, Sect. 3).

:func:`fit` takes standardised flux X (N, D) and labels Y (N, M) with NaN where a star has no
value for a label (a star of the APOGEE set has no absolute magnitudes, ...). Member m's loss is
the mean squared error of its standardised label over the stars of the batch that have label m,

.. math::

    L = \\sum_m \\frac{\\sum_i w_{im} (f_m(x_i) - z_{im})^2}{\\max(1, \\sum_i w_{im})},
    \\quad z_{im} = (y_{im} - \\mu_m) / \\sigma_m ,

so a member's gradient is zero in every other member's parameters. The optimiser is optax Adam
after a per-member gradient-norm clip (each member's gradient is rescaled to norm <= clip_norm on
its own; one member's large gradient never shrinks another's step). Each member keeps the weights
of its best validation epoch and stops improving after ``patience`` epochs without a better
validation loss (the stack keeps running until every member has stopped or max_epochs).

Fixed seeds give bit-identical weights on the same device count. With several local devices the
batch is split over a 1-D ``data`` mesh (parameters replicated, gradients all-reduced by XLA).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxvac.config import recipe_defaults
from jaxvac.model import init_stack
from jaxvac.kernels.ensemble import ensemble_forward, per_member_sq_norm, scale_members, select_members, take_members


@dataclasses.dataclass(frozen=True)
@recipe_defaults("train")
class TrainConfig:
    """``[train]`` of configs/*.toml: the optimisation and the training data; the defaults are
    those of configs/dr8.toml [train].

    seed: integer seed of initialisation, validation split and shuffling.
    batch_size: stars per step (rounded up to a multiple of the local device count).
    learning_rate: Adam step size.
    max_epochs: hard limit on passes over the training stars.
    patience: epochs without a better validation loss after which a member stops improving.
    min_delta: improvement (standardised squared label units) that counts as better.
    val_fraction: fraction of each training set's stars held out for early stopping.
    clip_norm: per-member gradient norm limit.
    eval_batch: stars per step when computing validation loss and predictions.
    data_dir: survey directory the catalogue paths are relative to (``--data`` overrides).
    catalogs: training catalogues per training set, relative to data_dir.
    test_catalog: catalogue of held-out stars with true labels (``""``: no evaluation).
    cache_dir: where normalised spectra are cached, relative to out_dir unless absolute.
    out_dir: run directory: checkpoint/, report.md, plots (``--out`` overrides).
    workers: reader processes when filling the cache.
    snr_bins: SNR (snrg) bin edges of the evaluation table.
    range_percentile: percent p; a label's flag range is the [p, 100 - p] percentiles of its
        curated training stars' labels (0: their min and max); recorded in the checkpoint.
    error_check_bins: snrg bin edges of the error-calibration table (std of residual / Err).
    noise_augment: re-noise every training spectrum, fresh each epoch and on device, to a snrg
        drawn log-uniformly from ``augment_snr`` (:func:`fit` with ``augment``); off by default.
    augment_snr: (lo, hi) snrg range of that re-noising.
    set_batches: each training set's networks step on batches of that set's stars alone (the
        batch split between the sets in proportion to their stars, the same number of steps per
        epoch), instead of every network on every star of a batch (:func:`fit` with ``groups``).
    augment_sets: with ``noise_augment``, the training sets whose networks train on re-noised
        spectra (() or []: every set); naming only some of them needs ``set_batches``.
    """

    seed: int
    batch_size: int
    learning_rate: float
    max_epochs: int
    patience: int
    min_delta: float
    val_fraction: float
    clip_norm: float
    eval_batch: int
    data_dir: str
    catalogs: dict[str, str]
    test_catalog: str
    cache_dir: str
    out_dir: str
    workers: int
    snr_bins: tuple[float, ...]
    range_percentile: float
    error_check_bins: tuple[float, ...]
    noise_augment: bool
    augment_snr: tuple[float, ...]
    set_batches: bool
    augment_sets: tuple[str, ...]


@dataclasses.dataclass
class EpochInfo:
    """Passed to ``on_epoch`` after each epoch (numpy arrays, one entry per member)."""

    epoch: int  # 1-based
    max_epochs: int
    train_loss: np.ndarray  # (M,) mean batch loss of the epoch, standardised units
    val_loss: np.ndarray  # (M,)
    best_val: np.ndarray  # (M,)
    best_epoch: np.ndarray  # (M,)
    stopped: np.ndarray  # (M,) bool


@dataclasses.dataclass
class FitResult:
    """The best weights per member and how they were found.

    params: stacked parameters (jaxvac.kernels.ensemble layout), each member at its best epoch.
    y_mean, y_std: (M,) label standardisation of the training stars.
    val_mask: (N,) bool, the stars held out for validation.
    history: (epochs, M) validation loss per epoch (standardised squared label units).
    """

    params: dict
    y_mean: np.ndarray
    y_std: np.ndarray
    val_mask: np.ndarray
    best_val: np.ndarray
    best_epoch: np.ndarray
    n_train: np.ndarray
    n_val: np.ndarray
    history: np.ndarray
    epochs_run: int


def clip_by_member_norm(max_norm: float) -> optax.GradientTransformation:
    """Rescale each member's gradient to global norm <= max_norm, members independently.

    g_m <- g_m * min(1, max_norm / ||g_m||), ||g_m|| over all of member m's parameters.
    """

    def init_fn(params):
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        norm = jnp.sqrt(per_member_sq_norm(updates))
        scale = jnp.where(norm > max_norm, max_norm / jnp.where(norm > 0, norm, 1.0), 1.0)
        return scale_members(updates, scale), state

    return optax.GradientTransformation(init_fn, update_fn)


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """Per-member clipping, then Adam (one object per setting, so compiled steps are reused)."""
    return _optimizer(float(cfg.clip_norm), float(cfg.learning_rate))


@functools.lru_cache(maxsize=8)
def _optimizer(clip_norm: float, learning_rate: float) -> optax.GradientTransformation:
    return optax.chain(clip_by_member_norm(clip_norm), optax.adam(learning_rate))


def member_losses(params: dict, x: jax.Array, z: jax.Array, w: jax.Array) -> jax.Array:
    """(M,) masked mean squared error per member; z, w: (B, M) standardised labels and weights."""
    pred = ensemble_forward(params, x)
    sse = jnp.sum(w * jnp.square(pred - z), axis=0)
    return sse / jnp.maximum(jnp.sum(w, axis=0), 1.0)


def _total_loss(params, x, z, w):
    per = member_losses(params, x, z, w)
    return jnp.sum(per), per


def _grouped_loss(params, ranges, xs, zs, ws):
    """:func:`_total_loss` of member groups: group g (members ranges[g] = (a, b)) on its own batch
    xs[g] (B_g, D), zs[g], ws[g] (B_g, b - a). Returns (sum, (M,) per-member losses)."""
    per = [member_losses(take_members(params, slice(a, b)), xb, zb, wb) for (a, b), xb, zb, wb in zip(ranges, xs, zs, ws)]
    per = jnp.concatenate(per)
    return jnp.sum(per), per


def _constrain(a, sharding):
    return a if sharding is None else jax.lax.with_sharding_constraint(a, sharding)


def renoise(key, xb, own_snr, x_std, snr_range):
    """Standardised flux xb (B, D) re-noised to a snrg drawn log-uniformly from snr_range.

    A spectrum of snrg s gets Gaussian noise of std sqrt(1 / t**2 - 1 / s**2) / x_std per pixel
    (relative flux noise 1 / snrg, in standardised units), t the drawn target; none where t >= s.
    The g-band snrg stands for every pixel's (the cache keeps no ivar). Bad pixels (x = 0) stay 0.
    """
    lo, hi = snr_range
    k1, k2 = jax.random.split(key)
    t = jnp.exp(jnp.log(lo) + jax.random.uniform(k1, own_snr.shape) * (jnp.log(hi) - jnp.log(lo)))
    return renoise_to(k2, xb, own_snr, t, x_std)


def renoise_to(key, xb, own_snr, target, x_std):
    """Standardised flux xb (B, D) of snrg own_snr (B,) re-noised to snrg target (B,): Gaussian
    noise of std sqrt(1 / target**2 - 1 / own_snr**2) / x_std per pixel (none where target >=
    own_snr); bad pixels (x = 0) stay 0. The noise model of :func:`renoise`."""
    s = jnp.where(jnp.isfinite(own_snr) & (own_snr > 0), own_snr, jnp.inf)
    add = jnp.sqrt(jnp.maximum(1.0 / target**2 - 1.0 / s**2, 0.0))
    noise = jax.random.normal(key, xb.shape, xb.dtype) * (add[:, None] / x_std[None, :]).astype(xb.dtype)
    return jnp.where(xb != 0, xb + noise, xb)


@partial(jax.jit, static_argnums=(0, 1, 2), static_argnames=("snr_range", "noisy"), donate_argnums=(3, 4))
def _train_epoch(tx, sharding, ranges, params, opt_state, x, z, w, idx, valid, keys=None, snr=None, x_std=None,
                 snr_range=None, noisy=None):
    """One pass: a lax.scan of Adam steps over index batches.

    ranges: static ((a, b), ...), the member groups (one group (0, M): every member on every star
    of a batch); idx, valid: one (S, B_g) index array and validity mask per group, step s trains
    group g on x[idx[g][s]]. snr_range: None, or (lo, hi): each batch is re-noised
    (:func:`renoise`) with its key of keys (S,) (folded with the group number when there are
    several), from the stars' snr (N,) and the pixels' x_std (D,); noisy: static, a bool per
    group (None: all), the groups re-noised. Returns the parameters, the optimizer state and the
    (M,) mean batch loss of the members.
    """

    def step(carry, batch):
        params, opt_state = carry
        ii, vv, key = batch
        xs, zs, ws = [], [], []
        for g, ((a, b), i, v) in enumerate(zip(ranges, ii, vv)):
            xb = x[i]
            if snr_range is not None and (noisy is None or noisy[g]):
                xb = renoise(key if len(ranges) == 1 else jax.random.fold_in(key, g), xb, snr[i], x_std, snr_range)
            xs.append(_constrain(xb, sharding))
            zs.append(_constrain(z[i, a:b], sharding))
            ws.append(_constrain(w[i, a:b] * v[:, None], sharding))
        (_, per), grads = jax.value_and_grad(_grouped_loss, has_aux=True)(params, ranges, xs, zs, ws)
        updates, opt_state = tx.update(grads, opt_state, params)
        has = jnp.concatenate([jnp.sum(wb, axis=0) > 0 for wb in ws])
        return (optax.apply_updates(params, updates), opt_state), (per, has)

    (params, opt_state), (per, has) = jax.lax.scan(step, (params, opt_state), (tuple(idx), tuple(valid), keys))
    mean_loss = jnp.sum(jnp.where(has, per, 0.0), axis=0) / jnp.maximum(jnp.sum(has, axis=0), 1)
    return params, opt_state, mean_loss


@partial(jax.jit, static_argnums=(0,))
def _val_loss(sharding, params, x, z, w, idx, valid):
    """(M,) masked mean squared error over the (S, B) index batches idx."""

    def step(acc, batch):
        i, v = batch
        xb = _constrain(x[i], sharding)
        wb = _constrain(w[i] * v[:, None], sharding)
        pred = ensemble_forward(params, xb)
        sse = jnp.sum(wb * jnp.square(pred - _constrain(z[i], sharding)), axis=0)
        return (acc[0] + sse, acc[1] + jnp.sum(wb, axis=0)), None

    m = z.shape[1]
    (sse, cnt), _ = jax.lax.scan(step, (jnp.zeros(m), jnp.zeros(m)), (idx, valid))
    return sse / jnp.maximum(cnt, 1.0)


@jax.jit
def _keep_best(improved, params, best):
    return select_members(improved, params, best)


def split_validation(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """(N,) bool validation mask: a random ``fraction`` of the stars, fixed by ``seed``.

    Drawn per star, so a star in several training sets is held out from all of them at once.
    """
    rng = np.random.default_rng([seed, 1])
    return rng.random(y.shape[0]) < fraction


def _data_sharding(devices=None):
    """NamedSharding of the batch axis over a 1-D 'data' mesh, or None for one device."""
    devices = list(devices) if devices is not None else jax.local_devices()
    if len(devices) == 1:
        return None, jax.sharding.SingleDeviceSharding(devices[0]), 1
    mesh = Mesh(np.array(devices), ("data",))
    return NamedSharding(mesh, PartitionSpec("data")), NamedSharding(mesh, PartitionSpec()), len(devices)


def _batch_indices(idx: np.ndarray, batch: int, steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(S, batch) indices and validity: idx cut into fixed-size batches, the last one padded;
    S = ``steps`` (>= the batches idx needs) or as many as idx needs."""
    s = max(1, -(-len(idx) // batch), steps or 0)
    out = np.zeros(s * batch, np.int32)
    valid = np.zeros(s * batch, bool)
    out[: len(idx)] = idx
    valid[: len(idx)] = True
    return out.reshape(s, batch), valid.reshape(s, batch)


def label_standardization(y: np.ndarray, train_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-label mean and std (ddof 0) of the training stars that have the label: (M,), (M,).

    A label with fewer than 2 training stars or zero spread cannot be learned: ValueError.
    """
    m = y.shape[1]
    mean, std = np.zeros(m), np.ones(m)
    for j in range(m):
        v = y[train_mask & np.isfinite(y[:, j]), j].astype(np.float64)
        if v.size < 2 or not np.std(v) > 0:
            raise ValueError(
                f"member {j} has {v.size} training stars with a finite label and spread "
                f"{np.std(v) if v.size else float('nan')}; each network needs >= 2 stars with distinct "
                f"labels: add stars to its training catalogue or drop the label."
            )
        mean[j], std[j] = v.mean(), v.std()
    return mean, std


def _set_batches(group_stars: Sequence[np.ndarray], n_stars: int, batch: int, n_dev: int = 1) -> tuple[int, list[int]]:
    """(steps, stars per step of each group) of an epoch: steps = ceil(n_stars / batch); one group
    steps on ``batch`` stars, several on ceil(n_g / steps) each (a group's share of the batch),
    rounded up to a multiple of n_dev."""
    steps = max(1, -(-n_stars // batch))
    sizes = [batch] if len(group_stars) == 1 else [max(1, -(-len(g) // steps)) for g in group_stars]
    return steps, [-(-b // n_dev) * n_dev for b in sizes]


def _epoch_batches(rng: np.random.Generator, group_stars: Sequence[np.ndarray], sizes: Sequence[int],
                   steps: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per group, its stars shuffled by rng and cut into (steps, size) batches (:func:`_batch_indices`)."""
    return [_batch_indices(rng.permutation(g), b, steps) for g, b in zip(group_stars, sizes)]


def _group_plan(groups, m: int) -> tuple[np.ndarray, tuple[tuple[int, int], ...]]:
    """(order, ranges): the member order that makes each group contiguous (stable) and each
    group's (start, stop) in it; one group (0, m) for groups None."""
    if groups is None:
        return np.arange(m), ((0, m),)
    g = np.asarray(groups)
    if g.shape != (m,):
        raise ValueError(f"groups must give one group per member, ({m},); got shape {g.shape}.")
    order = np.argsort(g, kind="stable")
    gs = g[order]
    cuts = np.flatnonzero(gs[1:] != gs[:-1]) + 1
    bounds = [0, *cuts.tolist(), m]
    return order, tuple(zip(bounds[:-1], bounds[1:]))


def fit(
    x: np.ndarray,
    y: np.ndarray,
    *,
    hidden: tuple[int, ...],
    cfg: TrainConfig,
    val_mask: np.ndarray | None = None,
    on_epoch: Callable[[EpochInfo], None] | None = None,
    devices=None,
    augment: tuple[np.ndarray, np.ndarray] | None = None,
    groups=None,
    augment_groups=None,
) -> FitResult:
    """Train M = y.shape[1] networks D-hidden-1 on standardised flux x (N, D).

    y: (N, M) labels in physical units, NaN where a star has no value for that network.
    val_mask: (N,) stars held out for early stopping (default: :func:`split_validation`).
    on_epoch: called with an :class:`EpochInfo` after every epoch (progress display).
    devices: local devices for data parallelism (default: all local devices).
    augment: (snrg (N,), x_std (D,)): with ``cfg.noise_augment``, every training batch is
        re-noised on device to a snrg drawn from ``cfg.augment_snr`` (:func:`renoise`), fresh
        every epoch (keys from ``cfg.seed``); validation stays on the spectra as they are.
    groups: (M,) a group per member (e.g. its training set): each step then trains every group
        on a batch of its own stars (those with a label of the group), of ``cfg.batch_size`` x
        the group's share of the training stars, so no network computes on stars it has no label
        for; the same number of steps per epoch. None: one group, every member on every star of a
        batch of ``cfg.batch_size``.
    augment_groups: the groups ``augment`` re-noises (None: all); with groups None, every member.
    """
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x must be (N, D) and y (N, M) with the same N; got {x.shape} and {y.shape}.")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"x has {int((~np.isfinite(x)).sum())} non-finite values; standardise with masked pixels set to 0.")
    n, m = y.shape
    order, ranges = _group_plan(groups, m)
    y = y[:, order]  # members grouped; every per-member result is put back in the caller's order at the end
    inverse = np.argsort(order)
    if val_mask is None:
        val_mask = split_validation(y, cfg.val_fraction, cfg.seed)
    val_mask = np.asarray(val_mask, bool)
    train_mask = ~val_mask
    known = np.isfinite(y)
    n_train = (known & train_mask[:, None]).sum(0)
    n_val = (known & val_mask[:, None]).sum(0)
    if np.any(n_val == 0):
        raise ValueError(
            f"members {order[np.flatnonzero(n_val == 0)].tolist()} have no validation stars (val_fraction="
            f"{cfg.val_fraction}, {n} stars); raise val_fraction or add stars."
        )
    y_mean, y_std = (v[order] for v in label_standardization(y[:, inverse], train_mask))  # errors name caller's members
    z = np.where(known, (y - y_mean) / y_std, 0.0).astype(np.float32)
    wgt = known.astype(np.float32)

    batch_sharding, replicated, n_dev = _data_sharding(devices)
    batch = -(-cfg.batch_size // n_dev) * n_dev
    eval_batch = -(-cfg.eval_batch // n_dev) * n_dev
    tx = make_optimizer(cfg)
    put = partial(jax.device_put, device=replicated)
    params = put(init_stack(cfg.seed, x.shape[1], tuple(hidden), m))
    opt_state = put(tx.init(params))
    best = jax.tree.map(jnp.copy, params)
    xd, zd, wd = put(x), put(z), put(wgt)
    best_val = np.full(m, np.inf)
    best_epoch = np.zeros(m, int)
    wait = np.zeros(m, int)
    rng = np.random.default_rng([cfg.seed, 2])
    group_idx = [np.flatnonzero(train_mask & known[:, a:b].any(1)) for a, b in ranges]
    steps, group_batch = _set_batches(group_idx, int((train_mask & known.any(1)).sum()), batch, n_dev)
    vidx, vvalid = put(_batch_indices(np.flatnonzero(val_mask & known.any(1)), eval_batch))
    history = []
    epoch = 0
    noise = {}  # the re-noising arguments of _train_epoch, when on
    if cfg.noise_augment and augment is not None:
        lo, hi = (float(v) for v in cfg.augment_snr)
        if not (len(cfg.augment_snr) == 2 and 0 < lo <= hi):
            raise ValueError(f"[train] augment_snr must be [lo, hi] with 0 < lo <= hi (snrg), got {list(cfg.augment_snr)}.")
        noise = {"snr": put(np.asarray(augment[0], np.float32)), "x_std": put(np.asarray(augment[1], np.float32)),
                 "snr_range": (lo, hi)}
        if augment_groups is not None and groups is not None:
            g_sorted = np.asarray(groups)[order]
            noise["noisy"] = tuple(bool(g_sorted[a] in set(augment_groups)) for a, _ in ranges)
    base_key = jax.random.key(cfg.seed)
    for epoch in range(1, cfg.max_epochs + 1):
        cut = _epoch_batches(rng, group_idx, group_batch, steps)
        idx, valid = (tuple(put(c[k]) for c in cut) for k in (0, 1))
        if noise:
            noise["keys"] = put(jax.random.split(jax.random.fold_in(base_key, epoch), idx[0].shape[0]))
        params, opt_state, train_loss = _train_epoch(tx, batch_sharding, ranges, params, opt_state, xd, zd, wd, idx, valid,
                                                     **noise)
        val = np.asarray(_val_loss(batch_sharding, params, xd, zd, wd, vidx, vvalid), np.float64)
        history.append(val)
        stopped = wait >= cfg.patience
        improved = (val < best_val - cfg.min_delta) & ~stopped
        best = _keep_best(jnp.asarray(improved), params, best)
        best_val = np.where(improved, val, best_val)
        best_epoch = np.where(improved, epoch, best_epoch)
        wait = np.where(improved, 0, wait + 1)
        stopped = wait >= cfg.patience
        if on_epoch is not None:
            on_epoch(EpochInfo(epoch, cfg.max_epochs, np.asarray(train_loss)[inverse], val[inverse], best_val[inverse],
                               best_epoch[inverse], stopped[inverse]))
        if stopped.all():
            break
    best = jax.tree.map(np.asarray, best)
    return FitResult(
        params=take_members(best, inverse),
        y_mean=y_mean[inverse],
        y_std=y_std[inverse],
        val_mask=val_mask,
        best_val=best_val[inverse],
        best_epoch=best_epoch[inverse],
        n_train=n_train[inverse],
        n_val=n_val[inverse],
        history=np.array(history)[:, inverse] if history else np.zeros((0, m)),
        epochs_run=epoch,
    )


def predict_stack(params: dict, x: np.ndarray, y_mean, y_std, batch: int = 1024) -> np.ndarray:
    """(N, M) predictions in physical units of a stacked model on standardised flux x (N, D)."""
    out = []
    for s in range(0, x.shape[0], batch):
        xb = x[s : s + batch]
        pad = batch - xb.shape[0]
        if pad:
            xb = np.concatenate([xb, np.zeros((pad, x.shape[1]), x.dtype)])
        out.append(np.asarray(_forward(params, jnp.asarray(xb)))[: batch - pad])
    pred = np.concatenate(out) if out else np.zeros((0, len(y_mean)), np.float32)
    return y_mean + y_std * pred.astype(np.float64)


_forward = jax.jit(ensemble_forward)
