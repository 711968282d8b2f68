"""End-to-end `jaxvac run` spectra/s against the reader-only stream with the same workers.

Input: copies of the real LAMOST files of ../shared/lamost in a temporary directory (page cache,
not disk). Networks: the paper's sizes (1974-512-256-64-1 x 23 + the VMP net), random weights in
a real orbax checkpoint (speed does not depend on the weights). Both methods run in this process,
interleaved, --repeat times; the fastest of each is kept.

- "reader_only" (baseline): stream_batches over the files, batches consumed and dropped.
- "pipeline": run_catalog (set-up, i.e. checkpoint load and input listing, excluded) with every stage (normalise, 23 nets + VMP, errors, flags, astrometry,
  parts, merge, FITS catalogue). min_snrg = 0 and all classes, so every spectrum goes through the
  networks. The first call (compilation) is a warm-up and is not timed.
- "pipeline_demo_nets": the same with the networks of configs/demo.toml (~9x fewer FLOPs): on a 2-core
  CPU the paper's networks (53 MFLOP per spectrum, ~0.5 ms of one core) cost as much CPU as
  reading a file, and reader and networks share the same two cores.

- "store_reader_only": the store's batch stream alone (the packed counterpart of reader_only).
- "pack": the one-off conversion of the same files into a packed store (``jaxvac pack``, same
  reader workers); "packed" / "packed_demo_nets": run_catalog on that store instead of the FITS
  files (memory-mapped shards of the window pixels, no FITS parsing). The column "vs FITS" is the
  packed run's rate over the FITS run's with the same networks.

Targets on the 2-core CPU machine: pipeline >= 80% of reader_only; packed >= 5x pipeline.

    python bench/bench_pipeline.py [--quick] [--files N] [--workers W] [--batch B]

Writes bench/results/bench_pipeline.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from _common import real_file_copies  # noqa: E402  (bench/ is on sys.path when a script here runs)

REPO = Path(__file__).resolve().parents[1]
LAMOST = REPO.parent / "shared" / "lamost"


def make_checkpoint(directory: Path, hidden=(512, 256, 64), vmp_hidden=(256, 64)) -> Path:
    """A checkpoint of the paper's shapes with random weights (for timing only)."""
    import numpy as np

    from jaxvac import checkpoint
    from jaxvac.labels import LABEL_NAMES, LABELS, VMP
    from jaxvac.model import N_INPUT, N_VMP_INPUT, init_stack

    params = {"ensemble": init_stack(0, N_INPUT, tuple(hidden), len(LABEL_NAMES)),
              "vmp": init_stack(1, N_VMP_INPUT, tuple(vmp_hidden), 1),
              "y_mean": np.zeros(23, np.float32), "y_std": np.ones(23, np.float32),
              "vmp_mean": np.float32(-2.0), "vmp_std": np.float32(0.5)}
    meta = {"labels": list(LABEL_NAMES), "units": [l.unit for l in LABELS],
            "training_sets": [l.training_set for l in LABELS], "ranges": [[l.lo, l.hi] for l in LABELS],
            "vmp": {"name": VMP.name, "unit": VMP.unit, "range": [VMP.lo, VMP.hi], "train_feh_max": -1.0},
            "model": {"hidden": list(hidden), "vmp_hidden": list(vmp_hidden), "n_input": N_INPUT,
                      "n_vmp_input": N_VMP_INPUT, "activation": "relu"},
            "standardization": {"x_mean": np.ones(N_INPUT, np.float32), "x_std": np.full(N_INPUT, 0.1, np.float32),
                                "y_mean": params["y_mean"], "y_std": params["y_std"],
                                "vmp_mean": params["vmp_mean"], "vmp_std": params["vmp_std"]},
            "config": {}, "metrics": {"note": "random weights for benchmarking"}}
    return checkpoint.save(directory, params, meta).parent


def bench_reader(paths, workers, batch) -> float:
    from jaxvac.io.stream import stream_batches

    t = time.perf_counter()
    with stream_batches(paths, batch_size=batch, workers=workers, progress=False) as st:
        for _ in st:
            pass
    return len(paths) / (time.perf_counter() - t)


def bench_store_reader(store, batch) -> float:
    """Spectra/s of the store's batch stream alone (checksums, memory-mapped reads, metadata), batches dropped."""
    from jaxvac.store import Store

    t = time.perf_counter()
    st = Store(store)
    with st.batches(batch_size=batch) as stream:
        n = sum(b.n_valid for b in stream)
    return n / (time.perf_counter() - t)


def bench_pack(list_file, store, workers) -> float:
    """Files/s of one pack of the files into a store (one-off cost)."""
    from jaxvac.store import pack

    t = time.perf_counter()
    s = pack(str(list_file), store, workers=workers, progress=False)
    return s.inputs / (time.perf_counter() - t)


def bench_pipeline(model, source, out, workers, batch) -> tuple[float, dict]:
    """Spectra/s of one run_catalog, its set-up (checkpoint load, input listing) excluded.

    source: the text list of FITS files, or a packed store directory.
    """
    from jaxvac.pipeline import run_catalog

    t = time.perf_counter()
    s = run_catalog(model, str(source), out, workers=workers, batch_size=batch, fresh=True, progress=False,
                    min_snrg=0.0, classes=("STAR", "GALAXY", "QSO", "Unknown"))
    dt = time.perf_counter() - t - s.stage_s["setup"]
    return s.inputs / dt, {k: round(v, 3) for k, v in s.stage_s.items()} | {"device_idle": round(s.device_idle_fraction, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer files (under a minute on the CPU machine)")
    ap.add_argument("--files", type=int, default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=None)
    args = ap.parse_args()
    if not (LAMOST / "MANIFEST.tsv").is_file():
        print(f"bench_pipeline: skipped, the real spectra are not at {LAMOST} (../shared is absent)")
        return
    n = args.files or (1500 if args.quick else 6000)
    repeat = args.repeat or (1 if args.quick else 2)
    from jaxvac.config import load_config, section
    from jaxvac.train import ModelConfig

    demo_model = section(load_config("demo.toml"), "model", ModelConfig)
    import jax

    with tempfile.TemporaryDirectory(prefix="jaxvac-bench-pipe-") as tmp:
        tmp = Path(tmp)
        (tmp / "files").mkdir()
        paths = real_file_copies(n, tmp / "files")
        lst = tmp / "inputs.txt"
        lst.write_text("\n".join(paths) + "\n")
        models = {"pipeline": make_checkpoint(tmp / "ckpt_paper"),
                  "pipeline_demo_nets": make_checkpoint(tmp / "ckpt_demo", demo_model.hidden, demo_model.vmp_hidden)}
        warm = tmp / "warm.txt"
        warm.write_text("\n".join(paths[: args.batch]) + "\n")
        bench_pack(warm, tmp / "warm_store", args.workers)
        for model in models.values():  # compile the global-grid and the packed layout
            bench_pipeline(model, warm, tmp / "warm.fits", args.workers, args.batch)
            bench_pipeline(model, tmp / "warm_store", tmp / "warm.fits", args.workers, args.batch)
        packed = {"pipeline": "packed", "pipeline_demo_nets": "packed_demo_nets"}
        best = {"reader_only": 0.0, "store_reader_only": 0.0, "pack": 0.0, **{k: 0.0 for k in models}, **{v: 0.0 for v in packed.values()}}
        stages = {}
        for r in range(repeat):
            best["reader_only"] = max(best["reader_only"], bench_reader(paths, args.workers, args.batch))
            store = tmp / f"store{r}"
            best["pack"] = max(best["pack"], bench_pack(lst, store, args.workers))
            best["store_reader_only"] = max(best["store_reader_only"], bench_store_reader(store, args.batch))
            for name, model in models.items():
                for key, source in ((name, lst), (packed[name], store)):
                    rate, st = bench_pipeline(model, source, tmp / "cat.fits", args.workers, args.batch)
                    if rate > best[key]:
                        best[key], stages[key] = rate, st
        store_bytes = json.loads((tmp / "store0" / "manifest.json").read_text())["shard_bytes"]
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {jax.devices()[0].platform}, " \
              f"Python {platform.python_version()}, jax {jax.__version__}"
    base = best["reader_only"]
    paper = "23 x 1974-512-256-64-1 (paper)"
    demo = f"23 x 1974-{'-'.join(map(str, demo_model.hidden))}-1 (configs/demo.toml)"
    nets = {"reader_only": "-", "store_reader_only": "-", "pack": "- (one-off: FITS -> store)", "pipeline": paper, "pipeline_demo_nets": demo,
            "packed": paper, "packed_demo_nets": demo}
    fits_of = {"packed": "pipeline", "packed_demo_nets": "pipeline_demo_nets", "store_reader_only": "reader_only"}
    results = [{"method": k, "batch": args.batch, "workers": args.workers, "files": n, "networks": nets[k],
                "input": "store" if k in fits_of else "fits", "spectra_per_s": round(v, 1), "ratio": round(v / base, 3),
                **({"vs_fits": round(v / best[fits_of[k]], 2)} if k in fits_of else {}),
                **({"store_bytes_per_spectrum": round(store_bytes / n, 1)} if k == "pack" else {}),
                **({"stage_s": stages[k]} if k in stages else {})}
               for k, v in best.items()]
    print(f"\nmachine: {machine}; {n} files, {args.workers} reader workers, batch {args.batch}")
    print(f"{'method':<20}{'networks':<44}{'spectra/s':>10}{'vs reader':>11}{'vs FITS':>9}")
    for r in results:
        vs = f"{r['vs_fits']:>8.1f}x" if "vs_fits" in r else ""
        print(f"{r['method']:<20}{r['networks']:<44}{r['spectra_per_s']:>10.1f}{r['ratio']:>10.2f}x{vs}")
    for k, st in stages.items():
        print(f"{k} stages (s): {st}")
    print(f"store: {store_bytes / n:.0f} bytes per spectrum")
    print("target: pipeline >= 0.80x reader_only:", "met" if best["pipeline"] >= 0.8 * base else "NOT met")
    print("target: packed >= 5x pipeline (FITS):", "met" if best["packed"] >= 5 * best["pipeline"] else "NOT met")
    out = REPO / "bench" / "results" / "bench_pipeline.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps({"machine": machine, "results": results}, indent=1))
    os.replace(tmp_out, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
