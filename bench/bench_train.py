"""Training throughput: spectra x networks trained per second, fused stack against its baselines.

Rows (random standardised spectra and labels; every label known for every star, the heaviest
case; Adam with per-network clipping as in jaxvac.train.fit):

- ``fused_epoch``: jaxvac's training epoch, ``jaxvac.train.fit._train_epoch``: all M networks in
  one stacked forward/backward per step, the whole epoch one jitted ``lax.scan`` over device-
  resident data (the host sees one result per epoch).
- ``fused_step_loop``: the same stacked step jitted alone and driven from a Python loop, one
  dispatch and one host index batch per step (what an epoch costs without the scan).
- ``loop_23``: the baseline a user would write: M networks, each its own params and optax state,
  each step M separately jitted calls.
- ``matmul_bound``: a chain of plain matmuls with the FLOPs of one fused step
  (forward + backward ~ 3x the forward's 2 * sum(n_in * n_out) per spectrum and network).
- ``stacked_sets`` and ``set_batches``: labels as sparse as the paper's three training sets
  (each star in one set, 14 / 63 / 23 % of the stars with 3 / 6 / 14 labels, the demo survey's
  shares): the fused epoch as above, every network on every star of a batch, against
  ``[train] set_batches`` (``fit(groups=...)``), each set's networks on batches of its own stars.
  Their rate counts only the (spectrum, network) pairs with a label.

The figure of merit is spectra x networks per second (a row per spectrum and network trained).
Targets (issue 14): fused >= 1.0x the loop and >= 0.6 of the bound on CPU; on a GPU >= 3x the
loop and >= 40% of the TF32 bound. Compilation is timed apart; methods are interleaved round
by round and each ratio is the median of the per-round ratios (the host drifts +-30%).

    python bench/bench_train.py [--quick] [--batches 256,1024] [--sets 4096:paper,100000:demo]

Writes bench/results/bench_train.json.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import write_results  # noqa: E402  (bench/ is on sys.path when a script here runs)

from jaxvac.model import N_INPUT, init_stack
from jaxvac.train.fit import _epoch_batches, _group_plan, _optimizer, _set_batches, _total_loss, _train_epoch
from jaxvac.train.job import ModelConfig

M = 23
SETS = ((3, 0.14), (6, 0.63), (14, 0.23))  # labels and share of the stars of PASTEL, APOGEE, LGMWAS (demo survey)


def _flops_per_spectrum(hidden) -> float:
    """Training FLOPs per spectrum and network: 3 x the forward's 2 * sum(n_in * n_out)."""
    sizes = (N_INPUT, *hidden, 1)
    return 3 * 2 * sum(a * b for a, b in zip(sizes, sizes[1:]))


def _data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, N_INPUT), dtype=np.float32)
    z = rng.standard_normal((n, M), dtype=np.float32)
    return x, z, np.ones((n, M), np.float32)


def _batches(n: int, batch: int, seed: int):
    idx = np.random.default_rng(seed).permutation(n)
    s = n // batch
    return idx[: s * batch].reshape(s, batch), np.ones((s, batch), bool)


def fused_epoch(hidden, x, z, w, batch, tx):
    params = init_stack(0, N_INPUT, tuple(hidden), M)
    state = {"p": jax.device_put(params), "o": jax.device_put(tx.init(params))}
    xd, zd, wd = (jax.device_put(a) for a in (x, z, w))
    seed = iter(range(10**6))

    def run():
        idx, valid = _batches(len(x), batch, next(seed))
        state["p"], state["o"], loss = _train_epoch(tx, None, ((0, M),), state["p"], state["o"], xd, zd, wd,
                                                    (jax.device_put(idx),), (jax.device_put(valid),))
        jax.block_until_ready(loss)
        return int(w[idx.ravel()].sum())  # (spectrum, network) pairs with a label (host arrays)

    return run


def _sparse(w):
    """w with each star's labels kept for one training set only (SETS), and the member groups."""
    group = np.repeat(np.arange(len(SETS)), [k for k, _ in SETS])
    star_set = np.random.default_rng(3).choice(len(SETS), len(w), p=[f for _, f in SETS])
    return w * (star_set[:, None] == group[None, :]), group


def stacked_sets(hidden, x, z, w, batch, tx):
    return fused_epoch(hidden, x, z, _sparse(w)[0], batch, tx)


def set_batches(hidden, x, z, w, batch, tx):
    """jaxvac.train.fit's epoch with groups: each set's networks on batches of its own stars."""
    w, group = _sparse(w)
    order, ranges = _group_plan(group, M)  # the sets' members are contiguous already: order is 0..M-1
    params = init_stack(0, N_INPUT, tuple(hidden), M)
    state = {"p": jax.device_put(params), "o": jax.device_put(tx.init(params))}
    xd, zd, wd = (jax.device_put(a) for a in (x, z, w))
    stars = [np.flatnonzero(w[:, a:b].any(1)) for a, b in ranges]
    steps, sizes = _set_batches(stars, len(x), batch)
    seed = iter(range(10**6))

    def run():
        cut = _epoch_batches(np.random.default_rng(next(seed)), stars, sizes, steps)
        idx, valid = (tuple(jax.device_put(c[k]) for c in cut) for k in (0, 1))
        state["p"], state["o"], loss = _train_epoch(tx, None, ranges, state["p"], state["o"], xd, zd, wd, idx, valid)
        jax.block_until_ready(loss)
        return sum(int(w[c[0][c[1]], a:b].sum()) for c, (a, b) in zip(cut, ranges))

    return run


def fused_step_loop(hidden, x, z, w, batch, tx):
    @partial(jax.jit, donate_argnums=(0, 1))
    def step(params, opt, xb, zb, wb):
        (_, per), g = jax.value_and_grad(_total_loss, has_aux=True)(params, xb, zb, wb)
        upd, opt = tx.update(g, opt, params)
        return optax.apply_updates(params, upd), opt, per

    params = init_stack(0, N_INPUT, tuple(hidden), M)
    state = {"p": jax.device_put(params), "o": jax.device_put(tx.init(params))}
    seed = iter(range(10**6))

    def run():
        idx, _ = _batches(len(x), batch, next(seed))
        for i in idx:
            state["p"], state["o"], per = step(state["p"], state["o"], x[i], z[i], w[i])
        jax.block_until_ready(per)
        return idx.shape[0] * batch * M

    return run


def loop_23(hidden, x, z, w, batch, tx_one):
    sizes = (N_INPUT, *hidden, 1)

    def forward(p, xb):
        h = xb
        for k, (wk, bk) in enumerate(p):
            h = h @ wk + bk
            if k < len(p) - 1:
                h = jax.nn.relu(h)
        return h[:, 0]

    def loss(p, xb, zb, wb):
        return jnp.sum(wb * (forward(p, xb) - zb) ** 2) / jnp.maximum(jnp.sum(wb), 1.0)

    @partial(jax.jit, donate_argnums=(0, 1))
    def step(p, opt, xb, zb, wb):
        val, g = jax.value_and_grad(loss)(p, xb, zb, wb)
        upd, opt = tx_one.update(g, opt, p)
        return optax.apply_updates(p, upd), opt, val

    rng = np.random.default_rng(1)
    nets = [[(jnp.asarray(rng.standard_normal((a, b), dtype=np.float32) * np.sqrt(2.0 / a)), jnp.zeros(b))
             for a, b in zip(sizes, sizes[1:])] for _ in range(M)]
    opts = [tx_one.init(p) for p in nets]
    seed = iter(range(10**6))

    def run():
        idx, _ = _batches(len(x), batch, next(seed))
        for i in idx:
            xb = jax.device_put(x[i])
            for m in range(M):
                nets[m], opts[m], val = step(nets[m], opts[m], xb, z[i, m], w[i, m])
        jax.block_until_ready(val)
        return idx.shape[0] * batch * M

    return run


def matmul_bound(hidden, x, z, w, batch, tx):
    """Matmuls of the fused step's FLOPs: forward, and twice its size again for the backward."""
    sizes = (N_INPUT, *hidden, 1)
    rng = np.random.default_rng(2)
    ws = [jnp.asarray(rng.standard_normal((a, M * b) if k == 0 else (M, a, b), dtype=np.float32))
          for k, (a, b) in enumerate(zip(sizes, sizes[1:]))]

    @jax.jit
    def chain(xb, ws):
        out = 0.0
        for r in range(3):  # forward + the two backward products; shifted inputs so XLA cannot merge them
            h = (xb + r) @ ws[0]
            h = h.reshape(xb.shape[0], M, -1).transpose(1, 0, 2)
            for wk in ws[1:]:
                h = jnp.einsum("mbi,mio->mbo", h, wk)
            out = out + jnp.sum(h)
        return out

    xd = jax.device_put(x[:batch])
    steps = len(x) // batch

    def run():
        for _ in range(steps):
            r = chain(xd, ws)
        jax.block_until_ready(r)
        return steps * batch * M

    return run


METHODS = {"fused_epoch": fused_epoch, "fused_step_loop": fused_step_loop, "loop_23": loop_23,
           "matmul_bound": matmul_bound, "stacked_sets": stacked_sets, "set_batches": set_batches}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="batch 256, 1,024 spectra, paper sizes only (< 1 minute on 2 CPUs)")
    ap.add_argument("--batches", default="256,1024")
    ap.add_argument("--sets", default="4096:paper,100000:demo",
                    help="N:SIZES pairs: training spectra per epoch and hidden sizes ('paper' = dr8.toml, "
                         "'demo' = demo.toml, or e.g. 128,64,32)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    named = {"paper": ModelConfig().hidden, "demo": ModelConfig(**_model_table("demo")).hidden}
    sets = [(1024, named["paper"])] if args.quick else [
        (int(n), named.get(h) or tuple(int(v) for v in h.split(","))) for n, h in (p.split(":") for p in args.sets.split(","))]
    batches = [256] if args.quick else [int(b) for b in args.batches.split(",")]
    rounds = 3 if args.quick else args.rounds
    tx = _optimizer(1.0, 1e-3)
    tx_one = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
    results = []
    for n, hidden in sets:
        flop = _flops_per_spectrum(hidden)
        x, z, w = _data(n)
        print(f"networks {M} x {N_INPUT}-{'-'.join(map(str, hidden))}-1, {flop / 1e6:.2f} MFLOP per spectrum and "
              f"network (training), {n} spectra per epoch, {jax.devices()[0].platform}")
        for batch in batches:
            results += _compare(hidden, x, z, w, batch, tx, tx_one, rounds, flop)
        del x, z, w
    out = write_results("bench_train", results, quick=args.quick)
    print(f"wrote {out}")


def _model_table(name: str) -> dict:
    from jaxvac.config import load_config

    return dict(load_config(name).get("model", {}))


def _compare(hidden, x, z, w, batch, tx, tx_one, rounds, flop) -> list[dict]:
    n = len(x)
    runs, compile_s = {}, {}
    for name, make in METHODS.items():
        run = make(hidden, x, z, w, batch, tx_one if name == "loop_23" else tx)
        t = time.perf_counter()
        run()  # compiles
        compile_s[name] = time.perf_counter() - t
        runs[name] = run
    per_round = {name: [] for name in METHODS}
    for _ in range(rounds):
        for name, run in runs.items():
            t = time.perf_counter()
            done = run()
            per_round[name].append(done / (time.perf_counter() - t))
    base, bound = np.array(per_round["loop_23"]), np.array(per_round["matmul_bound"])
    rows = []
    for name in METHODS:
        rate = np.array(per_round[name])
        row = {"method": name, "batch": batch, "spectra_per_s": round(float(rate.max()) / M, 1),
               "spectra_networks_per_s": round(float(rate.max()), 1),
               "ratio_to_loop_23": round(float(np.median(rate / base)), 3),
               "fraction_of_bound": round(float(np.median(rate / bound)), 3),
               "gflops": round(float(rate.max()) * flop / 1e9, 1),
               "first_epoch_with_compile_s": round(compile_s[name], 2), "n": n, "hidden": list(hidden)}
        rows.append(row)
        print(f"{name:16s} batch {batch:5d}: {row['spectra_networks_per_s']:10,.0f} spectra x networks/s "
              f"({row['gflops']:6.1f} GFLOP/s), {row['ratio_to_loop_23']:.2f}x loop_23, "
              f"{row['fraction_of_bound']:.2f} of the bound; first epoch with compile {compile_s[name]:.1f} s")
    return rows


if __name__ == "__main__":
    main()
