"""Spectra/s of the 23-network inference: fused stack vs a loop of 23 networks vs the matmul bound.

Methods, all float32 on the real sizes (23 x 1974-512-256-64-1, 53.3 MFLOP per spectrum):

- ``fused``: jaxvac.kernels.ensemble.ensemble_forward, ONE jitted call (layer 1 one wide matmul);
- ``fused+vmp``: jaxvac.model.predict_standardized, the 23 nets plus the VMP net, de-standardised
  labels and the VMP rule, in one jitted call (what the catalogue run calls);
- ``loop``: 23 separately jitted single networks called one after the other (the baseline: what
  a Keras or PyTorch user writes), results gathered at the end;
- ``nnx_vmap``: the Flax NNX idiom: 23 ``jaxvac.model.MLP`` modules (``nnx.Linear`` layers) created
  as one module with ``nnx.split_rngs`` + ``nnx.vmap`` over the constructor (every parameter gets
  a leading member axis), applied with ``nnx.vmap(in_axes=(0, None))`` (shared input) under
  ``nnx.jit``, the module passed at every call: what a user of an NNX model calls;
- ``nnx_vmap_pure``: the same, split once with ``nnx.split`` and called as a pure ``jax.jit``
  function of (state, x) that merges inside (no NNX graph traversal per call);
- ``nnx_vmap_axes``: ``nnx_vmap_pure`` with ``nnx.StateAxes`` putting the member axis of the
  layer-1 kernel at 1 (in creation and in the forward vmap), i.e. the (1974, 23, 512)
  input-major layout of ``fused`` (all else member-major);
- ``matmul_bound``: one jnp.dot of (B, 1974) x (1974, K) with K chosen for the same FLOPs per
  spectrum: the rate this machine attains on a plain matmul of that size.

The nnx_vmap rows get ``fused``'s weights copied in and must give its outputs to float32
tolerance (checked at every batch size, max |change| recorded). ``ratio_to_fused`` in their rows
is fused's time / their time per call (> 1: faster than fused), the median over the rounds of the
per-round ratios; ``ratio_to_fused_cpu`` the same from the process CPU time per call, which
drifts much less than wall time when other jobs share the cores. ``trace_compile_s`` is the
ahead-of-time ``.lower(...).compile()`` time of fused and the nnx_vmap rows (no call).

On a GPU, ``fused`` is also run at TF32 and bf16 (params and input cast) precision, with the
largest absolute change of the outputs against the float32 ("highest") run.

Compile time is measured apart (first call); the steady rate is the best of --repeat timings of
back-to-back calls lasting at least --min-time seconds each, with block_until_ready. The
repetitions are interleaved: round r times every method once before round r + 1 starts (the
host's speed drifts), so the per-round ratios compare methods timed seconds apart.

    python bench/bench_infer.py [--quick] [--batches 256,1024,4096,16384]

Writes bench/results/bench_infer.json.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from flax import nnx

from jaxvac.labels import LABEL_NAMES
from jaxvac.model import MLP, N_INPUT, N_VMP_INPUT, PAPER_VMP_RULE, init_stack, predict_standardized
from jaxvac.train.job import ModelConfig

HIDDEN, VMP_HIDDEN = ModelConfig().hidden, ModelConfig().vmp_hidden  # the paper's sizes: configs/dr8.toml [model]
from jaxvac.kernels.ensemble import ensemble_forward

OUT = Path(__file__).resolve().parent / "results" / "bench_infer.json"


def flops_per_spectrum(n_in: int, hidden, members: int) -> float:
    sizes = (n_in, *hidden, 1)
    return 2.0 * members * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def _time_block(fn, args, min_time: float) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) per call of back-to-back calls lasting >= min_time."""
    n, t, c = 0, time.perf_counter(), time.process_time()
    while True:
        jax.block_until_ready(fn(*args))
        n += 1
        dt = time.perf_counter() - t
        if dt >= min_time:
            return dt / n, (time.process_time() - c) / n


def _time_interleaved(cases, min_time: float, repeat: int) -> tuple[dict, dict, dict]:
    """({name: compile+first call seconds}, {name: [wall seconds per call of each round]},
    {name: [CPU seconds per call of each round]}).

    Every method's first call (trace + compile + run) comes first; then ``repeat`` rounds, each
    timing every method once in turn, so a drift of the host's speed hits all methods alike.
    """
    first, rounds, cpu = {}, {name: [] for name, *_ in cases}, {name: [] for name, *_ in cases}
    for name, fn, args, _ in cases:
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        first[name] = time.perf_counter() - t
    for _ in range(repeat):
        for name, fn, args, _ in cases:
            wall, c = _time_block(fn, args, min_time)
            rounds[name].append(wall)
            cpu[name].append(c)
    return first, rounds, cpu


def _compile_seconds(jitted, *args, **kwargs) -> float:
    """Seconds to trace, lower and compile ``jitted`` for these arguments (ahead of time, no call).

    JAX's caches are cleared first: after a call they would hand back the compiled executable.
    """
    jax.clear_caches()
    t = time.perf_counter()
    jitted.lower(*args, **kwargs).compile()
    return time.perf_counter() - t


def _vmapped_mlps(params: dict, *, w1_member_axis: int):
    """The stack ``params`` (jaxvac.kernels.ensemble layout) as ONE nnx.vmap-created ``MLP``.

    The members are created the Flax way (``nnx.split_rngs`` + ``nnx.vmap`` over the
    constructor); then ``params`` are copied in. w1_member_axis: where the member axis of the
    layer-1 kernel lies, 0 (nnx.vmap's default: (M, D, H1), every leaf member-major) or 1
    ((D, M, H1), the fused kernel's layout, via ``nnx.StateAxes``). Returns (model, axes), axes
    the prefix to give ``nnx.vmap`` for the model. Every ``nnx.Linear`` gets precision HIGHEST
    like the ``fused`` row (no effect on CPU; full float32 instead of TF32 on a GPU).
    """
    w, b = params["w"], params["b"]
    m = b[0].shape[0]
    if w1_member_axis == 0:
        axes = 0
    else:
        axes = nnx.StateAxes({(lambda path, _: tuple(path) == ("layers", 0, "kernel")): w1_member_axis, ...: 0})

    @nnx.split_rngs(splits=m)
    @nnx.vmap(in_axes=(0,), out_axes=axes)
    def create(rngs):
        return MLP(w[0].shape[0], tuple(a.shape[-1] for a in w[:-1]), rngs=rngs)

    model = create(nnx.Rngs(0))
    w1 = w[0] if w1_member_axis == 1 else jnp.transpose(w[0], (1, 0, 2))
    for layer, k, bias in zip(model.layers, [w1, *w[1:-1], w[-1][:, :, None]], [*b[:-1], b[-1][:, None]]):
        if layer.kernel[...].shape != k.shape or layer.bias[...].shape != bias.shape:
            raise ValueError(f"nnx.vmap MLP layer shapes {layer.kernel[...].shape}, {layer.bias[...].shape} do not "
                             f"match the stack's {k.shape}, {bias.shape}.")
        layer.kernel[...], layer.bias[...] = k, bias
        layer.precision = jax.lax.Precision.HIGHEST
    return model, axes


def _nnx_vmap_forms(params: dict) -> dict:
    """{row name: (fn, args_without_x, note)} of the nnx.vmap forms; fn(*args, x) -> (B, M)."""
    forms = {}
    for name, w1_axis in (("nnx_vmap", 0), ("nnx_vmap_axes", 1)):
        model, axes = _vmapped_mlps(params, w1_member_axis=w1_axis)
        apply = nnx.vmap(lambda net, x: net(x), in_axes=(axes, None), out_axes=1)
        graphdef, state = nnx.split(model)
        pure = jax.jit(lambda state, x, apply=apply, graphdef=graphdef: apply(nnx.merge(graphdef, state), x))
        if w1_axis == 0:
            # nnx.jit's defaults (graph=True, graph_updates=True): the module is an argument and its
            # state also comes back out of the jitted call (XLA copies it every call)
            forms[name] = (nnx.jit(apply), (model,), "float32, nnx.jit(nnx.vmap) defaults")
            forms["nnx_vmap_pure"] = (pure, (state,), "float32, jax.jit(merge + nnx.vmap) of nnx.split state")
        else:  # StateAxes needs graph updates in nnx.jit: call it as a pure function of the state
            forms[name] = (pure, (state,), "float32, as nnx_vmap_pure, W1 (D, M, H1) by nnx.StateAxes")
    return forms


def _median(a) -> float:
    return float(np.median(np.asarray(a)))


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
    nnx_forms = _nnx_vmap_forms(ens)
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
            ("fused+vmp", lambda x: full(model, x, precision=jax.lax.Precision.HIGHEST, vmp_rule=PAPER_VMP_RULE), (x,),
             "float32"),
            ("loop", loop, (x,), "float32, 23 jitted nets"),
            *[(name, fn, (*a, x), note) for name, (fn, a, note) in nnx_forms.items()],
        ]
        if on_gpu:
            ens16 = jax.tree.map(lambda a: a.astype(jnp.bfloat16), ens)
            cases += [
                ("fused_tf32", lambda x: fused(ens, x, precision=jax.lax.Precision.DEFAULT), (x,), "tf32"),
                ("fused_bf16", lambda x: fused(ens16, x.astype(jnp.bfloat16)), (x,), "bf16"),
            ]
        res = {}
        firsts, rounds, cpu = _time_interleaved(cases, min_time, repeat)
        aot = {"fused": _compile_seconds(fused, ens, x, precision=jax.lax.Precision.HIGHEST),
               **{name: _compile_seconds(fn, *a, x) for name, (fn, a, _) in nnx_forms.items()}}
        for name, fn, a, note in cases:
            dt = min(rounds[name])
            res[name] = dt
            row = {"method": name, "batch": batch, "spectra_per_s": batch / dt, "gflop_per_s": batch * fl / dt / 1e9,
                   "compile_s": firsts[name] - dt, "cpu_s_per_call": _median(cpu[name]), "precision": note}
            if name in aot:
                row["trace_compile_s"] = aot[name]
            if name in nnx_forms:
                row["ratio_to_fused"] = _median(np.asarray(rounds["fused"]) / np.asarray(rounds[name]))
                row["ratio_to_fused_cpu"] = _median(np.asarray(cpu["fused"]) / np.asarray(cpu[name]))
                row["ratio_to_fused_rounds"] = [f / t for f, t in zip(rounds["fused"], rounds[name])]
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
            if row["method"] in nnx_forms:
                fn, a, _ = nnx_forms[row["method"]]
                row["max_abs_change"] = float(np.abs(np.asarray(fn(*a, x), np.float64) - ref).max())
                tol = 1e-5 * max(1.0, float(np.abs(ref).max()))  # float32 summation-order differences
                if not row["max_abs_change"] <= tol:
                    raise RuntimeError(f"{row['method']} must give fused's outputs for the same weights to within "
                                       f"{tol:.1e}; got max |change| {row['max_abs_change']:.2e} at batch {batch}.")
            note = row["precision"] + (f", max |change| {row['max_abs_change']:.2e}" if "max_abs_change" in row else "")
            print(f"{row['method']:<22}{batch:>7}{row['spectra_per_s']:>12.0f}{row['gflop_per_s']:>10.1f}"
                  f"{row['of_matmul_bound']:>10.2f}{row['compile_s']:>11.2f}  {note}")
        print(f"{'':<22}fused / loop = {res['loop'] / res['fused']:.2f}x, fused / matmul_bound = "
              f"{res['matmul_bound'] / res['fused']:.2f}")
        for row in rows[-len(cases):]:
            if "ratio_to_fused" in row:
                per = ", ".join(f"{r:.3f}" for r in row["ratio_to_fused_rounds"])
                print(f"{'':<22}{row['method']} / fused speed = {row['ratio_to_fused']:.3f} wall (rounds: {per}), "
                      f"{row['ratio_to_fused_cpu']:.3f} CPU time; trace+compile {row['trace_compile_s']:.2f} s "
                      f"(fused {aot['fused']:.2f} s)")
        _write(rows, fl, args.quick)  # after every batch size: an interrupted run keeps what it measured
    if not on_gpu:
        print("(no GPU: TF32/bf16 rows are measured only on a GPU)")
    print(f"wrote {OUT}")


def _write(rows, fl, quick):
    from _common import write_results

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    write_results("bench_infer", rows, out=OUT, load_average_1min=load, flop_per_spectrum=fl, quick=quick)


if __name__ == "__main__":
    main()
