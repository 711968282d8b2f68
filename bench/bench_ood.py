"""What the per-spectrum trust tests of issue 12 cost in the device step: the "unlike the training
spectra" score (ood_score) and the sparseness guard of each training set (flag bit 2).

The same device step of ``jaxvac run`` (``jaxvac.run.device.Device``: normalise, mask, standardise,
23 nets + VMP net) on one batch of spectra held in memory, without either (the baseline), with the
checkpoint's OOD basis, and with its guard (the predictor's params with ``ood`` or ``guard``),
interleaved, in this process. Compilation is timed apart (first call); steady state is the best
of --repeat calls, each waited for with block_until_ready. Also each kernel alone.

    python bench/bench_ood.py [--quick] [--model RUN/checkpoint --survey SURVEY] [--batch 1024]

Without --model: a checkpoint of random networks of configs/demo.toml's sizes (the OOD share is
largest for small networks) with a random orthonormal basis of dr8.toml's ood_components axes,
and a guard of random points of dr8.toml's sizes (guard_labels, guard_max_points), on copies of
the real spectra of ../shared/lamost; the cost does not depend on the values. With
--model and --survey: that checkpoint on the survey's test spectra. Writes
bench/results/bench_ood.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from _common import real_file_copies, write_results  # noqa: E402  (bench/ is on sys.path when a script here runs)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="batch 256, 3 rounds (< 1 minute on 2 CPUs)")
    ap.add_argument("--model", default=None, help="checkpoint directory written by jaxvac train (with an ood basis and a guard)")
    ap.add_argument("--survey", default=None, help="with --model: a simulated survey (its catalogs/test.fits spectra)")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    if args.quick:
        args.batch, args.repeat = 256, 3
    if (args.model is None) != (args.survey is None):
        ap.error("give --model and --survey together, or neither (random networks on the real spectra)")

    import jax
    import numpy as np

    from jaxvac.io.stream import stream_batches
    from jaxvac.io.tables import read_table
    from jaxvac.kernels.neighbours import sparse_rows
    from jaxvac.kernels.normalize import network_input
    from jaxvac.kernels.ood import pca_residual_score
    from jaxvac.preprocess import LAYOUT
    from jaxvac.run.device import Device
    from jaxvac.train.checkpoint import load

    tmp = tempfile.TemporaryDirectory(prefix="bench_ood_")
    if args.model:
        pred = load(args.model)
        if "ood" not in pred.params or "guard" not in pred.params:
            raise SystemExit(f"bench_ood: {args.model} lacks an ood basis or a guard; train it with this jaxvac "
                             f"(ood_components > 0, guard_labels not empty).")
        cat = read_table(Path(args.survey) / "catalogs" / "test.fits")
        paths = [str(Path(args.survey) / str(p)) for p in cat["path"]][: args.batch]
    else:
        pred = _random_predictor(Path(tmp.name))
        paths = real_file_copies(args.batch, Path(tmp.name))
    with stream_batches(paths, batch_size=args.batch, workers=0, progress=False) as stream:
        b = next(iter(stream))
    rv, snrg = b.meta["rv"].astype(np.float32), b.meta["snrg"].astype(np.float32)
    def only(*keep):
        drop = {"ood", "guard"} - set(keep)
        return dataclasses.replace(pred, params={k: v for k, v in pred.params.items() if k not in drop})

    devices = {name: Device(only(*keep), "none", args.batch, LAYOUT)
               for name, keep in (("baseline", ()), ("with_ood", ("ood",)), ("with_guard", ("guard",)))}

    def call(dev):
        return jax.block_until_ready(dev.dispatch(b.flux, b.ivar, b.good, rv, snrg))

    compile_s = {}
    for name, dev in devices.items():
        t = time.perf_counter()
        call(dev)
        compile_s[name] = time.perf_counter() - t
    best = {name: float("inf") for name in devices}
    for _ in range(args.repeat):  # interleaved rounds
        for name, dev in devices.items():
            t = time.perf_counter()
            call(dev)
            best[name] = min(best[name], time.perf_counter() - t)

    x, g, _ = jax.block_until_ready(network_input(b.flux, b.ivar, b.good, rv, pred.x_mean, pred.x_std, layout=LAYOUT))
    y = jax.block_until_ready(devices["baseline"].dispatch(b.flux, b.ivar, b.good, rv, snrg)[0])
    kernels = {"ood_score": (jax.jit(pca_residual_score),
                             (x, g, pred.params["ood"]["basis"], pred.x_std, snrg, pred.params["ood"]["floor"])),
               "sparse_rows": (jax.jit(sparse_rows), (y, pred.params["guard"]))}
    kernel = {}
    for name, (fn, a) in kernels.items():
        jax.block_until_ready(fn(*a))
        kernel[name] = float("inf")
        for _ in range(args.repeat):
            t = time.perf_counter()
            jax.block_until_ready(fn(*a))
            kernel[name] = min(kernel[name], time.perf_counter() - t)

    base = best["baseline"]
    n = args.batch
    results = [{"method": "device_step_baseline (no ood, no guard)", "batch": n, "spectra_per_s": round(n / base, 1),
                "compile_s": round(compile_s["baseline"], 2)}]
    for name, what in (("with_ood", "ood"), ("with_guard", "guard")):
        results.append({"method": f"device_step_{name}", "batch": n, "spectra_per_s": round(n / best[name], 1),
                        "compile_s": round(compile_s[name], 2), f"{what}_share_of_step": round((best[name] - base) / base, 4)})
    for name, t in kernel.items():
        results.append({"method": f"{name}_kernel_alone", "batch": n, "spectra_per_s": round(n / t, 1),
                        "share_of_step": round(t / base, 4)})
    print(f"device step, batch {n}: baseline {base * 1e3:.1f} ms; with ood {best['with_ood'] * 1e3:.1f} ms "
          f"({(best['with_ood'] - base) / base:+.1%}); with the guard {best['with_guard'] * 1e3:.1f} ms "
          f"({(best['with_guard'] - base) / base:+.1%}); kernels alone: "
          + ", ".join(f"{k} {t * 1e3:.2f} ms ({t / base:.1%} of the step)" for k, t in kernel.items())
          + f"; compile {compile_s}")
    out = write_results("bench_ood", results, model=str(args.model or "random networks (demo sizes)"),
                        hidden=list(pred.metadata["model"]["hidden"]), components=int(pred.params["ood"]["basis"].shape[0]),
                        guard_points={k: list(v["points"].shape) for k, v in pred.params["guard"].items()},
                        quick=args.quick)
    tmp.cleanup()
    print(f"wrote {out}")


def _random_predictor(tmp: Path):
    """Random networks of demo.toml's sizes with a random orthonormal OOD basis (dr8.toml's K) and a guard of
    random points of dr8.toml's guard_labels and guard_max_points."""
    import numpy as np

    from jaxvac.config import load_config
    from jaxvac.model import N_INPUT
    from jaxvac.train.checkpoint import load, save_random
    from jaxvac.train.guard import guard_arrays
    from jaxvac.train.job import ModelConfig

    demo = ModelConfig(**dict(load_config("demo")["model"]))
    pred = load(save_random(tmp / "model", demo.hidden, demo.vmp_hidden))
    k = ModelConfig().ood_components
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((N_INPUT, k)))
    ood = {"basis": np.ascontiguousarray(q.T, dtype=np.float32), "floor": np.float32(ModelConfig().ood_floor)}
    rng = np.random.default_rng(1)
    meta = {name: {"cols": [pred.schema.index(n) for n in labels], "center": [0.0] * len(labels),
                   "scale": [1.0] * len(labels), "radius": 0.3, "neighbours": ModelConfig().guard_neighbours}
            for name, labels in ModelConfig().guard_labels.items()}
    points = {name: {"points": rng.standard_normal((ModelConfig().guard_max_points, len(g["cols"]))).astype(np.float32)}
              for name, g in meta.items()}
    return dataclasses.replace(pred, params={**pred.params, "ood": ood, "guard": guard_arrays(meta, points)})

if __name__ == "__main__":
    main()
