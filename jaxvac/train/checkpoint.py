"""Trained networks on disk: orbax-checkpoint parameters plus JSON metadata.

Layout (one orbax ``CheckpointManager`` directory; a new step for every save)::

    <run>/checkpoint/
        <step>/params/     the parameter pytree (orbax StandardSave): ensemble {w, b}, vmp {w, b}
        <step>/metadata/   metadata.json (orbax JsonSave), see below

The metadata holds everything needed to use the networks without the training data: label
names, units and effective (training) ranges; the flux standardisation statistics x_mean, x_std
(1974 each) and the label ones y_mean, y_std (23), vmp_mean, vmp_std; the rest-frame grid
(global-grid constants and the input pixel ranges); the model sizes; the training config; the
jaxvac version; training metrics. Floats are written with Python's repr, so float32 statistics
come back bit for bit.

:func:`load` refuses a checkpoint whose grid differs from this jaxvac's, or whose format or
version is not compatible, with a message saying what differs; it restores the parameters
replicated over any number of local devices.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import jaxvac
from jaxvac import constants
from jaxvac.model import N_INPUT, N_VMP_INPUT, Predictor

CHECKPOINT_FORMAT = 1  # bump when the parameter tree or the metadata keys change meaning


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here; the message says what differs and what to do."""


def grid_metadata() -> dict:
    """The rest-frame grid the networks' inputs are defined on (compared on load)."""
    w = [constants.window_pixels(lo, hi) for lo, hi in constants.WINDOWS]
    return {
        "log_lambda0": constants.LOG_LAMBDA0,
        "log_step": constants.LOG_STEP,
        "npix_global": constants.NPIX_GLOBAL,
        "windows_angstrom": [list(x) for x in constants.WINDOWS],
        "input_pixels": [list(x) for x in w],
        "n_input": N_INPUT,
        "vmp_window_angstrom": list(constants.VMP_WINDOW),
        "n_vmp_input": N_VMP_INPUT,
        "medfilt_width": constants.MEDFILT_WIDTH,
        "poly_order": constants.POLY_ORDER,
    }


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split(".")[:2] if p.isdigit())


def check_compatible(meta: dict, where: str = "checkpoint") -> None:
    """Raise CheckpointError when ``meta`` was written for another grid, format or version."""
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
    theirs, ours = meta.get("jaxvac_version", "?"), jaxvac.__version__
    if _version_tuple(theirs) != _version_tuple(ours):
        raise CheckpointError(
            f"{where} was written by jaxvac {theirs}; this is jaxvac {ours} and versions must agree in "
            f"major.minor. Retrain with this version or install jaxvac {theirs}."
        )


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


def save(directory: str | Path, params: dict, metadata: dict) -> Path:
    """Save parameters and metadata as the next step of ``directory``; returns the step folder.

    params: ``{"ensemble": {w, b}, "vmp": {w, b}}`` (arrays). metadata: JSON-able dict (NumPy
    arrays and scalars are converted); ``format``, ``grid`` and ``jaxvac_version`` are added.
    """
    meta = _to_json({**metadata, "format": CHECKPOINT_FORMAT, "grid": grid_metadata(),
                     "jaxvac_version": jaxvac.__version__})
    tree = jax.tree.map(np.asarray, {"ensemble": params["ensemble"], "vmp": params["vmp"]})
    with _manager(directory, create=True) as mngr:
        step = 0 if mngr.latest_step() is None else mngr.latest_step() + 1
        mngr.save(step, args=ocp.args.Composite(params=ocp.args.StandardSave(tree),
                                                metadata=ocp.args.JsonSave(meta)))
        mngr.wait_until_finished()
        return Path(mngr.directory) / str(step)


def read_metadata(directory: str | Path, step: int | None = None) -> dict:
    """The JSON metadata of a checkpoint (latest step by default), unchecked."""
    with _manager(directory, create=False) as mngr:
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


def load(directory: str | Path, step: int | None = None, devices=None) -> Predictor:
    """Restore a checkpoint, checked against this jaxvac, replicated on ``devices``.

    devices: local devices to hold a full copy each (default: all local devices).
    """
    devices = list(devices) if devices is not None else jax.local_devices()
    sharding = NamedSharding(Mesh(np.array(devices), ("replica",)), PartitionSpec())
    with _manager(directory, create=False) as mngr:
        step = _step(mngr, directory, step)
        meta = mngr.restore(step, args=ocp.args.Composite(metadata=ocp.args.JsonRestore())).metadata
        check_compatible(meta, where=f"checkpoint {str(Path(mngr.directory) / str(step))!r}")
        model = meta["model"]
        shapes = {
            "ensemble": _stack_shapes(N_INPUT, model["hidden"], len(meta["labels"])),
            "vmp": _stack_shapes(N_VMP_INPUT, model["vmp_hidden"], 1),
        }
        abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct(tuple(s), np.float32, sharding=sharding), shapes,
                                is_leaf=lambda s: isinstance(s, tuple))
        params = mngr.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore(abstract))).params
    st = meta["standardization"]
    f32 = lambda v: jax.device_put(np.asarray(v, np.float32), sharding)  # noqa: E731
    params = {
        **params,
        "y_mean": f32(st["y_mean"]), "y_std": f32(st["y_std"]),
        "vmp_mean": f32(st["vmp_mean"]), "vmp_std": f32(st["vmp_std"]),
    }
    return Predictor(params=params, x_mean=np.asarray(st["x_mean"], np.float32),
                     x_std=np.asarray(st["x_std"], np.float32), metadata=meta)


def metadata_json(meta: dict) -> str:
    """Pretty JSON text of a metadata dict (for docs and `jaxvac` messages)."""
    return json.dumps(_to_json(meta), indent=1)
