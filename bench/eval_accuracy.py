"""Accuracy on the held-out test stars of a simulated survey, beside the paper's numbers.

Trains the 23 networks and the VMP network with configs/demo.toml on a simulated survey (the
demo survey given with --survey, or one simulated here into a temporary directory), then prints
per label the bias and std of (prediction - truth) on the test catalogue for SNR > 50 and
SNR 20-50 (snrg), next to the precision Wang et al. (2022) reached on real LAMOST stars
(SPEC.md "Networks"). The paper's numbers are a reference point, not a target the simulation is
built to hit: the simulated spectra, noise and training-set sizes differ from the real ones.

The calibration that counts is that of the catalogue itself: an independent survey of
--calibration-n spectra (default 40,000; every star held out, another seed) goes through
``jaxvac run`` with the trained checkpoint, and its Err_ columns are scored against the truth,
each label on its own training set's pool: std((catalogue - truth) / Err_) per snrg bin 10-20 /
20-50 / 50-100 / >100 with a bootstrap 16-84 % band and n (``"catalogue_calibration"``; the target
is 0.8-1.25), and in thirds of each label's own estimate (is Err_ honest for each kind of star?),
each also with the error model's value factors divided out, and the snrg table with its SNR
factors divided out, for comparison (--seed 2 gives a second, independent pair of surveys). The
independent survey has twice the usual repeats, half of them in poor conditions (snrg 10-20,
``CALIBRATION_SURVEY``): its snrg 10-20 bin then holds ~1,200 spectra of the magnitude set and
~2,900 of the APOGEE set, where a survey without them has 60 and 500 (the training survey's test
set 5 and 45): enough to tell an Err_ off by 25 % from chance. For each set with a sparseness
guard it also scores flag bit 2 against the simulated truth of every star of that survey (every
row, and the set's test pool): the rows flagged, and the share of the rows more than 5 Err_ off
the truth that are flagged (``catalogue_calibration["guard"]``; docs/errors.md).

It also prints the calibration of the checkpoint's own error model (issue 12): std of
(prediction - truth) / Err per label and snrg bin 10-20 / 20-50 / 50-100 / >100 on the test
stars, where each half of the test stars gets its Err from the model fitted on the other half
(``metrics.json`` "error_calibration"; 1 is a calibrated error, the target is 0.8-1.25), and the
fraction of test spectra (snrg > 10) the "unlike the training spectra" score flags, beside the
number of real LAMOST spectra (--real, default ../shared/lamost) it flags in a ``jaxvac run``.

    python bench/eval_accuracy.py [--quick] [--survey DIR] [--n 20000] [--config configs/demo.toml]
                                  [--noise-augment] [--calibration-n 40000 | --calibration-survey DIR]

--noise-augment trains with [train] noise_augment = true and writes eval_accuracy_augment.json
(and _report.md, _residuals.png) instead, to set beside the default run (docs/training.md).

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
#: The independent survey's options: every star held out; 20 % repeats, half of all repeats in
#: poor conditions (snrg 10-20), so that no snrg bin of any label's pool is too sparse to score.
CALIBRATION_SURVEY = dict(test_fraction=1.0, repeat_fraction=0.2, low_snr_fraction=0.1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a 1,500-spectrum survey and 8 epochs (about a minute)")
    ap.add_argument("--survey", default=None, help="survey directory (default: simulate one)")
    ap.add_argument("--n", type=int, default=20000, help="spectra to simulate when --survey is not given")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", default=str(REPO / "configs" / "demo.toml"))
    ap.add_argument("--run-dir", default=None, help="keep the run here (default: a temporary directory)")
    ap.add_argument("--noise-augment", action="store_true",
                    help="train with [train] noise_augment = true (results go to eval_accuracy_augment.json)")
    ap.add_argument("--calibration-n", type=int, default=40000,
                    help="spectra of the independent survey the catalogue's Err_ are scored on (0: none)")
    ap.add_argument("--real", default=str(REPO.parent / "shared" / "lamost"),
                    help="real LAMOST spectra whose ood flag rate is reported beside the test stars' (skipped if absent)")
    ap.add_argument("--calibration-survey", default=None,
                    help="use this survey (simulated with CALIBRATION_SURVEY's options: `jaxvac simulate "
                         + " ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in CALIBRATION_SURVEY.items())
                         + "`) instead of simulating one")
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
    out = OUT
    if args.noise_augment:
        cfg["train"] = {**cfg.get("train", {}), "noise_augment": True}
        out = OUT.with_name("eval_accuracy_augment.json")
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
        tag = "_augment" if args.noise_augment else ""
        if (Path(run_dir) / "residuals.png").is_file():
            shutil.copyfile(Path(run_dir) / "residuals.png", OUT.parent / f"eval_accuracy{tag}_residuals.png")
        report = (Path(run_dir) / "report.md").read_text().replace("(residuals.png)", f"(eval_accuracy{tag}_residuals.png)")
        atomic_write(OUT.parent / f"eval_accuracy{tag}_report.md", report)
        catcal = None
        if args.calibration_survey or args.calibration_n > 0:
            catcal = catalogue_calibration(args, tmp, run_dir, cfg)
        real = real_ood(args, tmp, run_dir)
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
    cal = res.metrics.get("error_calibration", [])
    if cal:
        bins = list(dict.fromkeys(r["bin"] for r in cal))
        byc = {(r["label"], r["bin"]): r for r in cal}
        print("\nstd((prediction - truth) / Err), Err from the half of the test stars not scored (target 0.8-1.25)")
        print(f"{'label':<13}" + "".join(f"{'snrg ' + b:>16}" for b in bins))
        for name in names:
            cells = [byc.get((name, b)) for b in bins]
            print(f"{name:<13}" + "".join(f"{c['z_std']:>10.2f} ({c['n']:>3d})" if c and c["n"] > 1 else f"{'-':>16}"
                                          for c in cells))
        inside = [c for c in cal if c["n"] > 1]
        ok = sum(0.8 <= c["z_std"] <= 1.25 for c in inside)
        print(f"{ok} of {len(inside)} label x bin cells within 0.8-1.25")
    if catcal:
        print(f"\nThe catalogue's own Err_: std((catalogue - truth) / Err_) [16-84 % bootstrap] (n) on "
              f"{catcal['n_spectra'] or 'the'} independent spectra of {catcal['survey']} (target 0.8-1.25)")
        bins = list(dict.fromkeys(r["bin"] for r in catcal["rows"]))
        byc = {(r["label"], r["bin"]): r for r in catcal["rows"]}
        print(f"{'label':<13}" + "".join(f"{'snrg ' + b:>26}" for b in bins))
        for name in names:
            cells = [byc.get((name, b)) for b in bins]
            print(f"{name:<13}" + "".join(
                f"{c['z_std']:>6.2f} [{c['z_std_lo']:.2f}, {c['z_std_hi']:.2f}] ({c['n']:>5d})" if c and c["n"] > 1
                else f"{'-':>26}" for c in cells))
        for key, what in (("rows", "with both kinds of factors"), ("rows_without_value_factors", "without the value factors"),
                          ("rows_without_snr_factors", "without the SNR factors")):
            inside = [c for c in catcal[key] if c["n"] > 1]
            ok = sum(0.8 <= c["z_std"] <= 1.25 for c in inside)
            print(f"{ok} of {len(inside)} label x snrg cells within 0.8-1.25 {what}")
        rated = [c for c in catcal["rows"] if c["n"] > 1 and c["sigma"] == c["sigma"]]
        out_t = [c for c in rated if not 0.8 <= c["z_std"] <= 1.25]
        print(f"Outside 0.8-1.25, with the error model's own uncertainty (err_rel, from its held-out stars) and "
              f"the bootstrap band: " + (", ".join(f"{c['label']} {c['bin']}: {c['z_std']:.2f} (+-{c['err_rel']:.0%}, "
                                                   f"{c['dev']:+.1f} sigma)" for c in out_t) or "none"))
        print(f"{sum(abs(c['dev']) <= 2 for c in out_t)} of those {len(out_t)} within 2 sigma of 1; over all "
              f"{len(rated)} cells, {sum(abs(c['dev']) > 2 for c in rated)} beyond 2 sigma "
              f"({0.0455 * len(rated):.1f} expected by chance if err_rel were the whole story)")
        print("\nstd(z) in thirds of each label's own estimate (lowest first): with / without the value factors")
        bye = {(r["label"], r["bin"]): r for r in catcal["by_estimate"]}
        byo = {(r["label"], r["bin"]): r for r in catcal["by_estimate_without_value_factors"]}
        for name in names:
            cells = [(bye.get((name, b)), byo.get((name, b))) for b in ("1/3", "2/3", "3/3")]
            if all(c and c["n"] > 1 for c, _ in cells):
                print(f"{name:<13}" + "".join(f"{c['z_std']:>9.2f} / {o['z_std']:.2f}" for c, o in cells))
    for set_name, by_scope in ((catcal or {}).get("guard") or {}).items():
        for scope, g in by_scope.items():
            print(f"guard {set_name} ({'every row' if scope == 'all' else 'its test pool'}, snrg >= 20): flag bit 2 on "
                  f"{g['flagged']:.1%} of {g['rows']:,} rows; of the {g['off']:,} more than 5 Err_ off the truth, "
                  f"{g['off_flagged']:.0%} flagged; of the unflagged rows {g['clean_off']:.2%} are")
    ood = res.metrics.get("ood", {})
    if ood:
        print(f"ood_score: threshold {ood['threshold']:.3g}; test spectra (snrg > 10) flagged: "
              f"{ood.get('test_flagged_fraction', float('nan')):.2%}")
        if real:
            ood = {**ood, "real": real}
            print(f"          real LAMOST spectra of {real['dir']}: {real['flagged']} of {real['rows']} catalogue rows "
                  f"flagged (qflag bit {real['bit']})")
        else:
            print(f"          real LAMOST spectra: none ({args.real} absent)")
    print(f"\nsurvey: {survey} ({'simulated here' if args.survey is None else 'given'}, {t1 - t0:.0f} s); "
          f"training + evaluation {t2 - t1:.0f} s; run: {args.run_dir or '(temporary)'}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, json.dumps({
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}",
        "survey": str(survey), "n_spectra": None if args.survey else n, "quick": args.quick,
        "train_seconds": t2 - t1, "notes": res.notes, "results": out_rows,
        "error_calibration": res.metrics.get("error_calibration", []), "catalogue_calibration": catcal,
        "ood": ({**res.metrics.get("ood", {}), "real": real} if real else res.metrics.get("ood", {}))},
        indent=1, default=float))
    print(f"wrote {out}")


def catalogue_calibration(args, tmp, run_dir, cfg) -> dict:
    """The catalogue's Err_ on an independent survey: {survey, n_spectra, seconds, rows,
    rows_without_value_factors, rows_without_snr_factors, by_estimate,
    by_estimate_without_value_factors}, rows of jaxvac.train.evaluate.error_calibration (snrg
    bins) and estimate_calibration (thirds of each label's estimate); "without" divides the error
    model's value or SNR factors out (the curve and the other factors are fitted before the SNR
    factors, so that is the model fitted without them)."""
    import numpy as np

    from jaxvac.config import load_config
    from jaxvac.io.tables import read_table
    from jaxvac.labels import checkpoint_schema
    from jaxvac.run.catalog import read_catalog
    from jaxvac.run.loop import run_catalog
    from jaxvac.run.uncertainties import run_error_model
    from jaxvac.train.checkpoint import read_metadata
    from jaxvac.train.evaluate import catalogue_residuals, error_calibration, estimate_calibration

    t0 = time.perf_counter()
    survey, n = args.calibration_survey, None
    if survey is None:
        from jaxvac.simulate import simulate_survey

        survey, n = str(Path(tmp) / "calibration"), (3000 if args.quick else args.calibration_n)
        simulate_survey(survey, n, seed=args.seed + 1, workers=os.cpu_count() or 1, progress=False, **CALIBRATION_SURVEY)
    out = Path(tmp) / "calibration_catalogue.fits"
    run_catalog(Path(run_dir) / "checkpoint", str(Path(survey) / "spectra"), out,
                crossmatch=Path(survey) / "crossmatch.fits", config=args.config, progress=False)
    rows, _ = read_catalog(out)
    test = read_table(Path(survey) / "catalogs" / "test.fits")
    meta = read_metadata(Path(run_dir) / "checkpoint")
    resid, err, snr, names = catalogue_residuals(rows, test, checkpoint_schema(meta))
    values = np.stack([np.asarray(rows[nm], np.float64) if nm in rows.dtype.names else np.full(rows.size, np.nan)
                       for nm in names], 1)
    model, _ = run_error_model(load_config(args.config), meta)  # the model the catalogue's Err_ came from
    have = [k for k, nm in enumerate(names) if nm in model.names]  # the value factors, of a value_label's estimate where set
    factor = np.ones(values.shape)
    factor[:, have] = model.value_factor([names[k] for k in have], values[:, have], snr)
    snr_factor = np.stack([model.row(nm).snr_factor(snr) if nm in model.names else np.ones(rows.size)
                           for nm in names], 1)
    edges = cfg.get("train", {}).get("error_check_bins", [10.0, 20.0, 50.0, 100.0])
    rows = with_model_uncertainty(error_calibration(resid, err, snr, names, edges),
                                  (meta.get("error_model") or {}).get("rows", {}), edges)
    return {"survey": str(survey), "n_spectra": n, "seconds": time.perf_counter() - t0,
            "guard": guard_rates(read_catalog(out)[0], Path(survey), checkpoint_schema(meta), meta),
            "rows": rows,
            "rows_without_value_factors": error_calibration(resid, err / factor, snr, names, edges),
            "rows_without_snr_factors": error_calibration(resid, err / snr_factor, snr, names, edges),
            "by_estimate": estimate_calibration(resid, err, values, names),
            "by_estimate_without_value_factors": estimate_calibration(resid, err / factor, values, names)}


def guard_rates(rows, survey: Path, schema, meta, off: float = 5.0, min_snrg: float = 20.0) -> dict:
    """How the sparseness guard (flag bit 2) flags the catalogue's rows, scored against the
    simulated truth of every star (truth.fits), per guarded set, over rows with snrg >= min_snrg:
    "all" every such row, "pool" those of the set's test pool (test.fits in_<set>); a row is
    ``off`` when an estimate of the set's labels is more than ``off`` x its Err_ from the truth.
    {set: {scope: {rows, flagged, off, off_flagged, clean_off}}} (fractions; clean_off: of the
    unflagged rows); {} without a guard or a truth table."""
    import numpy as np

    from jaxvac.io.tables import read_table

    if not meta.get("guard") or not (survey / "truth.fits").is_file():
        return {}
    truth = read_table(survey / "truth.fits")
    at = {int(o): i for i, o in enumerate(np.asarray(truth["obsid"]))}
    j = np.array([at.get(int(o), -1) for o in rows["obsid"]])
    test = read_table(survey / "catalogs" / "test.fits")
    out = {}
    for set_name in meta["guard"]:
        labels = [schema.names[k] for k in schema.of_set(set_name)]
        z = np.stack([(rows[n].astype(np.float64) - np.asarray(truth[n], np.float64)[np.maximum(j, 0)])
                      / rows[f"Err_{n}"].astype(np.float64) for n in labels], 1)
        known = (j >= 0) & np.isfinite(z).any(axis=1) & (rows["snrg"] >= min_snrg)
        bad = np.nanmax(np.where(np.isfinite(z), np.abs(z), 0.0), axis=1) > off
        flagged = (rows[f"flag_{labels[0]}"] & 2) != 0
        pool_col = f"in_{set_name.lower()}"
        in_pool = dict(zip(np.asarray(test["obsid"]).astype(int), np.asarray(test[pool_col], bool))) if pool_col in test else {}
        pool = np.array([in_pool.get(int(o), False) for o in rows["obsid"]])
        out[set_name] = {}
        for scope, sel in (("all", known), ("pool", known & pool)):
            n, nb = int(sel.sum()), int((sel & bad).sum())
            out[set_name][scope] = {"rows": n, "flagged": float(flagged[sel].mean()) if n else float("nan"), "off": nb,
                                    "off_flagged": float(flagged[sel & bad].mean()) if nb else float("nan"),
                                    "clean_off": float(bad[sel & ~flagged].mean()) if (sel & ~flagged).any() else float("nan")}
    return out


def with_model_uncertainty(rows: list[dict], model_rows: dict, edges) -> list[dict]:
    """Each catalogue cell {label, bin, z_std, z_std_lo, z_std_hi, ...} with err_rel: how well the
    training survey's held-out stars pinned its Err_ down (the err_rel of the error-model row's
    snrg bins whose median snrg lies in the cell, combined as 1 / sqrt(sum 1 / err_rel**2), else
    interpolated in log snrg at the cell's middle; NaN without err_ lists), sigma = sqrt(err_rel**2
    + (bootstrap half-width / z_std)**2) and dev = ln(z_std) / sigma: |dev| > 2 is a miss that
    chance in the two samples does not explain."""
    import math

    import numpy as np

    from jaxvac.train.evaluate import calibration_bins

    # the open last bin is taken as a decade wide
    cell = {name: (lo, hi if math.isfinite(hi) else 10.0 * lo) for name, lo, hi in calibration_bins(edges)}
    out = []
    for r in rows:
        m = model_rows.get(r["label"], {})
        at, rel = np.asarray(m.get("err_snrg", []), float), np.asarray(m.get("err_rel", []), float)
        e = math.nan
        if at.size and r["bin"] in cell and math.isfinite(r["z_std"]):
            lo, hi = cell[r["bin"]]
            inside = (at >= lo) & (at < hi) & (rel > 0)
            e = (float(1.0 / np.sqrt(np.sum(1.0 / rel[inside] ** 2))) if inside.any()
                 else float(np.interp(0.5 * (np.log(lo) + np.log(hi)), np.log(at), rel)))
        half = 0.5 * (r["z_std_hi"] - r["z_std_lo"]) / r["z_std"] if r["n"] > 1 else math.nan
        sigma = math.hypot(e, half) if math.isfinite(e) else math.nan
        out.append({**r, "err_rel": e, "sigma": sigma,
                    "dev": math.log(r["z_std"]) / sigma if sigma > 0 else math.nan})
    return out


def real_ood(args, tmp, run_dir) -> dict | None:
    """The "unlike the training spectra" flag on real spectra: {dir, rows, flagged, bit} of a
    ``jaxvac run`` of the checkpoint over ``args.real`` (stars with snrg > 10 become rows), or None
    when that folder is absent."""
    from jaxvac.run.catalog import read_catalog
    from jaxvac.run.loop import run_catalog
    from jaxvac.run.rows import QFLAG_OOD

    if not Path(args.real).is_dir():
        return None
    out = Path(tmp) / "real_catalogue.fits"
    run_catalog(Path(run_dir) / "checkpoint", args.real, out, config=args.config, progress=False)
    rows, _ = read_catalog(out)
    return {"dir": str(args.real), "rows": int(rows.size), "flagged": int(((rows["qflag"] & QFLAG_OOD) != 0).sum()),
            "bit": QFLAG_OOD}


if __name__ == "__main__":
    main()
