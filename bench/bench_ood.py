"""What the "unlike the training spectra" score (ood_score, issue 12) costs in the device step.

The same device step of ``jaxvac run`` (``jaxvac.run.device.Device``: normalise, mask, standardise,
23 nets + VMP net) on one batch of simulated spectra held in memory, with and without the
checkpoint's OOD basis (the predictor's params with and without ``ood``), interleaved, in this
process. Compilation is timed apart (first call); steady state is the best of --repeat calls, each
waited for with block_until_ready. Also the score kernel alone on the same batch's network input.

    python bench/bench_ood.py --model RUN/checkpoint --survey SURVEY [--batch 1024] [--repeat 7]

Networks: those of the checkpoint given (the demo networks of bench/eval_accuracy.py, or the
paper's sizes); the OOD share is largest for the small ones. Writes bench/results/bench_ood.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "bench_ood.json"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="checkpoint directory written by jaxvac train (with an ood basis)")
    ap.add_argument("--survey", required=True, help="a simulated survey (its catalogs/test.fits spectra are used)")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)

    import jax
    import numpy as np

    from jaxvac.io.atomic import atomic_write
    from jaxvac.io.stream import stream_batches
    from jaxvac.io.tables import read_table
    from jaxvac.kernels.normalize import network_input
    from jaxvac.kernels.ood import pca_residual_score
    from jaxvac.preprocess import LAYOUT
    from jaxvac.run.device import Device
    from jaxvac.train.checkpoint import load

    pred = load(args.model)
    if "ood" not in pred.params:
        raise SystemExit(f"bench_ood: {args.model} has no ood basis; train it with this jaxvac (ood_components > 0).")
    cat = read_table(Path(args.survey) / "catalogs" / "test.fits")
    paths = [str(Path(args.survey) / str(p)) for p in cat["path"]][: args.batch]
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
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {jax.default_backend()}, Python {platform.python_version()}",
        "load_1min": os.getloadavg()[0], "model": str(args.model), "hidden": pred.metadata["model"]["hidden"],
        "components": int(pred.metadata["ood"]["components"]), "batch": args.batch, "repeat": args.repeat,
        "compile_s": compile_s, "step_s": best, "ood_kernel_s": kernel,
        "ood_share_of_step_difference": extra / best["without_ood"], "ood_share_of_step_kernel": kernel / best["without_ood"],
    }
    print(f"device step, batch {args.batch}: without ood {best['without_ood'] * 1e3:.1f} ms, with ood "
          f"{best['with_ood'] * 1e3:.1f} ms ({extra / best['without_ood']:+.1%}); the score kernel alone "
          f"{kernel * 1e3:.2f} ms ({kernel / best['without_ood']:.1%} of the step); compile {compile_s}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(OUT, json.dumps(result, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
