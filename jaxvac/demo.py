"""`make demo` / `jaxvac demo`: the whole method on a simulated survey whose truth is known.

simulate a survey -> train the 23 networks and the VMP net -> run the catalogue -> report ->
accuracy of the catalogue against the simulator's truth (held-out test stars only, so no star
the networks were trained on is scored). Every step reuses what an earlier demo left in the
output folder when its inputs are unchanged (the survey, the normalised-spectra cache), so a
second `make demo` is quick; the catalogue run resumes from its parts.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np



@dataclasses.dataclass
class DemoResult:
    survey: Path
    run: Path
    catalogue: Path
    report: Path
    accuracy_table: str
    seconds: dict


def truth_accuracy(catalogue: str | Path, truth: str | Path) -> tuple[list[dict], str]:
    """Per-label bias and std of (catalogue - truth), SNR 20-50 and > 50.

    Each label is scored on held-out test stars (never in a training catalogue) drawn from its own
    training set's pool (``jaxvac.simulate.catalogs.selections``), as the paper's test sets were:
    the LGMWAS-like magnitude networks, for instance, learn from nearby (< 2 kpc) stars and are
    not scored on distant giants they never saw. feh_VMP is scored where the candidate rule gave it.
    Labels the catalogue or the truth file lacks (a config of other labels) are not scored.
    """
    import fitsio

    from jaxvac.run.catalog import UNITS, read_catalog
    from jaxvac.train.evaluate import markdown_table, residual_stats
    from jaxvac.labels import LABELS, VMP
    from jaxvac.simulate.catalogs import selections

    rows, _ = read_catalog(catalogue)
    t = fitsio.read(str(truth))
    where = {int(o): i for i, o in enumerate(t["obsid"])}
    idx = np.array([where.get(int(o), -1) for o in rows["obsid"]])
    keep = idx >= 0
    rows, t = rows[keep], t[idx[keep]]
    test = t["test"].astype(bool)
    rows, t = rows[test], t[test]
    snr = rows["snrg"].astype(np.float64)
    pools = selections(t["Teff_PASTEL"], t["feh_PASTEL"], t["dist"], t["EBV"], snr)
    labels = tuple(lab for lab in (*LABELS, VMP) if lab.name in rows.dtype.names and lab.name in t.dtype.names)
    pred = np.stack([rows[l.name].astype(np.float64) for l in labels], axis=1)
    true = np.stack([t[l.name].astype(np.float64) for l in labels], axis=1)
    for k, lab in enumerate(labels):
        pred[~pools[lab.training_set.lower()], k] = np.nan
    stats = residual_stats(true, pred, snr, [l.name for l in labels], edges=(20.0, 50.0))
    return stats, markdown_table(stats, UNITS, ["20-50", ">50"])


def run_demo(out: str | Path = "demo", n: int = 20000, seed: int = 1, config: str = "demo.toml",
             workers: int | None = None, progress: bool | None = None, echo=print) -> DemoResult:
    """Run the demo into ``out``; ``echo`` receives one line per step."""
    from jaxvac.config import load_config
    from jaxvac.run.loop import run_catalog
    from jaxvac.display.report import report_catalogue
    from jaxvac.simulate import simulate_survey
    from jaxvac.train.job import train_from_config

    out = Path(out).resolve()
    survey, run_dir, cat = out / "survey", out / "run", out / "catalogue.fits"
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    stamp = survey / "survey.json"
    same = stamp.is_file() and (lambda s: s.get("n") == n and s.get("seed") == seed)(json.loads(stamp.read_text()))
    if same:
        echo(f"[1/5] survey: reusing {survey} ({n} spectra, seed {seed})")
    else:
        echo(f"[1/5] simulating {n} spectra into {survey} (seed {seed}) ...")
        simulate_survey(survey, n, seed=seed, progress=progress, corrupt_fraction=0.002,
                        **({} if workers is None else {"workers": workers}))
    seconds["simulate"] = time.perf_counter() - t

    t = time.perf_counter()
    echo(f"[2/5] training the 23 networks + VMP net ({config}) into {run_dir} ...")
    trained = train_from_config(load_config(config), data_dir=str(survey), out_dir=str(run_dir), progress=progress)
    for w in trained.warnings:  # what `jaxvac train` prints as warnings (e.g. Err_ pinned down loosely)
        echo(f"      warning: {w}")
    seconds["train"] = time.perf_counter() - t

    t = time.perf_counter()
    echo(f"[3/5] catalogue of every spectrum -> {cat} ...")
    model = Path(trained.checkpoint).parent
    summary = run_catalog(model, str(survey / "spectra"), cat, crossmatch=survey / "crossmatch.fits",
                          config=config, workers=workers, progress=progress, fresh=True)
    for line in summary.lines():
        echo("      " + line.replace("\n", "\n      "))
    seconds["run"] = time.perf_counter() - t

    t = time.perf_counter()
    report_dir = out / "report"
    report_catalogue(cat, report_dir, title="jaxvac demo catalogue")
    echo(f"[4/5] report: {report_dir}/index.html (plots, tables, provenance), summary.md")
    seconds["report"] = time.perf_counter() - t

    _, table = truth_accuracy(cat, survey / "truth.fits")
    echo("[5/5] accuracy against the simulator's truth: held-out stars of each label's training-set pool;"
         " bias / std (n)")
    echo(table)
    (out / "accuracy.md").write_text("# Demo catalogue vs simulator truth (held-out stars)\n\n" + table + "\n")
    echo(f"done in {sum(seconds.values()):.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()) + ")")
    echo(f"  survey      {survey}\n  checkpoint  {model}\n  training    {trained.report}\n"
         f"  catalogue   {cat}\n  report      {report_dir}/index.html\n  accuracy    {out / 'accuracy.md'}")
    return DemoResult(survey, run_dir, cat, report_dir, table, seconds)
