"""The whole pre-processing of a batch: rest frame, median filter, continuum, standardisation.

SPEC.md "Pre-processing" (Wang et al. 2022, Sect. 2): use only the rest-frame windows, divide
each window by a sixth-order polynomial fitted to its 21-pixel median-filtered flux, then
standardise per pixel with the training set's mean and std.

Edge and mask rules (docs/normalisation.md has the full discussion):

* Each window is resampled with ``layout.margin`` = 10 real pixels beyond both edges, and the
  median filter runs in 'valid' mode over that widened window, so the smoothed value of every
  window pixel is the median of the good pixels among the 21 real pixels centred on it. Margin
  pixels are inputs only; when they are bad (masked, or off the input grid) they are simply
  left out, so an edge pixel's median uses fewer (one-sided) pixels. Nothing is ever padded.
* A smoothed pixel whose 21-pixel window holds no good pixel gets weight 0 in the fit.
* The continuum is fitted to the smoothed flux with weight 1 where the smoothed pixel has a
  value (at least one good pixel in its window), 0 elsewhere; the raw flux is divided by it.
* A normalised pixel is good if its resampled pixel is good, its window was fitted and the
  continuum there is above ``layout.continuum_floor`` (1%) of the window's mean smoothed flux
  (and > 0): near a zero of the polynomial flux / continuum only amplifies noise. Bad pixels
  carry norm = 1 (the continuum level) and norm_ivar = 0.

Status bits (int32, OR-ed per spectrum): see ``STATUS_*`` and :func:`status_bits`.

The networks' input is :func:`network_input`: :func:`normalize`, then the pixels outside the input
range of the Layout (``norm_flux_min``, ``norm_flux_max``, ``max_abs_standardized``) are masked
(:func:`~jaxvac.kernels.standardize.input_mask`, bit ``STATUS_INPUT_MASKED``), then
standardisation. :func:`preprocess` is the same without that mask.
No error checking is performed here: ``jaxvac.preprocess`` validates before calling.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import Array

from .continuum import fit_continuum
from .layout import Layout
from .medfilt import masked_median_filter
from .restframe import resample_restframe
from .standardize import bad_fraction, input_mask, standardize

STATUS_RV_INVALID = 1  # rv not finite or |rv| > layout.max_abs_rv: resampled at rv = 0
STATUS_CONTINUUM_LOW = 2  # continuum <= continuum_floor * window mean at some good pixel (made bad)
STATUS_INPUT_MASKED = 1 << 16  # network_input masked a good pixel outside the Layout's input range


def status_few_good(window: int) -> int:
    """Bit set when window ``window`` has fewer than ``layout.min_good`` good pixels (not fitted)."""
    return 1 << (2 + 2 * window)


def status_ill_conditioned(window: int) -> int:
    """Bit set when window ``window``'s normal matrix failed the Cholesky pivot test (not fitted)."""
    return 1 << (3 + 2 * window)


def status_bits(layout: Layout) -> dict[str, int]:
    """Name -> bit of every status flag for this layout (windows numbered from 1 in names)."""
    bits = {"rv_invalid": STATUS_RV_INVALID, "continuum_low": STATUS_CONTINUUM_LOW}
    for w in range(len(layout.windows)):
        bits[f"window{w + 1}_few_good"] = status_few_good(w)
        bits[f"window{w + 1}_ill_conditioned"] = status_ill_conditioned(w)
    bits["input_masked"] = STATUS_INPUT_MASKED
    return bits


@functools.partial(jax.jit, static_argnames=("layout", "method", "chunk"))
def normalize(
    flux: Array, ivar: Array, good: Array, rv: Array, *, layout: Layout, method: str = "network", chunk: int = 0
) -> tuple[Array, Array, Array, Array]:
    """Continuum-normalise a batch of spectra on the rest-frame windows of ``layout``.

    .. math::
        \\tilde f = \\mathrm{resample}(f, v), \\quad
        m = \\mathrm{medfilt}_{21}(\\tilde f), \\quad
        c = \\Phi\\, \\arg\\min_a \\| W^{1/2} (m - \\Phi a) \\|^2, \\quad
        \\hat f = \\tilde f / c, \\quad \\hat\\imath = \\tilde\\imath\\, c^2

    Args:
        flux, ivar: float32 (B, layout.npix_in) on the input grid.
        good: bool (B, layout.npix_in).
        rv: float32 (B,) km/s, NaN when unknown.
        layout: the static geometry (hashable).
        method: median-filter formulation, ``"network"`` or ``"sort"``.
        chunk: when > 0 and B > chunk, the batch is processed ``chunk`` spectra at a time in a
            ``lax.map`` loop (padded with empty spectra to a multiple of ``chunk``), so the
            intermediates stay in cache: 1.5x faster on CPU at B = 4096 with chunk = 128. Use 0
            on GPUs and across sharded devices (one fused pass over the whole batch).

    Returns:
        norm: float32 (B, layout.npix_out) normalised flux, 1 where bad.
        norm_good: bool (B, layout.npix_out).
        norm_ivar: float32 (B, layout.npix_out) inverse variance of norm, 0 where bad.
        status: int32 (B,) OR of status bits.
    """
    batch = flux.shape[0]
    if chunk and batch > chunk:
        pad = -batch % chunk
        args = [jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)) for a in (flux, ivar, good, rv)]
        args = [a.reshape(-1, chunk, *a.shape[1:]) for a in args]
        out = jax.lax.map(lambda a: _normalize(*a, layout=layout, method=method), tuple(args))
        return tuple(o.reshape(-1, *o.shape[2:])[:batch] for o in out)
    return _normalize(flux, ivar, good, rv, layout=layout, method=method)


def _normalize(flux, ivar, good, rv, *, layout, method):
    """:func:`normalize` of one batch in one pass."""
    fr, ir, gr, rv_valid = resample_restframe(
        flux, ivar, good, rv, segments=layout.extended, log_step=layout.log_step, c_kms=layout.c_kms,
        max_abs_rv=layout.max_abs_rv,
    )
    status = jnp.where(rv_valid, 0, STATUS_RV_INVALID).astype(jnp.int32)
    # One median filter over all widened windows laid end to end ('valid' mode): window w's
    # output pixels are filter outputs offset_w .. offset_w + n_w - 1, where offset_w is the
    # start of its widened window; the 2 * margin outputs straddling two windows are unused.
    smooth, count = masked_median_filter(fr, gr, width=layout.width, method=method)
    # Materialise the filter output once, so XLA cannot fuse the whole network into each of its
    # consumers (normal matrix, right-hand side, residual, level) and recompute it there.
    smooth, count = jax.lax.optimization_barrier((smooth, count))
    m = layout.margin
    offsets = [sum(n + 2 * m for n in layout.window_sizes[:w]) for w in range(len(layout.windows))]
    segments = tuple(zip(offsets, layout.window_sizes))
    weight = (count > 0).astype(jnp.float32)
    continuum, ok = fit_continuum(smooth, weight, segments=segments, order=layout.order, pivot_tol=layout.pivot_tol)
    norms, goods, ivars = [], [], []
    for w, (offset, n) in enumerate(segments):
        f_w, i_w, g_w = (a[..., offset + m : offset + m + n] for a in (fr, ir, gr))
        c_w, wt_w = continuum[..., offset : offset + n], weight[..., offset : offset + n]
        level = jnp.sum(wt_w * smooth[..., offset : offset + n], axis=-1) / jnp.maximum(jnp.sum(wt_w, axis=-1), 1.0)
        enough = jnp.sum(g_w, axis=-1) >= layout.min_good[w]
        fitted = (enough & ok[..., w])[..., None]
        positive = (c_w > layout.continuum_floor * level[..., None]) & (c_w > 0)
        g_n = g_w & positive & fitted
        safe = jnp.where(g_n, c_w, 1.0)
        norms.append(jnp.where(g_n, f_w / safe, 1.0))
        ivars.append(jnp.where(g_n, i_w * safe * safe, 0.0))
        goods.append(g_n)
        status |= jnp.where(enough, 0, status_few_good(w))
        status |= jnp.where(enough & ~ok[..., w], status_ill_conditioned(w), 0)
        status |= jnp.where(jnp.any(g_w & ~positive & fitted, axis=-1), STATUS_CONTINUUM_LOW, 0)
    cat = functools.partial(jnp.concatenate, axis=-1)
    return cat(norms), cat(goods), cat(ivars), status


@functools.partial(jax.jit, static_argnames=("layout", "method", "chunk"))
def preprocess(
    flux: Array, ivar: Array, good: Array, rv: Array, mean: Array, std: Array, *, layout: Layout,
    method: str = "network", chunk: int = 0,
) -> tuple[Array, Array, Array]:
    """Network input of a batch: :func:`normalize` then :func:`~jaxvac.kernels.standardize.standardize`.

    Args:
        flux, ivar, good, rv, layout, method, chunk: as :func:`normalize`.
        mean, std: float32 (layout.npix_out,) training statistics of the normalised flux.

    Returns:
        x: float32 (B, layout.npix_out) standardised flux, 0 at bad pixels.
        bad_fraction: float32 (B,) fraction of the npix_out pixels that are bad.
        status: int32 (B,) as :func:`normalize`.
    """
    norm, norm_good, _, status = normalize(flux, ivar, good, rv, layout=layout, method=method, chunk=chunk)
    return standardize(norm, norm_good, mean, std), bad_fraction(norm_good), status


@functools.partial(jax.jit, static_argnames=("layout", "method", "chunk"))
def network_input(
    flux: Array, ivar: Array, good: Array, rv: Array, mean: Array, std: Array, *, layout: Layout,
    method: str = "network", chunk: int = 0,
) -> tuple[Array, Array, Array]:
    """The networks' input: :func:`normalize`, the input-range mask, standardisation.

    Args:
        flux, ivar, good, rv, layout, method, chunk: as :func:`normalize`.
        mean, std: float32 (layout.npix_out,) training statistics of the normalised flux.

    Returns:
        x: float32 (B, layout.npix_out) standardised flux, 0 at bad and masked pixels.
        x_good: bool (B, layout.npix_out), the pixels that are inputs.
        status: int32 (B,) as :func:`normalize`, with ``STATUS_INPUT_MASKED`` where a good pixel
            was outside [norm_flux_min, norm_flux_max] or max_abs_standardized std from the mean.
    """
    norm, norm_good, _, status = normalize(flux, ivar, good, rv, layout=layout, method=method, chunk=chunk)
    x_good = input_mask(norm, norm_good, mean, std, flux_min=layout.norm_flux_min, flux_max=layout.norm_flux_max,
                        max_abs=layout.max_abs_standardized)
    status |= jnp.where(jnp.any(norm_good & ~x_good, axis=-1), STATUS_INPUT_MASKED, 0).astype(status.dtype)
    return standardize(norm, x_good, mean, std), x_good, status
