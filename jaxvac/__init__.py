"""jaxvac: the LAMOST LRS value-added catalogue (Wang et al. 2022 method) in JAX.

The public surface, imported on first use so that ``import jaxvac`` and ``jaxvac --help`` stay
fast (JAX, orbax and astropy load only when a name that needs them is touched)::

    read_spectrum, resolve_inputs, stream_batches      reading LAMOST FITS files
    jaxvac.preprocess (module): normalize, preprocess   the pre-processing kernels' front door
    simulate_survey                                     a synthetic survey with known labels
    train_from_config, load_checkpoint                  the label networks + the VMP network
    ErrorModel, run_catalog, merge, write_report        the catalogue
    load_config                                         configs/*.toml (built-in names or paths)
    JaxvacError                                         the base of every error a user can cause
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "read_spectrum": "jaxvac.io.lamost",
    "resolve_inputs": "jaxvac.io.inputs",
    "stream_batches": "jaxvac.io.stream",
    "simulate_survey": "jaxvac.simulate",
    "train_from_config": "jaxvac.train.job",
    "load_checkpoint": ("jaxvac.train.checkpoint", "load"),
    "ErrorModel": "jaxvac.run.uncertainties",
    "run_catalog": "jaxvac.run.loop",
    "merge": "jaxvac.run.merge",
    "write_report": "jaxvac.display.report",
    "load_config": "jaxvac.config",
    "JaxvacError": "jaxvac.errors",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name):
    target = _PUBLIC.get(name)
    if target is None:
        raise AttributeError(f"module 'jaxvac' has no attribute {name!r}")
    module, attr = target if isinstance(target, tuple) else (target, name)
    return getattr(importlib.import_module(module), attr)
