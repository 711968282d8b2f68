"""Spectra/s of the 23-network inference: fused stack vs a loop of 23 networks vs the matmul bound.

Methods, all float32 on the real sizes (23 x 1974-512-256-64-1, 53.3 MFLOP per spectrum):

- ``fused``: jaxvac.kernels.ensemble.ensemble_forward, ONE jitted call (layer 1 one wide matmul);
- ``fused+vmp``: jaxvac.model.predict_standardized, the 23 nets plus the VMP net, de-standardised
  labels and the VMP rule, in one jitted call (what the catalogue run calls);
- ``loop``: 23 separately jitted single networks called one after the other (the baseline: what
  a Keras or PyTorch user writes), results gathered at the end;
- ``matmul_bound``: one jnp.dot of (B, 1974) x (1974, K) with K chosen for the same FLOPs per
  spectrum: the rate this machine attains on a plain matmul of that size.

On a GPU, ``fused`` is also run at TF32 and bf16 (params and input cast) precision, with the
largest absolute change of the outputs against the float32 ("highest") run.

Compile time is measured apart (first call); the steady rate is the best of --repeat timings of
back-to-back calls lasting at least --min-time seconds each, with block_until_ready. Methods are
interleaved per batch size (the host's speed drifts).

    python bench/bench_infer.py [--quick] [--batches 256,1024,4096,16384]

Writes bench/results/bench_infer.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxvac.labels import LABEL_NAMES
from jaxvac.model import HIDDEN, N_INPUT, N_VMP_INPUT, VMP_HIDDEN, init_stack, predict_standardized
from jaxvac.kernels.ensemble import ensemble_forward

OUT = Path(__file__).resolve().parent / "results" / "bench_infer.json"


def flops_per_spectrum(n_in: int, hidden, members: int) -> float:
    sizes = (n_in, *hidden, 1)
    return 2.0 * members * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def _time(fn, args, min_time: float, repeat: int) -> tuple[float, float]:
    """(compile+first call seconds, best steady seconds per call)."""
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t
    best = float("inf")
    for _ in range(repeat):
        n, t = 0, time.perf_counter()
        while True:
            jax.block_until_ready(fn(*args))
            n += 1
            dt = time.perf_counter() - t
            if dt >= min_time:
                break
        best = min(best, dt / n)
    return first, best


def _machine() -> str:
    d = jax.devices()[0]
    kind = getattr(d, "device_kind", d.platform)
    return f"{platform.machine()} {os.cpu_count()} cpus, {d.platform} {kind}, jax {jax.__version__}, Python {platform.python_version()}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="batches 256 and 1024, short timings (< 1 minute on 2 CPUs)")
    ap.add_argument("--batches", default="256,1024,4096,16384")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=1.0)
    args = ap.parse_args(argv)
    batches = [256, 1024] if args.quick else [int(b) for b in args.batches.split(",")]
    repeat, min_time = (2, 0.2) if args.quick else (args.repeat, args.min_time)
    m = len(LABEL_NAMES)
    fl = flops_per_spectrum(N_INPUT, HIDDEN, m)
    rng = np.random.default_rng(0)
    ens = init_stack(0, N_INPUT, HIDDEN, m)
    vmp = init_stack(1, N_VMP_INPUT, VMP_HIDDEN, 1)
    model = {"ensemble": ens, "vmp": vmp, "y_mean": jnp.zeros(m), "y_std": jnp.ones(m),
             "vmp_mean": jnp.float32(0), "vmp_std": jnp.float32(1)}
    singles = [jax.tree.map(lambda a: a, {"w": [ens["w"][0][:, j, :]] + [w[j] for w in ens["w"][1:]],
                                          "b": [b[j] for b in ens["b"]]}) for j in range(m)]
    singles = jax.device_put(singles)

    def one_net(p, x):
        h = jax.nn.relu(x @ p["w"][0] + p["b"][0])
        for w, b in zip(p["w"][1:-1], p["b"][1:-1]):
            h = jax.nn.relu(h @ w + b)
        return h @ p["w"][-1] + p["b"][-1]

    nets = [jax.jit(one_net) for _ in range(m)]  # one jitted function per network

    def loop(x):
        return jnp.stack([f(p, x) for f, p in zip(nets, singles)], 1)

    fused = jax.jit(ensemble_forward, static_argnames=("precision",))
    full = predict_standardized
    k = int(round(fl / (2 * N_INPUT)))
    wmat = jnp.asarray(rng.standard_normal((N_INPUT, k), np.float32) * 0.02)
    mm = jax.jit(lambda x, w: jnp.dot(x, w))
    on_gpu = jax.devices()[0].platform == "gpu"
    rows = []
    print(f"{'method':<22}{'batch':>7}{'spectra/s':>12}{'GFLOP/s':>10}{'of bound':>10}{'compile s':>11}  note")
    for batch in batches:
        x = jnp.asarray(rng.standard_normal((batch, N_INPUT), np.float32))
        cases = [
            ("matmul_bound", mm, (x, wmat), ""),
            ("fused", lambda x: fused(ens, x, precision=jax.lax.Precision.HIGHEST), (x,), "float32"),
            ("fused+vmp", lambda x: full(model, x, precision=jax.lax.Precision.HIGHEST), (x,), "float32"),
            ("loop", loop, (x,), "float32, 23 jitted nets"),
        ]
        if on_gpu:
            ens16 = jax.tree.map(lambda a: a.astype(jnp.bfloat16), ens)
            cases += [
                ("fused_tf32", lambda x: fused(ens, x, precision=jax.lax.Precision.DEFAULT), (x,), "tf32"),
                ("fused_bf16", lambda x: fused(ens16, x.astype(jnp.bfloat16)), (x,), "bf16"),
            ]
        res = {}
        for name, fn, a, note in cases:
            first, dt = _time(fn, a, min_time, repeat)
            res[name] = dt
            row = {"method": name, "batch": batch, "spectra_per_s": batch / dt, "gflop_per_s": batch * fl / dt / 1e9,
                   "compile_s": first - dt, "precision": note}
            rows.append(row)
        ref = np.asarray(fused(ens, x, precision=jax.lax.Precision.HIGHEST), np.float64)
        for row in rows[-len(cases):]:
            row["of_matmul_bound"] = res["matmul_bound"] / res[row["method"]]
            if row["method"] == "fused_tf32":
                row["max_abs_change"] = float(np.abs(np.asarray(fused(ens, x, precision=jax.lax.Precision.DEFAULT)) - ref).max())
            if row["method"] == "fused_bf16":
                row["max_abs_change"] = float(np.abs(np.asarray(fused(ens16, x.astype(jnp.bfloat16)), np.float64) - ref).max())
            if row["method"] == "loop":
                row["max_abs_change"] = float(np.abs(np.asarray(loop(x)) - ref).max())
            note = row["precision"] + (f", max |change| {row['max_abs_change']:.2e}" if "max_abs_change" in row else "")
            print(f"{row['method']:<22}{batch:>7}{row['spectra_per_s']:>12.0f}{row['gflop_per_s']:>10.1f}"
                  f"{row['of_matmul_bound']:>10.2f}{row['compile_s']:>11.2f}  {note}")
        print(f"{'':<22}fused / loop = {res['loop'] / res['fused']:.2f}x, fused / matmul_bound = "
              f"{res['matmul_bound'] / res['fused']:.2f}")
        _write(rows, fl, args.quick)  # after every batch size: an interrupted run keeps what it measured
    if not on_gpu:
        print("(no GPU: TF32/bf16 rows are measured only on a GPU)")
    print(f"wrote {OUT}")


def _write(rows, fl, quick):
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".json.tmp")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    tmp.write_text(json.dumps({"machine": _machine(), "load_average_1min": load, "flop_per_spectrum": fl,
                               "quick": quick, "results": rows}, indent=1))
    os.replace(tmp, OUT)


if __name__ == "__main__":
    main()
