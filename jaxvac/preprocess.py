"""Pre-processing front door: validate a batch, then run the jitted kernels of ``kernels/``.

SPEC.md "Pre-processing": rest frame (3900-5800 and 8450-8950 A), 21-pixel median filter,
sixth-order polynomial pseudo-continuum per window, per-pixel standardisation with the training
set's mean and std. docs/normalisation.md states every edge and mask rule.

Typical use::

    norm, norm_good, norm_ivar, status = normalize(flux, ivar, good, rv)    # (B, 1974) each
    mean, std = standardization_stats(norm_train, good_train)               # training stars only
    x, bad_fraction, status = preprocess(flux, ivar, good, rv, mean, std)  # network input

Inputs are the reader's arrays stacked over a batch: flux, ivar float (B, 3909) on the global
grid, good bool (B, 3909), rv float (B,) km/s (NaN when unknown). A single spectrum (1-D
arrays, scalar rv) is accepted too, so the functions also work under ``jax.vmap`` per spectrum.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxvac import constants, kernels
from jaxvac.constants import NPIX_GLOBAL
from jaxvac.kernels.normalize import STATUS_INPUT_MASKED as _STATUS_INPUT_MASKED
from jaxvac.kernels.standardize import input_mask as _input_mask

#: The DR8 normalisation, every number from ``jaxvac.constants``: global pixels [229, 1953) and
#: [3587, 3837) -> 1724 + 250 = 1974 outputs. Recorded in every checkpoint (jaxvac.train.checkpoint).
LAYOUT = kernels.Layout(
    npix_in=NPIX_GLOBAL,
    log_step=constants.LOG_STEP,
    windows=tuple(constants.window_pixels(lo, hi) for lo, hi in constants.WINDOWS),
    margin=constants.MEDFILT_WIDTH // 2,
    width=constants.MEDFILT_WIDTH,
    order=constants.POLY_ORDER,
    min_good_fraction=constants.MIN_GOOD_FRACTION,
    pivot_tol=constants.PIVOT_TOL,
    continuum_floor=constants.CONTINUUM_FLOOR,
    max_abs_rv=constants.MAX_ABS_RV,
    c_kms=constants.C_KMS,
    norm_flux_min=constants.NORM_FLUX_MIN,
    norm_flux_max=constants.NORM_FLUX_MAX,
    max_abs_standardized=constants.MAX_ABS_STANDARDIZED,
)
LAYOUT.check()
NPIX = LAYOUT.npix_out  # 1974 network inputs


@functools.lru_cache(maxsize=None)
def default_chunk() -> int:
    """Spectra per pass inside one call: 128 on CPU (cache-sized; 1.5x faster than one pass at
    B = 4096), 0 (one fused pass over the whole batch) on accelerators. See ``jaxvac.kernels.normalize``."""
    return 128 if jax.default_backend() == "cpu" else 0


#: Status bits (int32, OR-ed per spectrum); a spectrum with status 0 passed every check.
STATUS_RV_INVALID = kernels.STATUS_RV_INVALID  # 1: rv NaN or |rv| > 4000 km/s, resampled at 0
STATUS_CONTINUUM_LOW = kernels.STATUS_CONTINUUM_LOW  # 2: continuum < 1% of its window's level
STATUS_W1_FEW_GOOD = kernels.status_few_good(0)  # 4: 3900-5800 A window < 25% good: not fitted
STATUS_W1_ILL_CONDITIONED = kernels.status_ill_conditioned(0)  # 8: its fit was singular
STATUS_W2_FEW_GOOD = kernels.status_few_good(1)  # 16: 8450-8950 A window < 25% good: not fitted
STATUS_W2_ILL_CONDITIONED = kernels.status_ill_conditioned(1)  # 32: its fit was singular
STATUS_INPUT_MASKED = _STATUS_INPUT_MASKED  # 65536: a pixel outside the input range was masked (network_input)
STATUS_BITS = kernels.status_bits(LAYOUT)  # name -> bit


def describe_status(status: int) -> list[str]:
    """Names of the bits set in one status value, e.g. ``['rv_invalid']``; [] for 0."""
    return [name for name, bit in STATUS_BITS.items() if int(status) & bit]


def _check_spectra(flux, ivar, good, rv):
    """Validate shapes and dtypes; return the arrays and whether a batch axis was added."""
    dtypes = {name: np.dtype(a.dtype) if hasattr(a, "dtype") else np.asarray(a).dtype for name, a in (("flux", flux), ("ivar", ivar), ("good", good), ("rv", rv))}
    flux, ivar, good, rv = (jnp.asarray(a) for a in (flux, ivar, good, rv))
    single = flux.ndim == 1
    expect = (NPIX_GLOBAL,) if single else (flux.shape[0], NPIX_GLOBAL) if flux.ndim == 2 else None
    if expect is None or flux.shape != expect:
        raise ValueError(
            f"flux must have shape (B, {NPIX_GLOBAL}) (or ({NPIX_GLOBAL},) for one spectrum) on the "
            f"global grid, got {flux.shape}; read spectra with jaxvac.io.lamost.read_spectrum."
        )
    for name, a in (("ivar", ivar), ("good", good)):
        if a.shape != flux.shape:
            raise ValueError(f"{name} must have the shape of flux {flux.shape}, got {a.shape}.")
    rv_shape = () if single else flux.shape[:1]
    if rv.shape != rv_shape:
        raise ValueError(f"rv must have shape {rv_shape} (one velocity in km/s per spectrum), got {rv.shape}.")
    for name in ("flux", "ivar", "rv"):
        if not np.issubdtype(dtypes[name], np.floating):
            raise TypeError(f"{name} must be a floating-point array (computed in float32), got dtype {dtypes[name]}.")
    if dtypes["good"] != np.bool_:
        raise TypeError(
            f"good must be a bool array (True = usable pixel), got dtype {dtypes['good']}; for a LAMOST "
            f"and-mask pass (ivar > 0) & (andmask == 0)."
        )
    arrays = (flux.astype(jnp.float32), ivar.astype(jnp.float32), good, rv.astype(jnp.float32))
    if single:
        arrays = tuple(a[None] for a in arrays)
    return arrays, single


def _check_stats(mean, std):
    mean, std = jnp.asarray(mean), jnp.asarray(std)
    for name, a in (("mean", mean), ("std", std)):
        if a.shape != (NPIX,):
            raise ValueError(
                f"{name} must have shape ({NPIX},) (one value per network input pixel), got {a.shape}; "
                f"compute it with jaxvac.preprocess.standardization_stats."
            )
        if not jnp.issubdtype(a.dtype, jnp.floating):
            raise TypeError(f"{name} must be floating-point, got dtype {a.dtype}.")
    return mean.astype(jnp.float32), std.astype(jnp.float32)


def normalize(flux, ivar, good, rv):
    """Continuum-normalised flux of a batch on the 1974 rest-frame pixels.

    Args:
        flux, ivar: float (B, 3909) on the global grid (flux in file units, ivar its inverse
            variance); good: bool (B, 3909); rv: float (B,) km/s, NaN when unknown.

    Returns:
        norm: float32 (B, 1974), flux / continuum; 1 at bad pixels.
        norm_good: bool (B, 1974).
        norm_ivar: float32 (B, 1974), inverse variance of norm; 0 at bad pixels.
        status: int32 (B,) OR of the ``STATUS_*`` bits.
    """
    (flux, ivar, good, rv), single = _check_spectra(flux, ivar, good, rv)
    out = kernels.normalize(flux, ivar, good, rv, layout=LAYOUT, chunk=default_chunk())
    return tuple(o[0] for o in out) if single else out


def standardize(norm, norm_good, mean, std):
    """Network input x = (norm - mean) / std at good pixels, 0 (the training mean) at bad ones.

    Args:
        norm: float (B, 1974); norm_good: bool (B, 1974); mean, std: float (1974,).

    Returns:
        x: float32 (B, 1974).
    """
    mean, std = _check_stats(mean, std)
    norm, norm_good = jnp.asarray(norm), jnp.asarray(norm_good)
    if norm.shape[-1:] != (NPIX,) or norm_good.shape != norm.shape or norm_good.dtype != jnp.bool_:
        raise ValueError(
            f"norm must be float (B, {NPIX}) and norm_good bool of the same shape, got "
            f"{norm.shape} {norm.dtype} and {norm_good.shape} {norm_good.dtype}."
        )
    return kernels.standardize(norm.astype(jnp.float32), norm_good, mean, std)


def mask_inputs(norm, norm_good, mean=None, std=None):
    """norm_good without the pixels the networks never saw as input (``LAYOUT.norm_flux_min`` /
    ``norm_flux_max``; with the training ``mean`` and ``std``, also farther than
    ``LAYOUT.max_abs_standardized`` standard deviations from the mean). Training computes the
    statistics from ``mask_inputs(norm, good)`` and standardises with ``mask_inputs(norm, good,
    mean, std)``, as ``kernels.network_input`` does in a run.

    Args:
        norm: float (B, 1974); norm_good: bool (B, 1974); mean, std: float (1974,) or None.

    Returns:
        bool (B, 1974).
    """
    norm, norm_good = jnp.asarray(norm, jnp.float32), jnp.asarray(norm_good)
    if norm.shape[-1:] != (NPIX,) or norm_good.shape != norm.shape or norm_good.dtype != jnp.bool_:
        raise ValueError(f"norm must be float (B, {NPIX}) and norm_good bool of the same shape, got "
                         f"{norm.shape} and {norm_good.shape} {norm_good.dtype}.")
    if (mean is None) != (std is None):
        raise ValueError("mask_inputs needs both mean and std (the training statistics), or neither.")
    if mean is not None:
        mean, std = _check_stats(mean, std)
    return _input_mask(norm, norm_good, mean, std, flux_min=LAYOUT.norm_flux_min, flux_max=LAYOUT.norm_flux_max,
                       max_abs=LAYOUT.max_abs_standardized)


def bad_fraction(norm_good):
    """Fraction of the 1974 pixels that are bad, per spectrum: float32 (B,)."""
    norm_good = jnp.asarray(norm_good)
    if norm_good.shape[-1:] != (NPIX,) or norm_good.dtype != jnp.bool_:
        raise ValueError(f"norm_good must be bool (B, {NPIX}), got {norm_good.shape} {norm_good.dtype}.")
    return kernels.bad_fraction(norm_good)


def preprocess(flux, ivar, good, rv, mean, std):
    """The network input of a batch, in one jitted call: normalise, standardise, report.

    Args:
        flux, ivar, good, rv: as :func:`normalize`.
        mean, std: float (1974,) from :func:`standardization_stats` (stored with the model).

    Returns:
        x: float32 (B, 1974) standardised flux, 0 at bad pixels.
        bad_fraction: float32 (B,) fraction of the 1974 pixels that are bad.
        status: int32 (B,) OR of the ``STATUS_*`` bits.
    """
    (flux, ivar, good, rv), single = _check_spectra(flux, ivar, good, rv)
    mean, std = _check_stats(mean, std)
    out = kernels.preprocess(flux, ivar, good, rv, mean, std, layout=LAYOUT, chunk=default_chunk())
    return tuple(o[0] for o in out) if single else out


def standardization_stats(norm, norm_good, *, std_floor: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel mean and std of normalised training spectra, ignoring bad pixels.

    Accumulated in float64. A pixel with no good value gets mean 1 (the continuum) and std 1; a
    pixel with one good value gets std 1; every std is floored at ``std_floor`` so standardising
    never divides by zero.

    Args:
        norm: float (N, 1974) normalised flux of the training spectra.
        norm_good: bool (N, 1974).
        std_floor: smallest std returned (normalised-flux units).

    Returns:
        mean, std: float32 (1974,).
    """
    norm = np.asarray(norm, np.float64)
    good = np.asarray(norm_good)
    if norm.ndim != 2 or norm.shape[1] != NPIX or good.shape != norm.shape or good.dtype != np.bool_:
        raise ValueError(
            f"norm must be float (N, {NPIX}) and norm_good bool of the same shape, got "
            f"{norm.shape} and {good.shape} {good.dtype}."
        )
    if not std_floor > 0:
        raise ValueError(f"std_floor must be > 0, got {std_floor}.")
    n = good.sum(axis=0)
    x = np.where(good, norm, 0.0)
    mean = np.where(n > 0, x.sum(axis=0) / np.maximum(n, 1), 1.0)
    var = np.where(good, (norm - mean) ** 2, 0.0).sum(axis=0) / np.maximum(n - 1, 1)
    std = np.where(n > 1, np.sqrt(var), 1.0)
    return mean.astype(np.float32), np.maximum(std, std_floor).astype(np.float32)
