"""Spectra per second writing a synthetic survey (jaxvac.simulate.simulate_survey).

Rows (the whole survey: plan, photometry, spectra, FITS files, catalogues):

    1 worker    everything in this process (the baseline)
    2 workers   files rendered by 2 spawned processes (the output is byte-identical)

with their CPU seconds (this process and its workers) and the load average before the run,
plus the stages of the 1-worker run: planning (population, photometry, distances), rendering
(models, noise, masks, headers, gzip, writes) and catalogues. The one-time set-up (imports,
the template bank and the photometric grid) is timed apart by a 20-spectrum warm-up survey;
spawned workers pay their own set-up inside their row.

Usage: python bench/bench_simulate.py [--quick] [--n N]
  default N = 20,000 (the demo survey: the target is under a minute on the 2-core machine),
  --quick N = 2,000. Writes bench/results/bench_simulate.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine, write_results  # noqa: E402  (bench/ is on sys.path when a script here runs)

REPO = Path(__file__).resolve().parents[1]


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the workers): on a shared,
    loaded machine the wall clock measures the neighbours too, CPU time much less so."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def stages(root: Path, n: int, seed: int) -> dict:
    """Seconds per stage of a 1-worker survey, run by hand through the same functions."""
    from jaxvac.simulate import catalogs, render, survey

    out = root / "stages"
    t0 = time.perf_counter()
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    stars, recs, plans = survey.plan_survey(rng, n, survey.SurveyOptions())
    t1 = time.perf_counter()
    (out / "catalogs").mkdir(parents=True)
    for pid in np.unique(plans["planid"]):
        (out / "spectra" / pid).mkdir(parents=True)
    c0 = time.process_time()
    for task in survey.chunk_tasks(out, seed, recs, plans):
        render.render_chunk(task)
    t2 = time.perf_counter()
    cpu_render = time.process_time() - c0
    catalogs.write_all(out, rng, stars, recs, 1.0)
    t3 = time.perf_counter()
    shutil.rmtree(out)
    return {"plan": t1 - t0, "render": t2 - t1, "render_cpu": cpu_render, "catalogs": t3 - t2}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000 spectra (under a minute)")
    ap.add_argument("--n", type=int, default=None, help="spectra per survey (default 20,000; --quick 2,000)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "bench_simulate.json"))
    args = ap.parse_args(argv)
    n = args.n or (2000 if args.quick else 20000)
    from jaxvac.simulate import simulate_survey

    results = []
    with tempfile.TemporaryDirectory(prefix="bench_simulate_") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        simulate_survey(root / "warmup", 20, args.seed, progress=False)
        setup = time.perf_counter() - t0
        print(f"{machine()}\nsurvey of {n} spectra; one-time set-up (imports, template bank, photometric grid, "
              f"a 20-spectrum warm-up): {setup:.1f} s\n")
        print(f"{'method':34s} {'seconds':>8s} {'spectra/s':>10s} {'x baseline':>10s} {'CPU s':>8s} {'load':>6s}")
        base = None
        for workers in (1, 2):
            load = os.getloadavg()[0]
            t0, c0 = time.perf_counter(), _cpu()
            info = simulate_survey(root / f"w{workers}", n, args.seed, progress=False, workers=workers)
            wall, cpu = time.perf_counter() - t0, _cpu() - c0
            rate = n / wall
            base = base or rate
            name = f"simulate_survey, {workers} worker{'s' if workers > 1 else ''}"
            results.append({"method": name, "batch": n, "workers": workers, "seconds": round(wall, 2),
                            "spectra_per_s": round(rate, 1), "ratio_to_baseline": round(rate / base, 2),
                            "cpu_seconds": round(cpu, 2), "load_average_before": round(load, 2),
                            "setup_seconds_excluded": round(setup, 2) if workers == 1 else None,
                            "catalog_sizes": info.catalog_sizes})
            print(f"{name:34s} {wall:8.1f} {rate:10.0f} {rate / base:10.2f} {cpu:8.1f} {load:6.1f}")
            shutil.rmtree(root / f"w{workers}")
        st = stages(root, n, args.seed)
        for stage in ("plan", "render", "catalogs"):
            rate = n / st[stage]
            results.append({"method": f"stage: {stage} (1 worker)", "batch": n, "seconds": round(st[stage], 2),
                            "spectra_per_s": round(rate, 1)})
            print(f"{'  stage: ' + stage:34s} {st[stage]:8.1f} {rate:10.0f}")
        print(f"  render CPU per spectrum: {1e3 * st['render_cpu'] / n:.2f} ms")
        results.append({"method": "stage: render CPU per spectrum (ms)", "batch": n,
                        "ms_per_spectrum": round(1e3 * st["render_cpu"] / n, 3)})
    out = write_results("bench_simulate", results, out=args.out, baseline="simulate_survey, 1 worker", n=n,
                        setup_seconds=round(setup, 2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
