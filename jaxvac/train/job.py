"""The training job of ``jaxvac train``: catalogues -> cached normalised spectra -> networks ->
evaluation -> checkpoint, all from one config (SPEC.md "Training"; docs/training.md).

:func:`train_from_config` reads the training catalogues ([train.catalogs]: one per training set,
the sets trained), applies the curation cuts ([curation]), normalises and caches the spectra,
trains one network per label of those sets ([labels]: the paper's 23 by default; any list a config
gives) as one stack with :func:`jaxvac.train.fit` (then retrains the members of [curation]
magnitude_set without their outliers when [curation] says so) and the VMP network (when the
[vmp] rule's labels are trained), scores every label on held-out stars of its own training set, fits the error model of these networks on held-out residuals (the test catalogue,
else the validation stars; ``jaxvac.train.calibrate.heldout_error_rows``), records each label's
training range, and writes the checkpoint, metrics.json, report.md and residuals.png.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
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

    hidden: hidden layer widths of each label network (ReLU).
    vmp_hidden: hidden layer widths of the very-metal-poor network (input 3900-4400 A).
    max_bad_fraction: training/test spectra with more bad network-input pixels are left out.
    ood_components: K, principal axes of the training spectra's standardised flux kept in the
        checkpoint for the "unlike the training spectra" score (``jaxvac.kernels.ood``); 0: none.
    ood_floor: s_0 of that score, standardised units.
    ood_percentile: percent; the score's threshold is this percentile of the training spectra's.
    guard_labels: training set -> the labels whose estimates place a spectrum among that set's
        training stars (``jaxvac.train.guard``; flag bit 2 of the set's labels); {}: no guard.
    guard_neighbours: k; a spectrum with fewer than k of the set's training stars within the
        radius is flagged.
    guard_percentile: percent; the radius is this percentile of the training stars' own distances
        to their k-th nearest other training star (standardised estimates).
    guard_max_points: training stars kept per set (a random subset above it; the test costs this
        many distances per spectrum and set).
    """

    hidden: tuple[int, ...]
    vmp_hidden: tuple[int, ...]
    max_bad_fraction: float
    ood_components: int
    ood_floor: float
    ood_percentile: float
    guard_labels: Mapping[str, tuple[str, ...]]
    guard_neighbours: int
    guard_percentile: float
    guard_max_points: int


@dataclasses.dataclass
class RunResult:
    """What :func:`train_from_config` produced."""

    checkpoint: str
    report: str
    notes: list
    table: str
    metrics: dict
    warnings: list = dataclasses.field(default_factory=list)  # e.g. an evaluation that failed after training


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
    """Train the label networks and the VMP network as ``cfg`` says; evaluate; save a checkpoint.

    The labels are ``jaxvac.labels.LabelSchema.from_config(cfg)``: those of the sets named in
    [train.catalogs]; the checkpoint records them and ``jaxvac run`` writes exactly their columns.

    cfg: a loaded config (jaxvac.config.load_config). data_dir, out_dir override [train].
    on_stage(name, max_epochs, n_spectra): called when a training stage starts ("ensemble",
    "retrain", "vmp") with the number of spectra it trains on; on_epoch: after every epoch of every
    stage. progress: reader progress bar.
    Raises DatasetError (a JaxvacError naming the config key) before the first epoch when an input
    is missing or too small (docs/training.md "Before the first epoch"); the run folder is made
    only after these checks. A failed evaluation on the test catalogue does not raise: the
    checkpoint is written and the failure is in RunResult.warnings and report.md.
    Writes <out>/checkpoint/<step>/, <out>/report.md, <out>/residuals.png, <out>/metrics.json.
    """
    from jaxvac.train import checkpoint
    from jaxvac.config import section
    from jaxvac.train.dataset import CurationConfig, lgmwas_outliers, load_spectra
    from jaxvac.labels import LabelSchema
    from jaxvac.model import N_VMP_INPUT
    from jaxvac.preprocess import LAYOUT, mask_inputs, standardization_stats, standardize

    mcfg = section(cfg, "model", ModelConfig)
    tcfg = section(cfg, "train", TrainConfig)
    ccfg = section(cfg, "curation", CurationConfig)
    schema = LabelSchema.from_config(cfg)
    names = list(schema.names)
    vmp_rule = schema.vmp
    data = Path(data_dir or tcfg.data_dir).resolve()
    out = Path(out_dir or tcfg.out_dir).resolve()
    cache = Path(tcfg.cache_dir) if Path(tcfg.cache_dir).is_absolute() else out / tcfg.cache_dir
    notes: list[str] = []  # report.md "Curation and data notes"
    warnings: list[str] = []  # also notes; the command prints them as warnings

    # 1. before anything slow (docs/training.md "Before the first epoch"): every catalogue, label
    # column and spectrum file the run needs, and enough stars per network; out is made only after
    _check_augment_sets(tcfg, schema)
    paths, y, in_set = _training_rows(tcfg, ccfg, data, notes, schema)
    if tcfg.test_catalog:
        _check_test_catalog(tcfg, data)
    _check_counts(y, None, in_set, tcfg, schema)

    # 2. spectra (cached), usable rows, flux standardisation from the training stars
    spec = load_spectra(paths, cache, workers=tcfg.workers, progress=progress)
    usable = spec.usable(mcfg.max_bad_fraction) & np.array([bool(p) for p in paths])
    if (~usable).any():
        drop_notes = _drop_notes(spec, usable, y, in_set, len(paths), schema)
        notes += drop_notes
        warnings += [n.removeprefix("WARNING ") for n in drop_notes if n.startswith("WARNING ")]
    y, in_set, norm, good = y[usable], in_set[usable], spec.norm[usable], spec.good[usable]
    val_mask = split_validation(y, tcfg.val_fraction, tcfg.seed)
    _check_counts(y, val_mask, in_set, tcfg, schema)  # the exact split, still before the first epoch
    out.mkdir(parents=True, exist_ok=True)
    # pixels outside the input range (Layout.norm_flux_min/max, then max_abs_standardized) are
    # masked as kernels.network_input masks them in a run
    good = np.asarray(mask_inputs(norm, good))
    x_mean, x_std = (np.asarray(a, np.float32) for a in standardization_stats(norm, good))
    x_good = np.asarray(mask_inputs(norm, good, x_mean, x_std))
    x = np.asarray(standardize(norm, x_good, x_mean, x_std), np.float32)
    del norm, good

    # 3. the label networks; curation and retraining of the magnitude networks ([curation] magnitude_set)
    if on_stage:
        on_stage("ensemble", tcfg.max_epochs, len(x))
    augment = (spec.snrg[usable], x_std)  # used when [train] noise_augment
    groups = [lab.training_set for lab in schema.labels] if tcfg.set_batches else None  # [train] set_batches
    noisy_sets = set(tcfg.augment_sets) or set(schema.sets)  # [train] augment_sets: [] = every set
    fit_all = _fit("ensemble", x, y, hidden=tuple(mcfg.hidden), cfg=tcfg, val_mask=val_mask, on_epoch=on_epoch, augment=augment,
                   groups=groups, augment_groups=noisy_sets if groups else None)
    params, y_mean, y_std = fit_all.params, fit_all.y_mean, fit_all.y_std
    best_val, best_epoch = fit_all.best_val, fit_all.best_epoch
    n_train, n_val = fit_all.n_train.copy(), fit_all.n_val.copy()
    epochs = fit_all.epochs_run
    mags = np.array(schema.of_set(ccfg.magnitude_set), int)
    if (ccfg.binary_removal or ccfg.clip_sigma > 0) and mags.size:
        pred = predict_stack(params, x, y_mean, y_std, tcfg.eval_batch)
        drop_star, drop_band, cl_notes = lgmwas_outliers(y[:, mags], pred[:, mags], [names[i] for i in mags], ccfg)
        notes += cl_notes
        y_mag = y[:, mags].copy()
        y_mag[drop_star] = np.nan
        y_mag[drop_band] = np.nan
        if on_stage:
            on_stage("retrain", tcfg.max_epochs, len(x))
        sub = _fit("retrain", x, y_mag, hidden=tuple(mcfg.hidden), cfg=tcfg, val_mask=val_mask, on_epoch=on_epoch,
                   augment=augment if ccfg.magnitude_set in noisy_sets else None)
        params = _splice(params, sub.params, mags)
        y[:, mags] = y_mag
        y_mean[mags], y_std[mags] = sub.y_mean, sub.y_std
        best_val[mags], best_epoch[mags] = sub.best_val, sub.best_epoch
        n_train[mags], n_val[mags] = sub.n_train, sub.n_val
        epochs += sub.epochs_run

    # 4. the VMP network ([vmp]: stars of feh_label's set with feh_label <= train_feh_max, input 3900-4400 A)
    fit_vmp = None
    vmp_rows = vmp_val = np.zeros(0, bool)
    vmp_feh = np.zeros(0)
    if vmp_rule:
        feh = y[:, schema.index(vmp_rule.feh_label)]
        vmp_rows = np.isfinite(feh) & (feh <= vmp_rule.train_feh_max)
        if on_stage:
            on_stage("vmp", tcfg.max_epochs, int(vmp_rows.sum()))
        vmp_val = val_mask[vmp_rows]
        if not vmp_val.any() or vmp_val.all():
            vmp_val = np.arange(vmp_rows.sum()) % 5 == 0
        fit_vmp = _fit("vmp", x[vmp_rows, :N_VMP_INPUT], feh[vmp_rows, None], hidden=tuple(mcfg.vmp_hidden), cfg=tcfg,
                       val_mask=vmp_val, on_epoch=on_epoch,
                       augment=((augment[0][vmp_rows], x_std[:N_VMP_INPUT])
                                if schema.labels[schema.index(vmp_rule.feh_label)].training_set in noisy_sets else None))
        vmp_feh = feh[vmp_rows][~vmp_val]
    else:
        notes.append("no VMP network: [vmp] is disabled or its labels are not trained")

    # 5. evaluation on the test catalogue
    units = schema.units
    per_net = lambda v, vv: {n: vv(a) for n, a in zip(names, v)}  # noqa: E731
    metrics = {
        "epochs": int(epochs + (fit_vmp.epochs_run if fit_vmp else 0)),
        "n_train": per_net(n_train, int), "n_val": per_net(n_val, int),
        "best_val_loss": per_net(best_val, float), "best_epoch": per_net(best_epoch, int),
    }
    model_params = {"ensemble": params, "y_mean": np.asarray(y_mean, np.float32), "y_std": np.asarray(y_std, np.float32)}
    if fit_vmp:
        v = vmp_rule.label.name
        metrics["n_train"][v], metrics["n_val"][v] = int(fit_vmp.n_train[0]), int(fit_vmp.n_val[0])
        metrics["best_val_loss"][v], metrics["best_epoch"][v] = float(fit_vmp.best_val[0]), int(fit_vmp.best_epoch[0])
        model_params |= {"vmp": fit_vmp.params, "vmp_mean": np.float32(fit_vmp.y_mean[0]),
                         "vmp_std": np.float32(fit_vmp.y_std[0])}
    from jaxvac.run.uncertainties import ErrorsConfig

    ecfg = section(cfg, "errors", ErrorsConfig)
    table = ""
    plot = heldout = copies = None
    if tcfg.test_catalog:
        try:  # the networks are trained: a failure here must not lose them (docs/training.md)
            table, plot, test_rows, vmp_cmp, heldout, copies = _evaluate(
                model_params, x_mean, x_std, data / tcfg.test_catalog, data, cache, out, tcfg, mcfg, ecfg, schema,
                notes, progress)
            metrics["test"] = test_rows
            if vmp_cmp is not None:
                metrics["vmp_vs_pastel"] = vmp_cmp
            heldout_source = f"test catalogue {tcfg.test_catalog}"
        except Exception as e:  # noqa: BLE001 - any failure of the evaluation; Interrupted still stops
            table, plot, heldout, copies = "", None, None, None
            warnings.append(f"evaluation on [train] test_catalog {tcfg.test_catalog!r} failed "
                            f"({type(e).__name__}: {' '.join(str(e).split())}); the checkpoint is saved without "
                            f"test metrics and its error model comes from the validation stars; fix the test "
                            f"catalogue and rerun")
            notes.append(warnings[-1])
    validation, val_x = _validation_residuals(x, y, val_mask, spec.snrg[usable], params, y_mean, y_std, fit_vmp,
                                              vmp_rows, vmp_val, schema.index(vmp_rule.feh_label) if vmp_rule else -1,
                                              tcfg.eval_batch)
    if heldout is None:
        heldout, heldout_source = validation, "validation stars"
        m = len(names)

        def predict(xx):  # the label networks only: a copy's VMP column stays NaN
            return np.hstack([predict_stack(params, xx, y_mean, y_std, tcfg.eval_batch), np.full((len(xx), 1), np.nan)])

        v_truth = validation[0].copy()
        v_truth[:, m] = np.nan
        copies = _renoised_copies(val_x, v_truth, validation[2], predict, ecfg, x_std, tcfg.seed)

    # 6. the error model of these networks (held-out residuals) and their training ranges
    value_of, lacking = _value_labels(schema, ecfg)
    value2_of, lacking2 = _value_labels(schema, ecfg, "heldout_value2_label")
    notes += lacking + lacking2
    error_model, calibration = _error_model(_with_vmp_column(heldout, len(names)), heldout_source, validation,
                                            ecfg, cfg, tcfg, schema, y_std,
                                            copies=None if copies is None else
                                            (*_with_vmp_column(copies[:3], len(names)), copies[3]), value_of=value_of,
                                            value2_of=value2_of)
    metrics["error_calibration"] = calibration
    loose = _loose_errors(error_model["rows"], ecfg.heldout_warn_rel, heldout_source)
    if loose:
        warnings.append(loose)
        notes.append(loose)
    ranges = _training_ranges(y, ~val_mask, vmp_feh, tcfg.range_percentile, schema)
    ood = None
    if mcfg.ood_components > 0:  # the "unlike the training spectra" basis and threshold
        ood, model_params["ood"] = _ood_model(x, x_good, x_std, spec.snrg[usable], mcfg)
        if tcfg.test_catalog and "test" in metrics:
            ood["test_flagged_fraction"] = _ood_flagged(model_params["ood"], ood, x_mean, x_std,
                                                        data / tcfg.test_catalog, data, cache, tcfg, mcfg, progress)
        metrics["ood"] = ood
    guard = {}
    if mcfg.guard_labels:  # where each set's training stars are sparse (jaxvac.train.guard)
        guard, model_params["guard"], guard_notes = _guard_model(x, y, in_set, val_mask, params, y_mean, y_std, heldout,
                                                                 schema, mcfg, tcfg)
        notes += guard_notes
        metrics["guard"] = guard

    # 7. checkpoint + report
    meta = {
        **schema.to_metadata(),
        "model": {"hidden": list(mcfg.hidden), "vmp_hidden": list(mcfg.vmp_hidden), "n_input": x.shape[1],
                  "n_vmp_input": N_VMP_INPUT, "activation": "relu"},
        "standardization": {
            "x_mean": x_mean, "x_std": x_std,
            **{k: model_params[k] for k in ("y_mean", "y_std", "vmp_mean", "vmp_std") if k in model_params},
        },
        "config": {k: v for k, v in cfg.items() if k in ("model", "train", "curation", "labels", "vmp", "_source")},
        "curation_notes": notes,
        "metrics": metrics,
        "error_model": error_model,
        "training_ranges": ranges,
        **({"ood": ood} if ood else {}),
        **({"guard": guard} if guard else {}),
    }
    ck = checkpoint.save(out / "checkpoint", model_params, meta, layout=LAYOUT)  # load_spectra normalised with it
    report = _write_report(out, ck, metrics, notes, table, plot, error_model, ranges, ood, guard)
    return RunResult(checkpoint=str(ck), report=str(report), notes=notes, table=table, metrics=metrics,
                     warnings=warnings)


def _with_vmp_column(heldout, m: int):
    """(truth, pred, snr) with a NaN last column added when the test catalogue's scores have only
    the m label columns (a model without a VMP network): the layout of :func:`_validation_residuals`."""
    truth, pred, snr = heldout
    if truth.shape[1] == m:
        nan = np.full((len(truth), 1), np.nan)
        return np.hstack([truth, nan]), np.hstack([pred, nan]), snr
    return heldout


def _fit(stage: str, *args, **kwargs):
    """:func:`jaxvac.train.fit.fit`, its data errors (a member left without stars after the
    LGMWAS curation, say) as a DatasetError naming the stage."""
    from jaxvac.train.dataset import DatasetError

    try:
        return fit(*args, **kwargs)
    except ValueError as e:
        raise DatasetError(f"training stage {stage!r}: {e}") from e


def _found(paths: np.ndarray) -> np.ndarray:
    """(N,) bool: the row's spectrum file exists (a stat per row; no file is opened)."""
    import os

    return np.array([bool(p) and os.path.isfile(p) for p in paths], bool)


def _no_spectra(key: str, cat: dict, cat_path: Path, data: Path, paths: np.ndarray) -> str:
    """The message for a catalogue none of whose rows finds a spectrum file."""
    cols = {k.lower(): k for k in cat}
    if "path" not in cols and "obsid" in cols:
        return (f"{key}: no spectrum found for {len(paths)} obsids of {str(cat_path)!r}; expected files named "
                f"<obsid>.fits or <obsid>.fits.gz under {str(data)!r} ([train] data_dir or --data); with files "
                f"named as LAMOST names them (spec-*.fits.gz) build an index with `jaxvac index` and use "
                f"`jaxvac trainset` to write a training catalogue with a 'path' column.")
    first = next((str(p) for p in paths if p), "")
    return (f"{key}: none of the {len(paths)} spectrum files in column 'path' of {str(cat_path)!r} exists "
            f"(first: {first!r}); relative paths are taken under [train] data_dir ({str(data)!r}): give the "
            f"survey directory with --data or fix the paths.")


def _training_rows(tcfg, ccfg, data: Path, notes: list, schema) -> tuple[list, np.ndarray, np.ndarray]:
    """Read and check the training catalogues: (paths, y (N, M) labels of ``schema`` after the
    curation cuts, in_set (N, n_sets) bool), one row per spectrum file. Raises DatasetError naming the
    ``[train.catalogs]`` key for an empty or absent key, a missing catalogue, an absent label column,
    or a catalogue none of whose rows finds a spectrum file; rows without a file are noted."""
    from jaxvac.io.tables import read_table
    from jaxvac.train.dataset import DatasetError, apply_cuts, catalog_paths

    rows: dict[str, int] = {}
    y_rows: list[np.ndarray] = []
    set_rows: list[set] = []
    names = list(schema.names)
    for set_name in schema.sets:
        key = f"[train.catalogs] {set_name}"
        set_labels = [names[k] for k in schema.of_set(set_name)]
        rel = tcfg.catalogs.get(set_name)
        if not rel:
            raise DatasetError(
                f"{key} is {'empty' if rel == '' else 'absent'}; set {key} = \"<table under [train] data_dir>\" with a "
                f"'path' or 'obsid' column and the label columns {set_labels} (NaN where unknown), or leave {set_name} "
                f"out of [train.catalogs] (a config that sets [train.catalogs] lists every set it trains).")
        cat_path = data / rel
        if not cat_path.is_file():
            raise DatasetError(f"{key} = {rel!r}: training catalogue {str(cat_path)!r} not found; check [train] "
                               f"catalogs and data_dir: set {key} to a FITS, CSV or Parquet table relative to "
                               f"[train] data_dir ({str(data)!r}), or give --data, or leave {set_name} out of "
                               f"[train.catalogs].")
        cat = read_table(cat_path, hint=f"set {key}")
        missing = [lab for lab in set_labels if lab not in cat]
        if missing:
            raise DatasetError(f"{key}: training catalogue {str(cat_path)!r} lacks label column(s) {missing}; add them "
                               f"(NaN where unknown) or rename yours to these names (columns there: {sorted(cat)[:20]}).")
        keep, cut_notes = apply_cuts(cat, set_name, set_labels, ccfg.cuts if ccfg.apply_cuts else ())
        notes += cut_notes
        paths = catalog_paths(cat, data, where=f"{key} ({str(cat_path)!r})")
        found = _found(paths)
        if not found.any():
            raise DatasetError(_no_spectra(key, cat, cat_path, data, paths))
        if not found.all():
            notes.append(f"{set_name}: no spectrum file for {int((~found).sum())} of {len(paths)} catalogue rows "
                         f"(left out)")
        for i in np.flatnonzero(found):
            p = paths[i]
            if p not in rows:
                rows[p] = len(rows)
                y_rows.append(np.full(len(names), np.nan))
                set_rows.append(set())
            set_rows[rows[p]].add(set_name)
            y = y_rows[rows[p]]
            for lab in set_labels:
                v = float(cat[lab][i])
                if keep[lab][i] and np.isfinite(v):
                    y[names.index(lab)] = v
    sets = schema.sets
    in_set = np.array([[s in r for s in sets] for r in set_rows], bool).reshape(len(rows), len(sets))
    return list(rows), np.array(y_rows).reshape(len(rows), len(names)), in_set


def _check_test_catalog(tcfg, data: Path) -> None:
    """The test catalogue exists and finds at least one spectrum file, else DatasetError naming
    ``[train] test_catalog``."""
    from jaxvac.io.tables import read_table
    from jaxvac.train.dataset import DatasetError, catalog_paths

    key = "[train] test_catalog"
    path = data / tcfg.test_catalog
    if not path.is_file():
        raise DatasetError(f"{key} = {tcfg.test_catalog!r}: test catalogue {str(path)!r} not found; set {key} to a "
                           f"table relative to [train] data_dir ({str(data)!r}), or to \"\" to skip the evaluation "
                           f"(the error model then comes from the validation stars).")
    cat = read_table(path, hint=f"set {key}")
    paths = catalog_paths(cat, data, where=f"{key} ({str(path)!r})")
    if not _found(paths).any():
        raise DatasetError(_no_spectra(key, cat, path, data, paths))


def _check_augment_sets(tcfg, schema) -> None:
    """[train] augment_sets names trained sets, and only some of them with set_batches on."""
    from jaxvac.config import ConfigError

    unknown = sorted(set(tcfg.augment_sets) - set(schema.sets))
    if unknown:
        raise ConfigError(f"[train] augment_sets names {unknown}, not trained sets; the sets are {list(schema.sets)} "
                          f"([train.catalogs]).")
    if tcfg.noise_augment and tcfg.augment_sets and set(tcfg.augment_sets) != set(schema.sets) and not tcfg.set_batches:
        raise ConfigError(f"[train] augment_sets = {list(tcfg.augment_sets)} re-noises some sets only, which needs "
                          f"[train] set_batches = true (a stacked batch is shared by every set's networks); set it, "
                          f"or augment_sets = [] for every set.")


def _check_counts(y: np.ndarray, val_mask: np.ndarray | None, in_set: np.ndarray, tcfg, schema) -> None:
    """Every network can be trained: >= 2 training stars with distinct labels and >= 1 validation
    star per label, >= 4 VMP training stars (feh_label <= train_feh_max of [vmp]). With
    ``val_mask`` None (before the spectra are read) only what no split can fix: >= 3 stars per label."""
    from jaxvac.train.dataset import DatasetError

    bad: dict[str, list[str]] = {}
    for j, lab in enumerate(schema.labels):
        v = y[:, j]
        known = np.isfinite(v)
        if val_mask is None:
            ok = known.sum() >= 3
            why = f"{lab.name}: {int(known.sum())} stars"
        else:
            tr, va = known & ~val_mask, known & val_mask
            ok = tr.sum() >= 2 and va.sum() >= 1 and np.std(v[tr]) > 0
            why = f"{lab.name}: {int(tr.sum())} train / {int(va.sum())} val"
        if not ok:
            bad.setdefault(lab.training_set, []).append(why)
    if bad:
        set_name, whys = next(iter(bad.items()))
        more = f" (and in {sorted(bad)[1:]})" if len(bad) > 1 else ""
        raise DatasetError(
            f"[train.catalogs] {set_name}: too few usable stars for {len(whys)} network(s): {'; '.join(whys[:4])}"
            f"{'; ...' if len(whys) > 4 else ''}{more}; each network needs >= 2 training stars with distinct labels "
            f"and >= 1 validation star (a [train] val_fraction = {tcfg.val_fraction} share): add stars with these "
            f"labels and spectra, or raise [train] val_fraction.")
    v = schema.vmp
    if v is None:
        return
    feh = y[:, schema.index(v.feh_label)]
    n_vmp = int((np.isfinite(feh) & (feh <= v.train_feh_max)).sum())
    if n_vmp < 4:
        raise DatasetError(f"[train.catalogs] {v.label.training_set}: only {n_vmp} stars with a spectrum have "
                           f"{v.feh_label} <= {v.train_feh_max}; the VMP network needs at least 4: add metal-poor "
                           f"stars to it, or set [vmp] enabled = false to train no VMP network.")


# Drops gathering in label space (docs/training.md "Before the first epoch"): with at least
# _CLUSTER_MIN_DROPS drops among a set's stars that have the label, a warning when more than
# _CLUSTER_SHARE of them fall in one decile of that label (deciles over the set's stars).
_CLUSTER_AXES = ("Teff_PASTEL", "feh_PASTEL", "logg_APOGEE", "feh_APOGEE", "a_gg")
_CLUSTER_MIN_DROPS = 8  # uniform drops put > 50 % in one of 10 deciles with p < 0.01 from 8 on
_CLUSTER_SHARE = 0.5


def _status_names(status: int) -> str:
    """'continuum_low+window2_few_good' for a pre-processing status word (kernel bit names)."""
    from jaxvac.kernels.normalize import STATUS_INPUT_MASKED, status_bits
    from jaxvac.preprocess import LAYOUT

    names = [n for n, b in status_bits(LAYOUT).items() if status & b and b != STATUS_INPUT_MASKED]
    return "+".join(names) or f"status {status}"


def _drop_notes(spec, usable: np.ndarray, y: np.ndarray, in_set: np.ndarray, n: int, schema) -> list[str]:
    """Notes on the training spectra left out: reasons by name, counts per training set, and a
    warning per set and label axis where the drops gather in one decile (axes: the set's labels
    among _CLUSTER_AXES, else its first two labels)."""

    why = []
    for i in range(n):
        if usable[i]:
            why.append("")
        elif spec.reasons[i]:
            why.append(str(spec.reasons[i]))
        elif spec.status[i] > 0 and (spec.status[i] & ~_input_masked_bit()):
            why.append(f"pre-processing {_status_names(int(spec.status[i]))}")
        else:
            why.append("too many bad pixels")
    drop = ~usable
    notes = []
    for s, set_name in enumerate(schema.sets):
        d = drop & in_set[:, s]
        if not d.any():
            continue
        counts: dict[str, int] = {}
        for i in np.flatnonzero(d):
            counts[why[i]] = counts.get(why[i], 0) + 1
        notes.append(f"{set_name}: training spectra left out: {int(d.sum())} of {int(in_set[:, s].sum())} ("
                     + "; ".join(f"{k}x {r}" for r, k in sorted(counts.items(), key=lambda t: -t[1])[:5]) + ")")
        members = schema.of_set(set_name)
        axes = [j for j in members if schema.names[j] in _CLUSTER_AXES] or members[:2]
        for j in axes:
            name = schema.names[j]
            has = in_set[:, s] & np.isfinite(y[:, j])
            dv = y[d & has, j]
            if dv.size < _CLUSTER_MIN_DROPS:
                continue
            edges = np.percentile(y[has, j], np.linspace(0, 100, 11))
            dec = np.clip(np.searchsorted(edges, dv, side="right") - 1, 0, 9)
            k = np.bincount(dec, minlength=10)
            top = int(k.argmax())
            if k[top] > _CLUSTER_SHARE * dv.size:
                notes.append(f"WARNING {set_name}: {int(k[top])} of the {dv.size} left-out spectra have {name} in "
                             f"[{edges[top]:.4g}, {edges[top + 1]:.4g}] (one decile of the set): a hole in the "
                             f"training range; check the pre-processing of such stars")
    return notes


def _input_masked_bit() -> int:
    from jaxvac.kernels.normalize import STATUS_INPUT_MASKED

    return int(STATUS_INPUT_MASKED)


def _evaluate(model_params, x_mean, x_std, test_path, data, cache, out, tcfg, mcfg, ecfg, schema, notes, progress):
    """Scores on the test catalogue: (markdown table, plot path, rows, VMP comparison or None,
    held-out (truth, pred, snr) with columns schema.with_vmp, their re-noised copies or None
    (:func:`_renoised_copies`))."""
    from jaxvac.train import evaluate
    from jaxvac.io.tables import read_table
    from jaxvac.train.dataset import catalog_paths, load_spectra
    from jaxvac.model import predict_standardized
    from jaxvac.preprocess import mask_inputs, standardize

    cat = read_table(test_path, hint=_CATALOG_HINT)
    paths = catalog_paths(cat, data, where=str(test_path))
    spec = load_spectra(list(paths), cache, workers=tcfg.workers, progress=progress)
    usable = spec.usable(mcfg.max_bad_fraction) & (paths != "")
    if (~usable).any():
        notes.append(f"test spectra left out: {int((~usable).sum())} of {len(paths)} (unreadable or failed pre-processing)")
    norm, good = spec.norm[usable], spec.good[usable]
    x = np.asarray(standardize(norm, mask_inputs(norm, good, x_mean, x_std), x_mean, x_std), np.float32)
    labels = schema.with_vmp
    names = [lab.name for lab in labels]
    rule = schema.vmp_indices() if "vmp" in model_params else None
    truth = np.stack([np.asarray(cat[n], float) if n in cat else np.full(len(paths), np.nan) for n in names], 1)
    # A test catalogue may say which training set's pool each star belongs to (in_pastel, ...):
    # each label is then scored on its own set's kind of star, as the paper's test sets were.
    sets = [lab.training_set.lower() for lab in labels]
    for k, s in enumerate(sets):
        if f"in_{s}" in cat:
            truth[~np.asarray(cat[f"in_{s}"], bool), k] = np.nan
    truth = truth[usable]
    snr = np.asarray(cat["snrg"], float)[usable] if "snrg" in cat else spec.snrg[usable].astype(float)
    b = tcfg.eval_batch

    def predict(xx):  # (n, D) -> (n, K): the labels, then feh_VMP; every call padded to b rows (one compile)
        ys, vs = [], []
        for s in range(0, len(xx), b):
            xb = xx[s : s + b]
            pad = b - len(xb)
            yb, vb = predict_standardized(model_params, jnp.asarray(np.pad(xb, ((0, pad), (0, 0)))), vmp_rule=rule)
            ys.append(np.asarray(yb)[: b - pad])
            vs.append(np.asarray(vb)[: b - pad])
        y_ = np.concatenate(ys).astype(float)
        return np.concatenate([y_, np.concatenate(vs)[:, None].astype(float)], 1) if schema.vmp else y_

    pred = predict(x)
    copies = _renoised_copies(x, truth, snr, predict, ecfg, x_std, tcfg.seed)
    rows = evaluate.residual_stats(truth, pred, snr, names, tcfg.snr_bins)
    bins = ["all"] + evaluate.snr_bin_names(tcfg.snr_bins)
    table = evaluate.markdown_table(rows, schema.units, bins)
    vmp_rows = None
    if schema.vmp:  # feh_VMP against its feh label on the same candidates, against the same true [Fe/H]
        v, k = schema.vmp, names.index(schema.vmp.feh_label)
        true_feh = np.where(np.isfinite(truth[:, -1]), truth[:, -1], truth[:, k])
        vmp_rows = evaluate.vmp_comparison(true_feh, pred[:, -1], pred[:, k], snr, tcfg.snr_bins)
        table += (f"\n### {v.label.name} and {v.feh_label} on the VMP candidates (residual = estimate - true [Fe/H])\n\n"
                  + evaluate.vmp_markdown(vmp_rows))
    plot = evaluate.plot_residuals(truth, pred, names, schema.units, out / "residuals.png")
    return table, plot, rows, vmp_rows, (truth, pred, snr), copies


def _validation_residuals(x, y, val_mask, snrg, params, y_mean, y_std, fit_vmp, vmp_rows, vmp_val, feh_col, batch):
    """(truth, pred, snr) of the validation stars: (N, M + 1) in the order of the labels, then the
    VMP network's [Fe/H] (NaN where a star has no such label or is not a VMP validation star; the
    last column all NaN without a VMP network, fit_vmp None), snr (N,). ``vmp_rows`` (N_all,):
    the VMP network's stars, ``vmp_val`` its validation ones among them; their truth is y[:, feh_col]."""
    from jaxvac.model import N_VMP_INPUT

    vmp_idx = np.flatnonzero(vmp_rows)[vmp_val] if fit_vmp is not None else np.zeros(0, int)
    rows = np.union1d(np.flatnonzero(val_mask), vmp_idx)
    m = y.shape[1]
    truth = np.full((rows.size, m + 1), np.nan)
    pred = np.full((rows.size, m + 1), np.nan)
    in_val = val_mask[rows]
    truth[in_val, :m] = y[rows[in_val]]
    pred[in_val, :m] = predict_stack(params, x[rows[in_val]], y_mean, y_std, batch)
    if fit_vmp is not None:
        at = np.searchsorted(rows, vmp_idx)
        truth[at, m] = y[vmp_idx, feh_col]
        pred[at, m] = predict_stack(fit_vmp.params, x[vmp_idx, :N_VMP_INPUT], fit_vmp.y_mean, fit_vmp.y_std, batch)[:, 0]
    return (truth, pred, np.asarray(snrg, float)[rows]), x[rows]


def _renoised_copies(x, truth, snr, predict, ecfg, x_std, seed):
    """Re-noised copies of held-out stars for the error fit where a label has few at low snrg.

    x: (N, D) standardised flux of the held-out stars; truth: (N, K) their labels (NaN where
    unscored); snr: (N,); predict: (n, D) -> (n, K) in truth's columns. With (lo, hi, top) =
    ``ecfg.heldout_renoise``: every label with fewer than ``ecfg.heldout_renoise_min`` stars at
    lo <= snrg < hi takes ``ecfg.heldout_renoise_copies`` copies of each of its stars at
    hi <= snrg < top, re-noised (:func:`jaxvac.train.fit.renoise_to`) to a snrg drawn
    log-uniformly in [lo, hi): the stars nearest above the sparse bin stand for its population.
    Returns (truth, pred, snr, source) of the copies (truth NaN for labels that need none; source:
    the row each copies), or None when no label needs any.
    """
    import jax

    from jaxvac.train.fit import renoise_to

    lo, hi, top = (float(v) for v in ecfg.heldout_renoise)
    have = np.isfinite(truth)
    need = (have & ((snr >= lo) & (snr < hi))[:, None]).sum(0) < int(ecfg.heldout_renoise_min)
    src = np.flatnonzero((snr >= hi) & (snr < top) & (have & need[None, :]).any(1))
    if not need.any() or src.size == 0 or int(ecfg.heldout_renoise_copies) == 0:
        return None
    src = np.repeat(src, int(ecfg.heldout_renoise_copies))
    rng = np.random.default_rng([int(seed), 5])
    target = np.exp(rng.uniform(np.log(lo), np.log(hi), src.size))
    xr = np.asarray(renoise_to(jax.random.PRNGKey(int(rng.integers(2**31))), jnp.asarray(x[src]),
                               jnp.asarray(snr[src], jnp.float32), jnp.asarray(target, jnp.float32),
                               jnp.asarray(x_std, jnp.float32)))
    t = np.where(need[None, :], truth[src], np.nan)
    return t, predict(xr), target, src


def _value_labels(schema, ecfg, key: str = "heldout_value_label") -> tuple[dict[str, str], list[str]]:
    """({label: the label whose estimate bins its value factors}, notes) from ``[errors] <key>``
    (set -> label; heldout_value_label, or heldout_value2_label for the second factors): every
    label of a listed set but that label itself, unless the set maps to "" or to a label the
    model lacks (then a note says so)."""
    out, notes = {}, []
    for set_name, by in getattr(ecfg, key).items():
        members = [lab.name for lab in schema.labels if lab.training_set == set_name]
        if not by or not members:
            continue
        if by not in schema.names:
            what = ("value factors stay on their own estimates" if key == "heldout_value_label"
                    else "labels get no second value factors")
            notes.append(f"[errors] {key}: {set_name}'s {what}: {by} is not a label of this model")
            continue
        out |= {m: by for m in members if m != by}
    return out, notes


def _error_model(heldout, source: str, validation, ecfg, cfg, tcfg, schema, y_std, copies=None,
                 value_of=None, value2_of=None) -> tuple[dict, list[dict]]:
    """The checkpoint's error model from held-out residuals, and its 2-fold cross-check.

    heldout, validation: (truth, pred, snr) with the columns of ``schema.names`` then the VMP
    network's [Fe/H] (NaN without one). Rows: :func:`jaxvac.train.calibrate.heldout_error_rows`
    on all held-out stars; a label without a row there (a label the test catalogue lacks) takes
    the row fitted on the validation stars, then the config's ([errors.coefficients], Table 2 for
    the paper's labels), then a constant, the label's scatter over its training stars (y_std: the
    error of a network that learnt nothing), so every label of the model has a row. Cross-check:
    the held-out stars are split in two halves (seed ``[train] seed``); each half's Err comes from
    rows fitted on the other half, and std((pred - truth) / Err) is tabulated per label and
    ``[train] error_check_bins`` snrg bin (:func:`jaxvac.train.evaluate.error_calibration`), so the
    table is not scored on the stars its model was fitted to. copies: (truth, pred, snr, source) of
    re-noised copies of held-out stars (:func:`_renoised_copies`) or None: they join the fits (a
    copy in the half of the star it copies) but are never scored. With ``[errors]
    heldout_vmp_validation`` the VMP network's validation stars (validation's last column) join
    every fit of the VMP label likewise, when the held-out stars are a test catalogue's. value_of: label -> the label
    whose estimate bins its value factors (:func:`_value_labels`; default each its own); value2_of: label -> the label
    whose estimate bins its second value factors (none by default).
    """
    from jaxvac.run.uncertainties import ErrorModel, vmp_error
    from jaxvac.train import evaluate
    from jaxvac.train.calibrate import heldout_error_rows

    names = list(schema.names)
    vmp_name = schema.vmp.label.name if schema.vmp else None
    cols = names + [vmp_name or "_no_vmp"]
    truth, pred, snr = heldout
    resid = pred - truth
    config_model = ErrorModel.from_config(cfg, names, vmp_name, partial=True)  # the rows the config has
    fitted = names + ([vmp_name] if vmp_name else [])  # columns of heldout/validation with a network
    value_of = value_of or {}
    vcol = [fitted.index(value_of.get(n, n)) for n in fitted]  # the column whose estimate bins each label's factors
    value2_of = value2_of or {}
    v2col = {n: fitted.index(by) for n, by in value2_of.items()}  # ... and its second factors

    def fit_rows(f_snr, f_resid, f_pred, **kw):
        return heldout_error_rows(f_snr, {n: f_resid[:, k] for k, n in enumerate(fitted)}, ecfg,
                                  values={n: f_pred[:, vcol[k]] for k, n in enumerate(fitted)}, value_labels=value_of,
                                  values2={n: f_pred[:, c] for n, c in v2col.items()}, value2_labels=value2_of, **kw)

    val_rows = {}  # when heldout is the validation stars, their rows are the held-out ones already
    if validation is not heldout:
        val_truth, val_pred, val_snr = validation
        val_rows = fit_rows(val_snr, val_pred - val_truth, val_pred)

    if copies is not None:
        c_truth, c_pred, c_snr, c_src = copies
        c_resid = c_pred - c_truth
    vmp_val = None  # the VMP network's own validation stars: they join its label's fits, never the check
    if vmp_name and ecfg.heldout_vmp_validation and validation is not heldout:
        v_truth, v_pred, v_snr = validation
        keep = np.isfinite(v_pred[:, -1] - v_truth[:, -1])
        if keep.any():
            v_resid = np.full((int(keep.sum()), resid.shape[1]), np.nan)
            v_resid[:, -1] = (v_pred - v_truth)[keep, -1]
            vmp_val = (v_snr[keep], v_resid, v_pred[keep])

    def model_of(sel):
        # (snr, resid, pred, weight) of every row the fit takes; weight: the row's share of a star
        # (a star's copies count as one star)
        parts = [(snr[sel], resid[sel], pred[sel], np.ones(int(sel.sum())))]
        if copies is not None:
            take = sel[c_src]
            parts.append((c_snr[take], c_resid[take], c_pred[take],
                          np.full(int(take.sum()), 1.0 / max(int(ecfg.heldout_renoise_copies), 1))))
        if vmp_val is not None:
            parts.append((*vmp_val, np.ones(vmp_val[0].size)))
        f_snr, f_resid, f_pred, f_w = (np.concatenate(c) for c in zip(*parts))
        rows = fit_rows(f_snr, f_resid, f_pred, weights=f_w)
        if vmp_val is not None and vmp_name in rows:
            rows[vmp_name]["status"] += f"; with the VMP network's {vmp_val[0].size} validation stars"
        for k, n in enumerate(names):
            if n in rows:
                continue
            if n in val_rows:
                rows[n] = {**val_rows[n], "status": f"{val_rows[n]['status']}, validation stars (not in the {source})"}
            elif n not in config_model.names:
                rows[n] = {"a": float(y_std[k]), "b": 0.0, "c": 0.0, "sigma_m": 0.0, "scale": 1.0, "n": 0,
                           "status": "constant: no held-out residuals; the label's scatter over its training stars"}
        vmp = resid[sel, -1][np.isfinite(resid[sel, -1])]
        vmp_sigma = float(np.std(vmp, ddof=1)) if vmp.size >= 2 else config_model.feh_vmp_sigma
        return rows, vmp_sigma, ErrorModel.from_rows(rows, vmp_sigma, "held-out fit", fallback=config_model, names=names,
                                                     vmp=vmp_name)

    rows, vmp_sigma, model = model_of(np.ones(len(snr), bool))
    half = np.random.default_rng([tcfg.seed, 3]).random(len(snr)) < 0.5
    err = np.full(resid.shape, np.nan)
    for fit_on in (half, ~half):
        _, _, m = model_of(fit_on)
        err[~fit_on, :-1] = m.sigma(snr[~fit_on], names, pred[~fit_on, :-1])
        if vmp_name:
            err[~fit_on, -1] = vmp_error(pred[~fit_on, -1], snr[~fit_on], m)
    keep = slice(None) if schema.vmp else slice(None, -1)
    calibration = evaluate.error_calibration(resid[:, keep], err[:, keep], snr, cols[keep], tcfg.error_check_bins)
    record = {
        "kind": "checkpoint",
        "source": source,
        "form": "Err = sqrt((scale * (a + c / snrg**b))**2 + sigma_m**2) * value_factors[bin of the estimate, or of "
                "value_label's; the list of snrg's range with value_snr_edges] * value2_factors[bin of value2_label's "
                "estimate] "
                "* snr_factors(snrg, interpolated in log snrg between snr_knots)",
        "rows": rows,
        "feh_vmp_sigma": vmp_sigma,
        "fallback": "rows missing here are the config's [errors.coefficients] (Table 2)",
        "settings": {"lowest_snrg": float(ecfg.snr_bin_edges[0]), "max_bins": ecfg.heldout_bins,
                     "min_per_bin": ecfg.min_pairs_per_bin, "scatter": ecfg.scatter,
                     "renoise": [float(v) for v in ecfg.heldout_renoise], "renoise_min": int(ecfg.heldout_renoise_min),
                     "renoise_copies": int(ecfg.heldout_renoise_copies), "value_bins": int(ecfg.heldout_value_bins),
                     "value_label": dict(ecfg.heldout_value_label),
                     "value2_label": dict(ecfg.heldout_value2_label),
                     "value2_quantiles": [float(q) for q in ecfg.heldout_value2_quantiles],
                     "snr_factors": bool(ecfg.heldout_snr_factors), "snr_factors_p": float(ecfg.heldout_snr_factors_p),
                     "vmp_validation": bool(ecfg.heldout_vmp_validation)},
        "renoised_copies": ({n: int(np.isfinite(c_resid[:, k]).sum()) for k, n in enumerate(fitted)
                             if np.isfinite(c_resid[:, k]).any()} if copies is not None else {}),
        "digest": model.digest(),
    }
    return record, calibration


def _ood_model(x: np.ndarray, x_good: np.ndarray, x_std: np.ndarray, snrg: np.ndarray, mcfg: ModelConfig) -> tuple[dict, dict]:
    """The "unlike the training spectra" model: the K = ``ood_components`` leading principal axes
    of the training spectra's standardised flux x (about the training mean, which is x = 0: no
    centring), and the threshold, the ``ood_percentile``-th percentile of the training spectra's
    own scores (``jaxvac.kernels.ood.pca_residual_score``). Returns (metadata, params {"basis",
    "floor"})."""
    import jax.numpy as jnp

    from jaxvac.kernels.ood import pca_residual_score

    k = int(mcfg.ood_components)
    xtx = np.zeros((x.shape[1], x.shape[1]))
    for s in range(0, len(x), 4096):  # X^T X in float64 pieces: a (D, D) matrix, whatever N
        xb = x[s : s + 4096].astype(np.float64)
        xtx += xb.T @ xb
    _, vecs = np.linalg.eigh(xtx)  # ascending eigenvalues
    basis = np.ascontiguousarray(vecs[:, ::-1][:, :k].T, dtype=np.float32)
    params = {"basis": basis, "floor": np.float32(mcfg.ood_floor)}
    scores = np.concatenate([
        np.asarray(pca_residual_score(jnp.asarray(x[s : s + 4096]), jnp.asarray(x_good[s : s + 4096]), basis,
                                      jnp.asarray(x_std), jnp.asarray(snrg[s : s + 4096]), params["floor"]))
        for s in range(0, len(x), 4096)])
    ok = np.isfinite(scores)
    threshold = float(np.percentile(scores[ok], mcfg.ood_percentile)) if ok.any() else float("inf")
    meta = {
        "score": "mean over input pixels of r**2 / (floor**2 + 1 / (snrg * x_std)**2), r = x - V^T V x "
                 "(jaxvac.kernels.ood.pca_residual_score)",
        "components": k, "floor": float(mcfg.ood_floor), "percentile": float(mcfg.ood_percentile),
        "threshold": threshold, "train_median": float(np.median(scores[ok])) if ok.any() else float("nan"),
    }
    return meta, params


def _guard_model(x, y, in_set, val_mask, params, y_mean, y_std, heldout, schema, mcfg, tcfg) -> tuple[dict, dict, list]:
    """The sparseness guard of each set (``jaxvac.train.guard.fit_guard``) from these networks'
    estimates of the set's training stars (validation stars excluded) that trained its guard labels
    (a finite curated label for each of the set's own guard labels; without one, for any label),
    and per set how it flags the held-out stars with a finite label of the set
    (``test_flagged_fraction``) and the 1 % of them worst estimated (largest |residual| / training
    std over the set's labels: ``worst_flagged_fraction``). Returns (metadata, params, notes)."""
    from jaxvac.kernels.neighbours import sparse_rows
    from jaxvac.train.guard import fit_guard, guard_arrays

    def trained(s, name):  # the set's training stars that trained its guard labels (all of the set's own ones)
        own = [k for k in schema.of_set(name) if schema.names[k] in mcfg.guard_labels.get(name, ())]
        have = np.isfinite(y[:, own]).all(axis=1) if own else np.isfinite(y[:, schema.of_set(name)]).any(axis=1)
        return in_set[:, s] & ~val_mask & have

    members = np.stack([trained(s, name) for s, name in enumerate(schema.sets)], axis=1)
    rows = members.any(axis=1)
    estimates = np.full(y.shape, np.nan, np.float32)
    estimates[rows] = predict_stack(params, x[rows], y_mean, y_std, tcfg.eval_batch)
    meta, points, notes = fit_guard(estimates, members, schema, mcfg, tcfg.seed)
    if meta and heldout is not None:
        truth, pred, _ = heldout
        m = len(schema.names)
        sparse = {k: np.asarray(v) for k, v in sparse_rows(jnp.asarray(pred[:, :m], jnp.float32),
                                                            guard_arrays(meta, points)).items()}
        for name, flagged in sparse.items():
            cols = schema.of_set(name)
            dev = np.abs(pred[:, cols] - truth[:, cols]) / np.asarray(y_std, np.float64)[cols]
            test = np.isfinite(dev).any(axis=1)
            if test.sum() >= 100:
                worst = np.nanmax(np.where(test[:, None], dev, 0.0), axis=1)
                worst = test & (worst >= np.percentile(worst[test], 99))
                meta[name] |= {"n_test": int(test.sum()), "test_flagged_fraction": float(flagged[test].mean()),
                               "worst_flagged_fraction": float(flagged[worst].mean())}
    return meta, points, notes


def _ood_flagged(params, meta, x_mean, x_std, test_path, data, cache, tcfg, mcfg, progress) -> float:
    """Fraction of the usable test spectra with snrg > 10 whose score exceeds the threshold."""
    import jax.numpy as jnp

    from jaxvac.io.tables import read_table
    from jaxvac.kernels.ood import pca_residual_score
    from jaxvac.preprocess import mask_inputs, standardize
    from jaxvac.train.dataset import catalog_paths, load_spectra

    cat = read_table(test_path, hint=_CATALOG_HINT)
    paths = catalog_paths(cat, data, where=str(test_path))
    spec = load_spectra(list(paths), cache, workers=tcfg.workers, progress=progress)  # cached by _evaluate
    use = spec.usable(mcfg.max_bad_fraction) & (paths != "") & (spec.snrg > 10)
    if not use.any():
        return float("nan")
    norm, good = spec.norm[use], spec.good[use]
    g = mask_inputs(norm, good, x_mean, x_std)
    x = standardize(norm, g, x_mean, x_std)
    s = np.asarray(pca_residual_score(x, g, params["basis"], jnp.asarray(x_std), jnp.asarray(spec.snrg[use]),
                                      params["floor"]))
    return float(np.mean(~(s <= meta["threshold"])))


def _loosest(row: dict) -> tuple[float, float, float] | None:
    """(err_rel, snrg, stars) of the snrg bin where an error-model row is pinned down worst, or
    None for a row without err_ lists."""
    rel = row.get("err_rel") or []
    if not rel:
        return None
    k = int(np.argmax(rel))
    return rel[k], row["err_snrg"][k], row["err_n"][k]


def _loose_errors(rows: dict, warn_rel: float, source: str) -> str | None:
    """A warning naming the labels whose Err the held-out stars pin down to worse than
    ``warn_rel`` (relative standard error, err_rel of the rows) in some snrg bin, worst first;
    None when there are none or warn_rel is 0."""
    worst = []
    for n, r in rows.items():
        loose = _loosest(r)
        if loose and warn_rel > 0 and loose[0] > warn_rel:
            worst.append((*loose, n))
    worst.sort(reverse=True)
    if not worst:
        return None
    shown = ", ".join(f"{n} +-{rel:.0%} at snrg {at:.3g} ({c:g} stars)" for rel, at, c, n in worst[:4])
    fix = ("a larger [train] test_catalog (more held-out stars of those labels' sets)" if source.startswith("test")
           else "a [train] test_catalog, or a larger [train] val_fraction")
    return (f"Err_ of {len(worst)} label(s) is pinned down by the {source} to worse than +-{warn_rel:.0%} (1 sigma) in "
            f"some snrg bin: {shown}{' and more' if len(worst) > 4 else ''} (few stars, heavy-tailed residuals); "
            f"{fix} pins it down (report.md 'Error model'; [errors] heldout_warn_rel)")


def _training_ranges(y: np.ndarray, train: np.ndarray, vmp_feh: np.ndarray, percentile: float, schema) -> dict:
    """Flag ranges of the networks: per label the [p, 100 - p] percentiles (p = ``[train]
    range_percentile``; 0: min and max) of its curated training stars' labels (the validation
    stars left out), and of the VMP network's training [Fe/H] (when there is one)."""

    def lo_hi(v):
        v = v[np.isfinite(v)]
        return [float(a) for a in np.percentile(v, [percentile, 100.0 - percentile])] if v.size else [-np.inf, np.inf]

    return {
        "rule": f"[{percentile:g}, {100 - percentile:g}] percentiles of each label over its curated training stars",
        "percentile": float(percentile),
        "labels": {n: lo_hi(y[train, k]) for k, n in enumerate(schema.names)},
        **({schema.vmp.label.name: lo_hi(np.asarray(vmp_feh, float))} if schema.vmp else {}),
    }


def _write_report(out: Path, ck: Path, metrics: dict, notes: list, table: str, plot, error_model: dict,
                  ranges: dict, ood: dict | None, guard: dict | None = None) -> Path:
    import json

    from jaxvac.io.atomic import atomic_write
    from jaxvac.train import evaluate

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
    lines += ["", f"## Error model (from the {error_model['source']}; `jaxvac run` uses it with [errors] source = "
              f"\"checkpoint\")", "", f"{error_model['form']}, digest {error_model['digest']}.", "",
              "| label | a | b | c | sigma_m | value factors (bins of the estimate) | SNR factors (at snrg) | Err known to (1 sigma) "
              "| training range | fit |",
              "|---|---|---|---|---|---|---|---|---|---|"]

    def factors(f, at, word, per_range=()):  # per_range: the snrg range of each list, where f is one list per range
        if not f:
            return "-"
        text = ("; ".join(f"{r}: " + " / ".join(f"{x:.2f}" for x in g) for r, g in zip(per_range, f)) if per_range
                else " / ".join(f"{x:.2f}" for x in f))
        return text + f" ({word} " + ", ".join(f"{e:.4g}" for e in at) + ")"

    for name, row in error_model["rows"].items():
        rng = ranges["labels"].get(name, ranges.get(name, ["", ""]))
        cuts = row.get("value_snr_edges") or []
        vf = factors(row.get("value_factors"), row.get("value_edges"),
                     f"edges of {row['value_label']}" if row.get("value_label") else "edges",
                     [f"snrg < {cuts[0]:g}"] + [f"snrg >= {e:g}" for e in cuts] if cuts else ())
        if row.get("value2_factors"):
            vf += "; x " + factors(row["value2_factors"], row["value2_edges"], f"edges of {row['value2_label']}")
        sf = factors(row.get("snr_factors"), row.get("snr_knots"), "at")
        loose, known = _loosest(row), "-"
        if loose:
            low = min(row["err_rel"])
            known = (f"+-{low:.0%}" + (f" to {loose[0]:.0%}" if loose[0] > low else "")
                     + f" (worst at snrg {loose[1]:.3g}, {loose[2]:g} stars)")
        lines.append(f"| {name} | {row['a']:.4g} | {row['b']:.3g} | {row['c']:.4g} | {row['sigma_m']:.4g} | {vf} | {sf} | "
                     f"{known} | {rng[0]:.4g} .. {rng[1]:.4g} | {row['status']} ({row['n']} stars) |")
    rc = error_model.get("renoised_copies") or {}
    if rc:
        lo, hi, top = error_model["settings"]["renoise"]
        lines += ["", f"Re-noised copies in the fits (held-out stars at snrg >= {hi:g}, below {top:g}, re-noised to "
                      f"{lo:g}-{hi:g}, for labels with fewer than {error_model['settings']['renoise_min']} held-out "
                      f"stars there; counted in the stars column): "
                      + ", ".join(f"{n} {c}" for n, c in rc.items()) + "."]
    lines += ["", "Err known to: the relative standard error of Err in each snrg bin of the fit, from the number and "
                  "the kurtosis of the held-out residuals there (a star's re-noised copies count as one star; a lower "
                  "bound where stars cluster): docs/errors.md \"How well the held-out stars pin Err down\"."]
    lines += ["", f"Flag ranges: {ranges['rule']}.", "",
              "### Error calibration: std(residual / Err) by snrg (2-fold: each half's Err fitted on the other half)",
              "", evaluate.calibration_markdown(metrics["error_calibration"])]
    if ood:
        lines += ["", "## Unlike the training spectra (ood_score)", "",
                  f"{ood['components']} principal axes, floor {ood['floor']:g}; threshold {ood['threshold']:.4g} "
                  f"(the {ood['percentile']:g}th percentile of the training spectra's scores; their median "
                  f"{ood['train_median']:.3g})"
                  + (f"; test spectra (snrg > 10) above it: {ood['test_flagged_fraction']:.1%}"
                     if "test_flagged_fraction" in ood else "") + "."]
    if guard:
        lines += ["", "## Where each set's training stars are sparse (flag bit 2)", "",
                  "A row's labels of a set get flag bit 2 where fewer than k of the set's training stars lie within "
                  "the radius, in the estimates below standardised by the training stars' mean and std; the radius "
                  "is a percentile of the training stars' own distances to their k-th nearest other training star "
                  "(docs/errors.md).", "",
                  "| set | estimates | training stars kept | k | radius (percentile) | held-out stars flagged "
                  "| their worst 1 % flagged |", "|---|---|---|---|---|---|---|"]
        for name, g in guard.items():
            test = (f"{g['test_flagged_fraction']:.1%} of {g['n_test']:,} | {g['worst_flagged_fraction']:.0%}"
                    if "n_test" in g else "- | -")
            lines.append(f"| {name} | {', '.join(g['labels'])} | {g['n_points']:,} of {g['n_members']:,} "
                         f"| {g['neighbours']} | {g['radius']:.3g} ({g['percentile']:g} %) | {test} |")
    report = atomic_write(out / "report.md", "\n".join(lines) + "\n")
    atomic_write(out / "metrics.json", json.dumps(metrics, indent=1, default=float))
    return report
