"""The training job of ``jaxvac train``: catalogues -> cached normalised spectra -> networks ->
evaluation -> checkpoint, all from one config (SPEC.md "Training"; docs/training.md).

:func:`train_from_config` reads the training catalogues ([train.catalogs]), applies the curation
cuts ([curation]), normalises and caches the spectra, trains the 23 label networks as one stack
with :func:`jaxvac.train.fit` (then retrains the LGMWAS-set members without their outliers when
[curation] says so) and the VMP network, scores every label on held-out stars of its own
training set, and writes the checkpoint, metrics.json, report.md and residuals.png.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxvac.config import recipe_defaults
from jaxvac.train.fit import EpochInfo, TrainConfig, fit, predict_stack, split_validation


@dataclasses.dataclass(frozen=True)
@recipe_defaults("model")
class ModelConfig:
    """``[model]`` of configs/*.toml: network sizes; the defaults are those of configs/dr8.toml [model].

    hidden: hidden layer widths of each of the 23 label networks (ReLU).
    vmp_hidden: hidden layer widths of the very-metal-poor network (input 3900-4400 A).
    max_bad_fraction: training/test spectra with more bad network-input pixels are left out.
    """

    hidden: tuple[int, ...]
    vmp_hidden: tuple[int, ...]
    max_bad_fraction: float


@dataclasses.dataclass
class RunResult:
    """What :func:`train_from_config` produced."""

    checkpoint: str
    report: str
    notes: list
    table: str
    metrics: dict


def _splice(params: dict, sub: dict, members: np.ndarray) -> dict:
    """params with the members ``members`` replaced by the stack ``sub`` (same order)."""
    from jaxvac.kernels.ensemble import member_axes

    def f(a, b, ax):
        a = np.array(a)
        idx = [slice(None)] * a.ndim
        idx[ax] = members
        a[tuple(idx)] = np.asarray(b)
        return a

    return jax.tree.map(f, params, sub, member_axes(params))


_CATALOG_HINT = "check [train] catalogs and data_dir in the config"  # where a catalogue's path comes from


def train_from_config(cfg: dict, *, data_dir: str | None = None, out_dir: str | None = None,
                      on_stage: Callable[[str, int], None] | None = None,
                      on_epoch: Callable[[EpochInfo], None] | None = None,
                      progress: bool | None = None) -> RunResult:
    """Train the 23 networks and the VMP network as ``cfg`` says; evaluate; save a checkpoint.

    cfg: a loaded config (jaxvac.config.load_config). data_dir, out_dir override [train].
    on_stage(name, max_epochs): called when a training stage starts ("ensemble", "retrain",
    "vmp"); on_epoch: after every epoch of every stage. progress: reader progress bar.
    Writes <out>/checkpoint/<step>/, <out>/report.md, <out>/residuals.png, <out>/metrics.json.
    """
    from jaxvac.train import checkpoint
    from jaxvac.config import section
    from jaxvac.io.tables import read_table
    from jaxvac.train.dataset import CurationConfig, apply_cuts, catalog_paths, lgmwas_outliers, load_spectra
    from jaxvac.labels import LABEL_NAMES, LABELS, TRAINING_SETS, VMP, VMP_TRAIN_FEH_MAX
    from jaxvac.model import N_VMP_INPUT
    from jaxvac.preprocess import LAYOUT, standardization_stats, standardize

    mcfg = section(cfg, "model", ModelConfig)
    tcfg = section(cfg, "train", TrainConfig)
    ccfg = section(cfg, "curation", CurationConfig)
    data = Path(data_dir or tcfg.data_dir).resolve()
    out = Path(out_dir or tcfg.out_dir).resolve()
    cache = Path(tcfg.cache_dir) if Path(tcfg.cache_dir).is_absolute() else out / tcfg.cache_dir
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []

    # 1. training catalogues -> one row per spectrum with the labels of every set it is in
    rows: dict[str, int] = {}
    y_rows: list[np.ndarray] = []
    for set_name in TRAINING_SETS:
        if set_name not in tcfg.catalogs:
            raise ValueError(f"[train] catalogs has no entry for training set {set_name}; give one of {list(TRAINING_SETS)}.")
        cat_path = data / tcfg.catalogs[set_name]
        cat = read_table(cat_path, hint=_CATALOG_HINT)
        set_labels = [lab.name for lab in LABELS if lab.training_set == set_name]
        missing = [lab for lab in set_labels if lab not in cat]
        if missing:
            raise ValueError(f"training catalogue {str(cat_path)!r} ({set_name}) lacks label column(s) {missing}.")
        keep, cut_notes = apply_cuts(cat, set_name, set_labels, ccfg.cuts if ccfg.apply_cuts else ())
        notes += cut_notes
        paths = catalog_paths(cat, data, where=str(cat_path))
        for i, p in enumerate(paths):
            if p not in rows:
                rows[p] = len(rows)
                y_rows.append(np.full(len(LABEL_NAMES), np.nan))
            y = y_rows[rows[p]]
            for lab in set_labels:
                v = float(cat[lab][i])
                if keep[lab][i] and np.isfinite(v):
                    y[LABEL_NAMES.index(lab)] = v
    paths = list(rows)
    y = np.array(y_rows)

    # 2. spectra (cached), usable rows, flux standardisation from the training stars
    spec = load_spectra(paths, cache, workers=tcfg.workers, progress=progress)
    usable = spec.usable(mcfg.max_bad_fraction) & np.array([bool(p) for p in paths])
    if (~usable).any():
        reasons = {}
        for i in np.flatnonzero(~usable):
            key = spec.reasons[i] or (f"pre-processing status {spec.status[i]}" if spec.status[i] else "too many bad pixels")
            reasons[key] = reasons.get(key, 0) + 1
        notes.append(f"training spectra left out: {int((~usable).sum())} of {len(paths)} ("
                     + "; ".join(f"{n}x {r}" for r, n in sorted(reasons.items(), key=lambda t: -t[1])[:5]) + ")")
    y, norm, good = y[usable], spec.norm[usable], spec.good[usable]
    x_mean, x_std = (np.asarray(a, np.float32) for a in standardization_stats(norm, good))
    x = np.asarray(standardize(norm, good, x_mean, x_std), np.float32)
    val_mask = split_validation(y, tcfg.val_fraction, tcfg.seed)

    # 3. the 23 networks; LGMWAS curation and retraining of the 14 magnitude networks
    if on_stage:
        on_stage("ensemble", tcfg.max_epochs)
    fit_all = fit(x, y, hidden=tuple(mcfg.hidden), cfg=tcfg, val_mask=val_mask, on_epoch=on_epoch)
    params, y_mean, y_std = fit_all.params, fit_all.y_mean, fit_all.y_std
    best_val, best_epoch = fit_all.best_val, fit_all.best_epoch
    n_train, n_val = fit_all.n_train.copy(), fit_all.n_val.copy()
    epochs = fit_all.epochs_run
    if ccfg.binary_removal or ccfg.clip_sigma > 0:
        mags = np.array([i for i, lab in enumerate(LABELS) if lab.training_set == "LGMWAS"])
        names = [LABEL_NAMES[i] for i in mags]
        pred = predict_stack(params, x, y_mean, y_std, tcfg.eval_batch)
        drop_star, drop_band, cl_notes = lgmwas_outliers(y[:, mags], pred[:, mags], names, ccfg)
        notes += cl_notes
        y_mag = y[:, mags].copy()
        y_mag[drop_star] = np.nan
        y_mag[drop_band] = np.nan
        if on_stage:
            on_stage("retrain", tcfg.max_epochs)
        sub = fit(x, y_mag, hidden=tuple(mcfg.hidden), cfg=tcfg, val_mask=val_mask, on_epoch=on_epoch)
        params = _splice(params, sub.params, mags)
        y[:, mags] = y_mag
        y_mean[mags], y_std[mags] = sub.y_mean, sub.y_std
        best_val[mags], best_epoch[mags] = sub.best_val, sub.best_epoch
        n_train[mags], n_val[mags] = sub.n_train, sub.n_val
        epochs += sub.epochs_run

    # 4. the VMP network: PASTEL stars with [Fe/H] <= -1.0, input 3900-4400 A
    feh = y[:, LABEL_NAMES.index("feh_PASTEL")]
    vmp_rows = np.isfinite(feh) & (feh <= VMP_TRAIN_FEH_MAX)
    if vmp_rows.sum() < 4:
        raise ValueError(f"only {int(vmp_rows.sum())} PASTEL training stars have [Fe/H] <= {VMP_TRAIN_FEH_MAX}; "
                         f"the VMP network needs at least 4 (add metal-poor stars to the PASTEL catalogue).")
    if on_stage:
        on_stage("vmp", tcfg.max_epochs)
    vmp_val = val_mask[vmp_rows]
    if not vmp_val.any() or vmp_val.all():
        vmp_val = np.arange(vmp_rows.sum()) % 5 == 0
    fit_vmp = fit(x[vmp_rows, :N_VMP_INPUT], feh[vmp_rows, None], hidden=tuple(mcfg.vmp_hidden), cfg=tcfg,
                  val_mask=vmp_val, on_epoch=on_epoch)

    # 5. evaluation on the test catalogue
    units = {lab.name: lab.unit for lab in LABELS} | {VMP.name: VMP.unit}
    metrics = {
        "epochs": int(epochs + fit_vmp.epochs_run),
        "n_train": {n: int(v) for n, v in zip(LABEL_NAMES, n_train)} | {VMP.name: int(fit_vmp.n_train[0])},
        "n_val": {n: int(v) for n, v in zip(LABEL_NAMES, n_val)} | {VMP.name: int(fit_vmp.n_val[0])},
        "best_val_loss": {n: float(v) for n, v in zip(LABEL_NAMES, best_val)} | {VMP.name: float(fit_vmp.best_val[0])},
        "best_epoch": {n: int(v) for n, v in zip(LABEL_NAMES, best_epoch)} | {VMP.name: int(fit_vmp.best_epoch[0])},
    }
    model_params = {
        "ensemble": params, "vmp": fit_vmp.params,
        "y_mean": np.asarray(y_mean, np.float32), "y_std": np.asarray(y_std, np.float32),
        "vmp_mean": np.float32(fit_vmp.y_mean[0]), "vmp_std": np.float32(fit_vmp.y_std[0]),
    }
    table = ""
    plot = None
    if tcfg.test_catalog:
        table, plot, test_rows = _evaluate(model_params, x_mean, x_std, data / tcfg.test_catalog, data, cache,
                                           out, tcfg, mcfg, units, notes, progress)
        metrics["test"] = test_rows

    # 6. checkpoint + report
    meta = {
        "labels": list(LABEL_NAMES),
        "units": [lab.unit for lab in LABELS],
        "training_sets": [lab.training_set for lab in LABELS],
        "ranges": [[lab.lo, lab.hi] for lab in LABELS],
        "vmp": {"name": VMP.name, "unit": VMP.unit, "range": [VMP.lo, VMP.hi], "train_feh_max": VMP_TRAIN_FEH_MAX},
        "model": {"hidden": list(mcfg.hidden), "vmp_hidden": list(mcfg.vmp_hidden), "n_input": x.shape[1],
                  "n_vmp_input": N_VMP_INPUT, "activation": "relu"},
        "standardization": {
            "x_mean": x_mean, "x_std": x_std, "y_mean": model_params["y_mean"], "y_std": model_params["y_std"],
            "vmp_mean": model_params["vmp_mean"], "vmp_std": model_params["vmp_std"],
        },
        "config": {k: v for k, v in cfg.items() if k in ("model", "train", "curation", "_source")},
        "curation_notes": notes,
        "metrics": metrics,
    }
    ck = checkpoint.save(out / "checkpoint", model_params, meta, layout=LAYOUT)  # load_spectra normalised with it
    report = _write_report(out, ck, metrics, notes, table, plot)
    return RunResult(checkpoint=str(ck), report=str(report), notes=notes, table=table, metrics=metrics)


def _evaluate(model_params, x_mean, x_std, test_path, data, cache, out, tcfg, mcfg, units, notes, progress):
    from jaxvac.train import evaluate
    from jaxvac.io.tables import read_table
    from jaxvac.train.dataset import catalog_paths, load_spectra
    from jaxvac.labels import LABEL_NAMES, LABELS, VMP
    from jaxvac.model import predict_standardized
    from jaxvac.preprocess import standardize

    cat = read_table(test_path, hint=_CATALOG_HINT)
    paths = catalog_paths(cat, data, where=str(test_path))
    spec = load_spectra(list(paths), cache, workers=tcfg.workers, progress=progress)
    usable = spec.usable(mcfg.max_bad_fraction) & (paths != "")
    if (~usable).any():
        notes.append(f"test spectra left out: {int((~usable).sum())} of {len(paths)} (unreadable or failed pre-processing)")
    x = np.asarray(standardize(spec.norm[usable], spec.good[usable], x_mean, x_std), np.float32)
    names = list(LABEL_NAMES) + [VMP.name]
    truth = np.stack([np.asarray(cat[n], float) if n in cat else np.full(len(paths), np.nan) for n in names], 1)
    # A test catalogue may say which training set's pool each star belongs to (in_pastel, ...):
    # each label is then scored on its own set's kind of star, as the paper's test sets were.
    sets = [lab.training_set.lower() for lab in LABELS] + [VMP.training_set.lower()]
    for k, s in enumerate(sets):
        if f"in_{s}" in cat:
            truth[~np.asarray(cat[f"in_{s}"], bool), k] = np.nan
    truth = truth[usable]
    snr = np.asarray(cat["snrg"], float)[usable] if "snrg" in cat else spec.snrg[usable].astype(float)
    preds, vmps = [], []
    b = tcfg.eval_batch
    for s in range(0, len(x), b):
        xb = x[s : s + b]
        pad = b - len(xb)
        yb, vb = predict_standardized(model_params, jnp.asarray(np.pad(xb, ((0, pad), (0, 0)))))
        preds.append(np.asarray(yb)[: b - pad])
        vmps.append(np.asarray(vb)[: b - pad])
    pred = np.concatenate([np.concatenate(preds), np.concatenate(vmps)[:, None]], 1).astype(float)
    rows = evaluate.residual_stats(truth, pred, snr, names, tcfg.snr_bins)
    bins = ["all"] + evaluate.snr_bin_names(tcfg.snr_bins)
    table = evaluate.markdown_table(rows, units, bins)
    plot = evaluate.plot_residuals(truth, pred, names, units, out / "residuals.png")
    return table, plot, rows


def _write_report(out: Path, ck: Path, metrics: dict, notes: list, table: str, plot) -> Path:
    import json

    from jaxvac.io.atomic import atomic_write

    lines = ["# jaxvac training run", "", f"Checkpoint: `{ck}`", "", "## Curation and data notes", ""]
    lines += [f"- {n}" for n in notes] or ["- none"]
    lines += ["", "## Training", "", "| network | train stars | val stars | best val loss (std. units) | best epoch |",
              "|---|---|---|---|---|"]
    for name in metrics["n_train"]:
        lines.append(f"| {name} | {metrics['n_train'][name]} | {metrics['n_val'][name]} | "
                     f"{metrics['best_val_loss'][name]:.4f} | {metrics['best_epoch'][name]} |")
    if table:
        lines += ["", "## Test set: residual (prediction - truth) bias / std (n) by SNR (snrg)", "", table]
    if plot:
        lines += ["", f"![residuals]({Path(plot).name})", ""]
    report = atomic_write(out / "report.md", "\n".join(lines) + "\n")
    atomic_write(out / "metrics.json", json.dumps(metrics, indent=1, default=float))
    return report
