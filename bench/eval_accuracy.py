"""Accuracy on the held-out test stars of a simulated survey, beside the paper's numbers.

Trains the 23 networks and the VMP network with configs/demo.toml on a simulated survey (the
demo survey given with --survey, or one simulated here into a temporary directory), then prints
per label the bias and std of (prediction - truth) on the test catalogue for SNR > 50 and
SNR 20-50 (snrg), next to the precision Wang et al. (2022) reached on real LAMOST stars
(SPEC.md "Networks"). The paper's numbers are a reference point, not a target the simulation is
built to hit: the simulated spectra, noise and training-set sizes differ from the real ones.

    python bench/eval_accuracy.py [--quick] [--survey DIR] [--n 20000] [--config configs/demo.toml]

Writes bench/results/eval_accuracy.json, and copies the run's report.md and residuals.png to
bench/results/eval_accuracy_report.md and eval_accuracy_residuals.png. The run itself (checkpoint,
cache of normalised spectra) goes to a temporary directory unless --run-dir names one to keep.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "eval_accuracy.json"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a 1,500-spectrum survey and 8 epochs (about a minute)")
    ap.add_argument("--survey", default=None, help="survey directory (default: simulate one)")
    ap.add_argument("--n", type=int, default=20000, help="spectra to simulate when --survey is not given")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", default=str(REPO / "configs" / "demo.toml"))
    ap.add_argument("--run-dir", default=None, help="keep the run here (default: a temporary directory)")
    args = ap.parse_args(argv)

    from jaxvac.config import load_config
    from jaxvac.io.atomic import atomic_write
    from jaxvac.train.evaluate import PAPER_MAG_STD, PAPER_STD
    from jaxvac.labels import LABEL_NAMES, VMP
    from jaxvac.train.job import train_from_config

    cfg = load_config(args.config)
    n = 1500 if args.quick else args.n
    if args.quick:
        cfg["train"] = {**cfg.get("train", {}), "max_epochs": 8, "patience": 8}
    with tempfile.TemporaryDirectory() as tmp:
        survey = args.survey
        t0 = time.perf_counter()
        if survey is None:
            from jaxvac.simulate import simulate_survey

            survey = str(Path(tmp) / "survey")
            simulate_survey(survey, n, seed=args.seed, workers=os.cpu_count() or 1, progress=False)
        t1 = time.perf_counter()
        run_dir = args.run_dir or str(Path(tmp) / "run")
        res = train_from_config(cfg, data_dir=survey, out_dir=run_dir, progress=False)
        t2 = time.perf_counter()
        OUT.parent.mkdir(parents=True, exist_ok=True)
        if (Path(run_dir) / "residuals.png").is_file():
            shutil.copyfile(Path(run_dir) / "residuals.png", OUT.parent / "eval_accuracy_residuals.png")
        report = (Path(run_dir) / "report.md").read_text().replace("(residuals.png)", "(eval_accuracy_residuals.png)")
        (OUT.parent / "eval_accuracy_report.md").write_text(report)
    rows = res.metrics["test"]
    by = {(r["label"], r["bin"]): r for r in rows}
    names = list(LABEL_NAMES) + [VMP.name]
    out_rows = []
    head = f"{'label':<13}{'SNR>50 bias':>12}{'std':>9}{'n':>6}{'SNR 20-50 bias':>16}{'std':>9}{'n':>6}   paper std"
    print(head)
    print("-" * len(head))
    for name in names:
        hi, mid = by.get((name, ">50")), by.get((name, "20-50"))
        paper = PAPER_STD.get(name, PAPER_MAG_STD if name.startswith("a_") else "")
        def cell(r, width):
            if r and r["n"] > 1:
                return f"{r['bias']:>{width}.3f}{r['std']:>9.3f}{r['n']:>6d}"
            return f"{'-':>{width}}{'-':>9}{(r or {}).get('n', 0):>6d}"

        print(f"{name:<13}{cell(hi, 12)}{cell(mid, 16)}   {paper}")
        for b, r in ((">50", hi), ("20-50", mid)):
            if r:
                out_rows.append({"method": "jaxvac demo networks", "label": name, "snr_bin": b, "n": r["n"],
                                 "bias": r["bias"], "std": r["std"], "paper_std": paper})
    print(f"\nsurvey: {survey} ({'simulated here' if args.survey is None else 'given'}, {t1 - t0:.0f} s); "
          f"training + evaluation {t2 - t1:.0f} s; run: {args.run_dir or '(temporary)'}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(OUT, json.dumps({
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}",
        "survey": str(survey), "n_spectra": None if args.survey else n, "quick": args.quick,
        "train_seconds": t2 - t1, "notes": res.notes, "results": out_rows}, indent=1, default=float))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
