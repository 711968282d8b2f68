"""Trained networks on disk: orbax-checkpoint parameters plus JSON metadata.

Layout (one orbax ``CheckpointManager`` directory; a new step for every save)::

    <run>/checkpoint/
        <step>/params/     the parameter pytree (orbax StandardSave): ensemble {w, b}, vmp {w, b} (if trained)
        <step>/metadata/   metadata.json (orbax JsonSave), see below

The metadata holds everything needed to use the networks without the training data: the labels
(``jaxvac.labels.LabelSchema.to_metadata``: names, units, training sets, configured ranges,
descriptions, and the VMP rule or null: a model predicts the labels its config listed, not
necessarily the paper's 23); the flux standardisation statistics x_mean, x_std (N_INPUT each)
and the label ones y_mean, y_std (M), vmp_mean, vmp_std (with a VMP network); the rest-frame grid
(``grid``: global-grid constants and the input pixel ranges); the whole normalisation Layout
the training spectra went through (``layout``: every field of ``jaxvac.kernels.Layout``, i.e.
windows, margin, median width, polynomial order, min_good_fraction, pivot_tol, continuum_floor,
max_abs_rv, c_kms, norm_flux_min, norm_flux_max, max_abs_standardized); the model sizes; the
training config; the jaxvac version; training metrics. Written by ``jaxvac train`` since issue 12
(optional, so earlier checkpoints still load): ``error_model`` (Err_ coefficients fitted on
held-out residuals, or from repeats by ``jaxvac calibrate-errors --into``), ``training_ranges``
(the flag range of each label) and ``ood`` (K, floor, threshold of the "unlike the training
spectra" score; its (K, N_INPUT) basis is the parameter ``ood/basis``, beside the networks) and
``guard`` (per training set: the labels, columns, centre, scale, radius and k of the sparseness
test; its (N, D) standardised training estimates are the parameter ``guard/<set>/points``).
Floats are written with Python's repr, so float32 statistics come back bit for bit.

:func:`load` refuses, with a one-line message saying what differs and what to do, a checkpoint
whose format or major.minor version differs, whose grid differs from this jaxvac's, or whose
Layout differs in any field from the one the run normalises with (``jaxvac.preprocess.LAYOUT``
unless given): networks only apply to inputs normalised as in training. A checkpoint of format 1
(before the Layout was recorded) is refused with "retrain": the thresholds it was trained with
cannot be known (pivot_tol changed from 1e-6 to 2e-2 while format 1 was current), so it is not
assumed to be the DR8 Layout. It restores the parameters replicated over any number of local
devices.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import jaxvac
from jaxvac import constants
from jaxvac.errors import JaxvacError
from jaxvac.labels import PAPER, LabelSchema
from jaxvac.model import N_INPUT, N_VMP_INPUT, Predictor
from jaxvac.preprocess import LAYOUT
from jaxvac.train.guard import guard_arrays

CHECKPOINT_FORMAT = 2  # bump when the parameter tree or the metadata keys change meaning; 2: "layout" recorded


class CheckpointError(ValueError, JaxvacError):
    """A checkpoint that cannot be used here; the message says what differs and what to do."""


def grid_metadata() -> dict:
    """The rest-frame grid the networks' inputs are defined on (compared on load).

    Where the inputs lie in wavelength; how they are computed is the Layout (:func:`layout_metadata`).
    """
    return {
        "log_lambda0": constants.LOG_LAMBDA0,
        "log_step": constants.LOG_STEP,
        "npix_global": constants.NPIX_GLOBAL,
        "windows_angstrom": [list(x) for x in constants.WINDOWS],
        "input_pixels": [list(x) for x in LAYOUT.windows],
        "n_input": N_INPUT,
        "vmp_window_angstrom": list(constants.VMP_WINDOW),
        "n_vmp_input": N_VMP_INPUT,
    }


def layout_metadata(layout) -> dict:
    """Every field of a ``jaxvac.kernels.Layout`` as JSON values (tuples as lists)."""
    return _to_json(layout._asdict())


def _check_layout(meta: dict, layout, where: str) -> None:
    record, here = meta.get("layout"), layout_metadata(layout)
    if not isinstance(record, dict):
        raise CheckpointError(
            f"{where} records no normalisation Layout, so the inputs its networks expect are unknown; "
            f"retrain with `jaxvac train`."
        )
    diff = [f"Layout.{k} = {record.get(k, '(absent)')!r} there, {here[k]!r} here" for k in here if record.get(k) != here[k]]
    diff += [f"Layout.{k} = {record[k]!r} there, no such field here" for k in record if k not in here]
    if diff:
        raise CheckpointError(
            f"{where} was trained on spectra normalised with another Layout ({'; '.join(diff)}); networks apply "
            f"only to inputs normalised as in training: retrain them with `jaxvac train` on this Layout."
        )


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split(".")[:2] if p.isdigit())


def check_compatible(meta: dict, where: str = "checkpoint", layout=None) -> None:
    """Raise CheckpointError when ``meta`` was written for another format, grid, Layout or version.

    layout: the ``jaxvac.kernels.Layout`` the caller normalises with (default: ``jaxvac.preprocess.LAYOUT``).
    """
    fmt = meta.get("format")
    if fmt != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{where} has checkpoint format {fmt!r}; this jaxvac reads format {CHECKPOINT_FORMAT}. "
            f"Retrain with `jaxvac train`, or use the jaxvac version that wrote it ({meta.get('jaxvac_version')})."
        )
    grid, here = meta.get("grid", {}), grid_metadata()
    diff = [f"{k}: checkpoint {grid.get(k)!r} vs here {here[k]!r}" for k in here if grid.get(k) != here[k]]
    if diff:
        raise CheckpointError(
            f"{where} was trained on another rest-frame grid; networks only apply to the grid they were "
            f"trained on. Differences: {'; '.join(diff)}. Retrain on this grid with `jaxvac train`."
        )
    _check_layout(meta, LAYOUT if layout is None else layout, where)
    try:
        schema = LabelSchema.from_metadata(meta)
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where} has an unreadable label record ({type(e).__name__}: {e}); "
                              f"retrain with `jaxvac train`.") from None
    n_members = len(meta.get("standardization", {}).get("y_mean", schema.names))
    if n_members != len(schema.names):
        raise CheckpointError(f"{where} lists {len(schema.names)} labels but has {n_members} networks; "
                              f"retrain with `jaxvac train`.")
    theirs, ours = meta.get("jaxvac_version", "?"), jaxvac.__version__
    if _version_tuple(theirs) != _version_tuple(ours):
        raise CheckpointError(
            f"{where} was written by jaxvac {theirs}; this is jaxvac {ours} and versions must agree in "
            f"major.minor. Retrain with this version or install jaxvac {theirs}."
        )


@contextlib.contextmanager
def _readable(directory: str | Path):
    """Turn what orbax, tensorstore or json raise on a damaged checkpoint (a file missing,
    truncated or corrupt) into one CheckpointError line naming the directory."""
    _drop_closed_loop_reports()  # before: tensorstore's threads may report while the error unwinds
    try:
        yield
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - orbax and tensorstore raise many kinds (ValueError, Exception...)
        why = str(e).split(" [tensorstore_spec", 1)[0].strip().splitlines()
        why = why[0][:300] if why else ""
        raise CheckpointError(
            f"checkpoint {str(Path(directory).expanduser().resolve())!r} cannot be read: a file in it is missing, "
            f"truncated or damaged ({type(e).__name__}: {why}); retrain it with `jaxvac train` or restore it "
            f"from a copy.") from e


def _drop_closed_loop_reports() -> None:
    """After a failed restore, tensorstore completes orbax's futures on its closed asyncio loop,
    and each prints a "RuntimeError: Event loop is closed" traceback through sys.unraisablehook,
    after the real error: those (and only those) are dropped."""
    previous = sys.unraisablehook
    if getattr(previous, "_jaxvac_closed_loop_filter", False):
        return

    def hook(unraisable):
        e = unraisable.exc_value
        if isinstance(e, RuntimeError) and str(e) == "Event loop is closed":
            return
        previous(unraisable)

    hook._jaxvac_closed_loop_filter = True
    sys.unraisablehook = hook


def _manager(directory: str | Path, create: bool) -> ocp.CheckpointManager:
    path = Path(directory).expanduser().resolve()  # orbax wants absolute paths
    if not create and not path.is_dir():
        raise CheckpointError(f"no checkpoint directory at {str(path)!r}; give the checkpoint/ folder of a `jaxvac train` run.")
    options = ocp.CheckpointManagerOptions(create=create, max_to_keep=3, enable_async_checkpointing=False)
    return ocp.CheckpointManager(path, options=options, item_names=("params", "metadata"))


def _to_json(x):
    if isinstance(x, dict):
        return {str(k): _to_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_to_json(v) for v in x]
    if isinstance(x, np.ndarray):
        return _to_json(x.tolist())
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if np.isfinite(x) else repr(x)  # JSON has no NaN/inf: "nan", "inf"
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return _to_json(dataclasses.asdict(x))
    return x


def save(directory: str | Path, params: dict, metadata: dict, *, layout=None) -> Path:
    """Save parameters and metadata as the next step of ``directory``; returns the step folder.

    params: ``{"ensemble": {w, b}, "vmp": {w, b}}`` (arrays; "vmp" only for a model with a VMP
    network, whose metadata then has a ``vmp`` rule). metadata: JSON-able dict (NumPy
    arrays and scalars are converted); ``format``, ``grid``, ``layout`` and ``jaxvac_version``
    are added. layout: the ``jaxvac.kernels.Layout`` the training spectra were normalised with
    (default: ``jaxvac.preprocess.LAYOUT``).
    """
    meta = _to_json({**metadata, "format": CHECKPOINT_FORMAT, "grid": grid_metadata(),
                     "layout": layout_metadata(LAYOUT if layout is None else layout),
                     "jaxvac_version": jaxvac.__version__})
    tree = jax.tree.map(np.asarray, {"ensemble": params["ensemble"],
                                     **({"vmp": params["vmp"]} if "vmp" in params else {}),
                                     **({"ood": {"basis": params["ood"]["basis"]}} if "ood" in params else {}),
                                     **({"guard": {k: {"points": g["points"]} for k, g in params["guard"].items()}}
                                        if params.get("guard") else {})})
    with _manager(directory, create=True) as mngr:
        step = 0 if mngr.latest_step() is None else mngr.latest_step() + 1
        mngr.save(step, args=ocp.args.Composite(params=ocp.args.StandardSave(tree),
                                                metadata=ocp.args.JsonSave(meta)))
        mngr.wait_until_finished()
        return Path(mngr.directory) / str(step)



def save_random(directory: str | Path, hidden: tuple[int, ...], vmp_hidden: tuple[int, ...], *,
                seed: int = 0, note: str = "random weights (tests, benchmarks)", schema: LabelSchema | None = None) -> Path:
    """A checkpoint of random networks laid out as `jaxvac train` writes one; returns its directory.

    For plumbing tests and timing only: the labels it predicts mean nothing. schema: the labels
    (default the paper's 23 and feh_VMP; a schema without a VMP rule gets no VMP network).
    Standardisation statistics are drawn near those of normalised flux (mean 0.8-1.1, std
    0.05-0.2), so a real spectrum gives inputs of order 1; labels are standardised as mean 0, std 1.
    """
    from jaxvac.model import init_stack

    schema = PAPER if schema is None else schema
    rng = np.random.default_rng(seed)
    m = len(schema.names)
    params = {"ensemble": init_stack(seed, N_INPUT, tuple(hidden), m)}
    st = {"x_mean": rng.uniform(0.8, 1.1, N_INPUT).astype(np.float32),
          "x_std": rng.uniform(0.05, 0.2, N_INPUT).astype(np.float32),
          "y_mean": np.zeros(m, np.float32), "y_std": np.ones(m, np.float32)}
    if schema.vmp:
        params["vmp"] = init_stack(seed + 1, N_VMP_INPUT, tuple(vmp_hidden), 1)
        st |= {"vmp_mean": np.float32(-2.0), "vmp_std": np.float32(0.5)}
    meta = {**schema.to_metadata(),
            "model": {"hidden": list(hidden), "vmp_hidden": list(vmp_hidden), "n_input": N_INPUT,
                      "n_vmp_input": N_VMP_INPUT, "activation": "relu"},
            "standardization": st, "config": {}, "metrics": {"note": note}}
    return save(directory, params, meta).parent


def update_metadata(directory: str | Path, updates: dict) -> Path:
    """Save the latest step of ``directory`` again, as a new step, with its metadata updated by
    ``updates`` (top-level keys replaced); the parameters are unchanged. For what is learned about
    trained networks later, such as an error model from repeats (``jaxvac calibrate-errors
    --into``). The checkpoint must load here (:func:`load`'s checks). Returns the new step folder.
    """
    pred = load(directory, devices=jax.local_devices()[:1])
    keep = {k: v for k, v in pred.metadata.items() if k not in ("format", "grid", "layout", "jaxvac_version")}
    params = {k: pred.params[k] for k in ("ensemble", "vmp", "ood", "guard") if k in pred.params}
    return save(directory, params, {**keep, **updates})


def read_metadata(directory: str | Path, step: int | None = None) -> dict:
    """The JSON metadata of a checkpoint (latest step by default), unchecked."""
    with _readable(directory), _manager(directory, create=False) as mngr:
        step = _step(mngr, directory, step)
        return mngr.restore(step, args=ocp.args.Composite(metadata=ocp.args.JsonRestore())).metadata


def _step(mngr, directory, step):
    steps = mngr.all_steps()
    if not steps:
        raise CheckpointError(f"checkpoint directory {str(directory)!r} holds no saved step; run `jaxvac train` first.")
    if step is None:
        return max(steps)
    if step not in steps:
        raise CheckpointError(f"checkpoint directory {str(directory)!r} has steps {sorted(steps)}, not {step}.")
    return step


def _stack_shapes(n_in: int, hidden, n_members: int) -> dict:
    sizes = (n_in, *hidden)
    w = [(n_in, n_members, hidden[0])] + [(n_members, a, b) for a, b in zip(sizes[1:-1], sizes[2:])]
    w.append((n_members, sizes[-1]))
    b = [(n_members, h) for h in hidden] + [(n_members,)]
    return {"w": w, "b": b}


def load(directory: str | Path, step: int | None = None, devices=None, *, layout=None) -> Predictor:
    """Restore a checkpoint, checked against this jaxvac, replicated on ``devices``.

    devices: local devices to hold a full copy each (default: all local devices).
    layout: the Layout the caller will normalise with; a checkpoint trained with another one is
    refused (default: ``jaxvac.preprocess.LAYOUT``, what ``jaxvac run`` uses).
    """
    devices = list(devices) if devices is not None else jax.local_devices()
    sharding = NamedSharding(Mesh(np.array(devices), ("replica",)), PartitionSpec())
    with _readable(directory), _manager(directory, create=False) as mngr:
        step = _step(mngr, directory, step)
        meta = mngr.restore(step, args=ocp.args.Composite(metadata=ocp.args.JsonRestore())).metadata
        check_compatible(meta, where=f"checkpoint {str(Path(mngr.directory) / str(step))!r}", layout=layout)
        model = meta["model"]
        shapes = {"ensemble": _stack_shapes(N_INPUT, model["hidden"], len(meta["labels"]))}
        if meta.get("vmp"):  # a model without the VMP rule's labels has no VMP network
            shapes["vmp"] = _stack_shapes(N_VMP_INPUT, model["vmp_hidden"], 1)
        if meta.get("ood"):  # the "unlike the training spectra" basis (jaxvac train; older checkpoints lack it)
            shapes["ood"] = {"basis": (int(meta["ood"]["components"]), N_INPUT)}
        if meta.get("guard"):  # the sparseness test of each training set (jaxvac train; older checkpoints lack it)
            shapes["guard"] = {k: {"points": (int(g["n_points"]), len(g["labels"]))} for k, g in meta["guard"].items()}
        abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct(tuple(s), np.float32, sharding=sharding), shapes,
                                is_leaf=lambda s: isinstance(s, tuple))
        params = mngr.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore(abstract))).params
    st = meta["standardization"]
    f32 = lambda v: jax.device_put(np.asarray(v, np.float32), sharding)  # noqa: E731
    params = {**params, "y_mean": f32(st["y_mean"]), "y_std": f32(st["y_std"])}
    if "vmp" in params:
        params |= {"vmp_mean": f32(st["vmp_mean"]), "vmp_std": f32(st["vmp_std"])}
    if "ood" in params:
        params["ood"] = {**params["ood"], "floor": f32(meta["ood"]["floor"])}
    if "guard" in params:  # the arrays of kernels.neighbours.sparse_rows
        params["guard"] = jax.device_put(guard_arrays(meta["guard"], params["guard"]), sharding)
    return Predictor(params=params, x_mean=np.asarray(st["x_mean"], np.float32),
                     x_std=np.asarray(st["x_std"], np.float32), metadata=meta)
