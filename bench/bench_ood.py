"""What the "unlike the training spectra" score (ood_score, issue 12) costs in the device step.

The same device step of ``jaxvac run`` (``jaxvac.run.device.Device``: normalise, mask, standardise,
23 nets + VMP net) on one batch of spectra held in memory, with and without the checkpoint's OOD
basis (the predictor's params with and without ``ood``), interleaved, in this process (the step
without it is the baseline). Compilation is timed apart (first call); steady state is the best
of --repeat calls, each waited for with block_until_ready. Also the score kernel alone.

    python bench/bench_ood.py [--quick] [--model RUN/checkpoint --survey SURVEY] [--batch 1024]

Without --model: a checkpoint of random networks of configs/demo.toml's sizes (the OOD share is
largest for small networks) with a random orthonormal basis of dr8.toml's ood_components axes,
on copies of the real spectra of ../shared/lamost; the cost does not depend on the values. With
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
    ap.add_argument("--model", default=None, help="checkpoint directory written by jaxvac train (with an ood basis)")
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
    from jaxvac.kernels.normalize import network_input
    from jaxvac.kernels.ood import pca_residual_score
    from jaxvac.preprocess import LAYOUT
    from jaxvac.run.device import Device
    from jaxvac.train.checkpoint import load

    tmp = tempfile.TemporaryDirectory(prefix="bench_ood_")
    if args.model:
        pred = load(args.model)
        if "ood" not in pred.params:
            raise SystemExit(f"bench_ood: {args.model} has no ood basis; train it with this jaxvac (ood_components > 0).")
        cat = read_table(Path(args.survey) / "catalogs" / "test.fits")
        paths = [str(Path(args.survey) / str(p)) for p in cat["path"]][: args.batch]
    else:
        pred = _random_predictor(Path(tmp.name))
        paths = real_file_copies(args.batch, Path(tmp.name))
    with stream_batches(paths, batch_size=args.batch, workers=0, progress=False) as stream:
        b = next(iter(stream))
    rv, snrg = b.meta["rv"].astype(np.float32), b.meta["snrg"].astype(np.float32)
    plain = dataclasses.replace(pred, params={k: v for k, v in pred.params.items() if k != "ood"})
    devices = {"with_ood": Device(pred, "none", args.batch, LAYOUT), "without_ood": Device(plain, "none", args.batch, LAYOUT)}

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
    score = jax.jit(pca_residual_score)
    args_ = (x, g, pred.params["ood"]["basis"], pred.x_std, snrg, pred.params["ood"]["floor"])
    jax.block_until_ready(score(*args_))
    kernel = float("inf")
    for _ in range(args.repeat):
        t = time.perf_counter()
        jax.block_until_ready(score(*args_))
        kernel = min(kernel, time.perf_counter() - t)

    extra = best["with_ood"] - best["without_ood"]
    n = args.batch
    results = [
        {"method": "device_step_without_ood (baseline)", "batch": n, "spectra_per_s": round(n / best["without_ood"], 1),
         "compile_s": round(compile_s["without_ood"], 2)},
        {"method": "device_step_with_ood", "batch": n, "spectra_per_s": round(n / best["with_ood"], 1),
         "compile_s": round(compile_s["with_ood"], 2), "ood_share_of_step": round(extra / best["without_ood"], 4)},
        {"method": "ood_score_kernel_alone", "batch": n, "spectra_per_s": round(n / kernel, 1),
         "share_of_step": round(kernel / best["without_ood"], 4)},
    ]
    print(f"device step, batch {n}: without ood {best['without_ood'] * 1e3:.1f} ms, with ood "
          f"{best['with_ood'] * 1e3:.1f} ms ({extra / best['without_ood']:+.1%}); the score kernel alone "
          f"{kernel * 1e3:.2f} ms ({kernel / best['without_ood']:.1%} of the step); compile {compile_s}")
    out = write_results("bench_ood", results, model=str(args.model or "random networks (demo sizes)"),
                        hidden=list(pred.metadata["model"]["hidden"]), components=int(pred.params["ood"]["basis"].shape[0]),
                        quick=args.quick)
    tmp.cleanup()
    print(f"wrote {out}")


def _random_predictor(tmp: Path):
    """Random networks of demo.toml's sizes with a random orthonormal OOD basis (dr8.toml's K)."""
    import numpy as np

    from jaxvac.config import load_config
    from jaxvac.model import N_INPUT
    from jaxvac.train.checkpoint import load, save_random
    from jaxvac.train.job import ModelConfig

    demo = ModelConfig(**dict(load_config("demo")["model"]))
    pred = load(save_random(tmp / "model", demo.hidden, demo.vmp_hidden))
    k = ModelConfig().ood_components
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((N_INPUT, k)))
    ood = {"basis": np.ascontiguousarray(q.T, dtype=np.float32), "floor": np.float32(ModelConfig().ood_floor)}
    return dataclasses.replace(pred, params={**pred.params, "ood": ood})

if __name__ == "__main__":
    main()
