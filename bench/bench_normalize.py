"""Benchmark: spectra/s of the normalisation (rest frame, 21-px median, continuum, divide).

Compares, in one process on the same synthetic spectra:

* ``naive-loop``: what an astronomer writes: per spectrum and window, ``np.interp`` to the rest
  frame, ``scipy.signal.medfilt`` (21 px), ``numpy.polyfit`` (order 6), divide; no masks.
  Timed on the first min(B, 512) spectra of each batch (its cost is linear in B).
* ``numpy-sort`` / ``numpy-network``: the best vectorised NumPy/SciPy we wrote: the same masked
  recipe as the kernel, in chunks of 2048 spectra: fancy-index resampling, a masked median from
  ``np.sort`` over a (B, L, 21) sliding-window view, or from the same min/max network on 21
  shifted views, float64 normal equations by matmul, batched ``np.linalg.solve``.
* ``jax-network`` (the jaxvac kernel) and ``jax-sort`` (``jnp.sort`` over stacked views):
  compile timed apart, then the best of a few calls, each ended by ``block_until_ready``.

Usage: ``python bench/bench_normalize.py [--quick]``; writes bench/results/bench_normalize.json.
The effective bandwidth column counts the bytes the kernel must touch per spectrum (window
pixels of flux, ivar, good in; norm, norm_good, norm_ivar out); on a GPU the table also gives
its fraction of the device's peak memory bandwidth.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# One BLAS thread for the NumPy baselines: on this busy 2-core machine numpy.polyfit's tiny
# LAPACK call took 38 ms with OpenBLAS threads and 0.6 ms without. (XLA has its own threads.)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.signal  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

import jax  # noqa: E402

from jaxvac import preprocess as pp  # noqa: E402
from jaxvac.constants import C_KMS, NPIX_GLOBAL, global_wavelength  # noqa: E402
from jaxvac.kernels import normalize as kernel_normalize  # noqa: E402
from jaxvac.kernels.medfilt import selection_network  # noqa: E402
from _common import machine, write_results  # noqa: E402  (bench/ is on sys.path when a script here runs)

LAYOUT = pp.LAYOUT
PEAK_GBS = {"H100": 3350.0, "H200": 4800.0, "A100": 2039.0}  # GB/s, vendor HBM figures
BYTES_PER_SPECTRUM = 9 * (LAYOUT.npix_out + 2 * len(LAYOUT.windows) * LAYOUT.margin) + 9 * LAYOUT.npix_out


def make_spectra(n: int, seed: int = 0):
    """n synthetic spectra on the global grid: power-law continuum, lines, 1% noise, 2% masked."""
    rng = np.random.default_rng(seed)
    wl = global_wavelength()
    cont = 100 * (wl / 5000.0) ** rng.uniform(-3, 1, (n, 1))
    depth = np.zeros((n, NPIX_GLOBAL))
    for _ in range(30):
        centre = rng.uniform(3700, 9000, (n, 1))
        depth += rng.uniform(0, 0.4, (n, 1)) * np.exp(-0.5 * ((wl - centre) / 3.0) ** 2)
    flux = (cont * (1 - np.clip(depth, 0, 0.9)) * (1 + 0.01 * rng.normal(size=(n, NPIX_GLOBAL)))).astype(np.float32)
    ivar = (1 / (0.01 * cont) ** 2).astype(np.float32)
    good = rng.random((n, NPIX_GLOBAL)) > 0.02
    rv = rng.uniform(-300, 300, n).astype(np.float32)
    return flux, ivar, good, rv


def naive_loop(flux, ivar, good, rv):
    """Per spectrum, per window: interp, medfilt, polyfit, divide (no masks, zero-padded edges)."""
    wl = global_wavelength()
    out = np.empty((len(flux), LAYOUT.npix_out), np.float32)
    for b in range(len(flux)):
        rest = wl / (1 + (0.0 if not np.isfinite(rv[b]) else rv[b]) / C_KMS)
        col = 0
        for j0, j1 in LAYOUT.windows:
            f = np.interp(wl[j0:j1], rest, flux[b])
            smooth = scipy.signal.medfilt(f, LAYOUT.width)
            x = np.linspace(-1, 1, j1 - j0)
            out[b, col : col + j1 - j0] = f / np.polyval(np.polyfit(x, smooth, LAYOUT.order), x)
            col += j1 - j0
    return out


def _cheb(n, order):
    x = np.linspace(-1, 1, n)
    return np.polynomial.chebyshev.chebvander(x, order)


def numpy_vectorised(flux, ivar, good, rv, median="network", chunk=2048):
    """The kernel's masked recipe in vectorised NumPy (float32 arrays, float64 fit)."""
    outs = []
    for c in range(0, len(flux), chunk):
        outs.append(_numpy_chunk(flux[c : c + chunk], ivar[c : c + chunk], good[c : c + chunk], rv[c : c + chunk], median))
    return tuple(np.concatenate(o) for o in zip(*outs))


def _numpy_chunk(flux, ivar, good, rv, median):
    m, w = LAYOUT.margin, LAYOUT.width
    rv = np.where(np.isfinite(rv) & (np.abs(rv) <= LAYOUT.max_abs_rv), rv, 0.0)
    s = np.log10(1 + rv.astype(np.float64) / C_KMS) / LAYOUT.log_step
    i0 = np.floor(s).astype(np.int64)
    t = (s - i0).astype(np.float32)[:, None]
    base = np.concatenate([np.arange(j0, j1) for j0, j1 in LAYOUT.extended])
    idx = base[None] + i0[:, None]
    usable = good & np.isfinite(flux) & (ivar > 0)
    f = np.where(usable, flux, 0).astype(np.float32)
    var = np.where(usable, 1 / np.where(usable, ivar, 1), 0).astype(np.float32)
    rows = np.arange(len(flux))[:, None]
    u0, u1 = usable[rows, idx], usable[rows, idx + 1]
    gr = u0 & (u1 | (t == 0))
    fr = np.where(gr, (1 - t) * f[rows, idx] + t * f[rows, idx + 1], 0)
    vr = (1 - t) ** 2 * var[rows, idx] + t**2 * var[rows, idx + 1]
    ir = np.where(gr, 1 / np.where(gr, vr, 1), 0)
    masked = np.where(gr, fr, np.inf).astype(np.float32)
    nout = masked.shape[1] - w + 1
    csum = np.concatenate([np.zeros((len(gr), 1), np.int32), np.cumsum(gr, axis=1, dtype=np.int32)], axis=1)
    count = csum[:, w:] - csum[:, :-w]
    lo_rank, hi_rank = np.clip((count - 1) // 2, 0, w // 2), count // 2
    if median == "sort":
        ranks = np.sort(np.lib.stride_tricks.sliding_window_view(masked, w, axis=1), axis=-1)[..., : w // 2 + 1]
        lo = np.take_along_axis(ranks, lo_rank[..., None], -1)[..., 0]
        hi = np.take_along_axis(ranks, np.minimum(hi_rank, w // 2)[..., None], -1)[..., 0]
    else:
        wires = [masked[:, k : k + nout] for k in range(w)]
        for i, j in selection_network(w, w // 2 + 1):
            wires[i], wires[j] = np.minimum(wires[i], wires[j]), np.maximum(wires[i], wires[j])
        ranks = np.stack(wires[: w // 2 + 1], axis=-1)
        lo = np.take_along_axis(ranks, lo_rank[..., None], -1)[..., 0]
        hi = np.take_along_axis(ranks, np.minimum(hi_rank, w // 2)[..., None], -1)[..., 0]
    smooth = np.where(count > 0, 0.5 * lo + 0.5 * hi, 0.0)
    weight = (count > 0).astype(np.float64)
    norms, goods = [], []
    off = 0
    for (j0, j1), need in zip(LAYOUT.windows, LAYOUT.min_good):
        n = j1 - j0
        phi = _cheb(n, LAYOUT.order)
        wt, y = weight[:, off : off + n], smooth[:, off : off + n]
        gram = np.einsum("bi,ij,ik->bjk", wt, phi, phi, optimize=True)
        rhs = (wt * y) @ phi
        with np.errstate(all="ignore"):
            coef = np.linalg.solve(gram + 1e-30 * np.eye(LAYOUT.order + 1), rhs[..., None])[..., 0]
        cont = coef @ phi.T
        g = gr[:, off + m : off + m + n] & (cont > 0) & (gr[:, off + m : off + m + n].sum(1) >= need)[:, None]
        norms.append(np.where(g, fr[:, off + m : off + m + n] / np.where(g, cont, 1), 1).astype(np.float32))
        goods.append(g)
        off += n + 2 * m
    return np.concatenate(norms, 1), np.concatenate(goods, 1)


def timed(fn, repeats):
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_jax(method, flux, ivar, good, rv, repeats):
    args = [jax.device_put(a) for a in (flux, ivar, good, rv)]
    t0 = time.perf_counter()
    compiled = kernel_normalize.lower(*args, layout=LAYOUT, method=method, chunk=pp.default_chunk()).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(*args))
    return compile_s, timed(lambda: jax.block_until_ready(compiled(*args)), repeats)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="batches 256 and 2048 only (< 1 minute)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "bench_normalize.json"))
    opts = ap.parse_args(argv)
    batches = [256, 2048] if opts.quick else [256, 1024, 4096, 16384, 65536]
    sort_max = 256 if opts.quick else 1024  # jnp.sort / np.sort over (B, L, 21): slow, memory-hungry
    numpy_max = 2048 if opts.quick else 16384
    base = make_spectra(min(max(batches), 4096))
    dev = jax.devices()[0]
    peak = next((v for k, v in PEAK_GBS.items() if k in dev.device_kind), None)
    results = []

    def record(method, batch, seconds, timed_n=None, compile_s=None):
        n = timed_n or batch
        row = {"method": method, "batch": batch, "spectra_per_s": n / seconds, "seconds": seconds, "timed_spectra": n}
        if compile_s is not None:
            row["compile_s"] = compile_s
            row["effective_GBps"] = n / seconds * BYTES_PER_SPECTRUM / 1e9
            if peak:
                row["fraction_of_peak_bandwidth"] = row["effective_GBps"] / peak
        results.append(row)
        print(f"  {method:14s} B={batch:6d} {row['spectra_per_s']:12.0f} spectra/s"
              + (f"  (compile {compile_s:.1f} s)" if compile_s is not None else ""), flush=True)

    for batch in batches:
        reps = -(-batch // len(base[0]))
        flux, ivar, good, rv = (np.concatenate([a] * reps)[:batch] for a in base)
        repeats = 3 if batch <= 4096 else 2
        k = min(batch, 512)
        record("naive-loop", batch, timed(lambda: naive_loop(flux[:k], ivar[:k], good[:k], rv[:k]), 1), timed_n=k)
        if batch <= numpy_max:
            record("numpy-network", batch, timed(lambda: numpy_vectorised(flux, ivar, good, rv, "network"), repeats))
            if batch <= sort_max:
                record("numpy-sort", batch, timed(lambda: numpy_vectorised(flux, ivar, good, rv, "sort"), repeats))
        compile_s, seconds = bench_jax("network", flux, ivar, good, rv, repeats)
        record("jax-network", batch, seconds, compile_s=compile_s)
        if batch <= sort_max:
            compile_s, seconds = bench_jax("sort", flux, ivar, good, rv, 1)
            record("jax-sort", batch, seconds, compile_s=compile_s)

    rate = {(r["method"], r["batch"]): r["spectra_per_s"] for r in results}
    print(f"\n{machine()}\n")
    print("| batch | naive loop | best NumPy | jax-sort | jaxvac kernel | kernel / naive | kernel / best NumPy | GB/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for batch in batches:
        naive = rate[("naive-loop", batch)]
        best_np = max((rate.get((m, batch), 0.0) for m in ("numpy-network", "numpy-sort")), default=0.0)
        kern = rate[("jax-network", batch)]
        jsort = rate.get(("jax-sort", batch))
        gbs = kern * BYTES_PER_SPECTRUM / 1e9
        print(f"| {batch} | {naive:,.0f} | " + (f"{best_np:,.0f}" if best_np else "-") + " | " + (f"{jsort:,.0f}" if jsort else "-")
              + f" | {kern:,.0f} | {kern / naive:.1f}x | " + (f"{kern / best_np:.1f}x" if best_np else "-")
              + f" | {gbs:.2f}" + (f" ({gbs / peak:.1%} of peak)" if peak else "") + " |")
    out = write_results("bench_normalize", results, out=opts.out, quick=opts.quick)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
