"""A tiny survey, a random-weight checkpoint and a run config, for the tests of `jaxvac run`'s
behaviour around the run (errors, locks, kills), where the labels' values do not matter.

The checkpoint is built from random weights (no training: seconds, not minutes); the survey has
non-stars, low-snrg spectra and corrupt files, so every input kind (row, reject, skipped) occurs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


RUN_TOML = """base = "{base}"
[run]
batch_size = 16
part_batches = 1
workers = 2
"""


def random_checkpoint(directory: Path) -> Path:
    """A checkpoint of small random networks (16-8 and 8), as `jaxvac train` would lay it out."""
    from jaxvac.train import checkpoint

    return checkpoint.save_random(directory, (16, 8), (8,), seed=3, note="random weights for tests")


def make(tmp: Path, n: int = 120, seed: int = 21) -> dict:
    """{tmp, survey, model, config, truth}: a simulated survey of ``n`` spectra and the rest."""
    import fitsio

    from jaxvac.simulate import simulate_survey

    survey = tmp / "survey"
    simulate_survey(survey, n, seed=seed, workers=1, progress=False, corrupt_fraction=0.06, nonstar_fraction=0.1)
    from jaxvac.config import builtin_path

    base = tmp / "dr8.toml"  # a copy: the catalogues of one test module all come from the same recipe
    base.write_bytes(builtin_path("dr8.toml").read_bytes())
    config = tmp / "run.toml"
    config.write_text(RUN_TOML.format(base=base))
    return {"tmp": tmp, "survey": survey, "model": random_checkpoint(tmp / "model"), "config": config,
            "truth": fitsio.read(survey / "truth.fits")}


def run_args(setup: dict, out: Path, *extra: str) -> list[str]:
    """The arguments of `jaxvac run` on the tiny survey, writing ``out``."""
    return ["run", "--model", str(setup["model"]), "--input", str(setup["survey"] / "spectra"),
            "--crossmatch", str(setup["survey"] / "crossmatch.fits"), "--out", str(out),
            "--config", str(setup["config"]), "--no-progress", *extra]


def child_env(cache: Path) -> dict:
    """Environment of a CLI subprocess: one CPU device and a persistent compilation cache, so that
    each of many short-lived runs does not compile the device step again."""
    return dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1",
                JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


def cli(args: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m jaxvac.cli ARGS` to completion."""
    return subprocess.run([sys.executable, "-m", "jaxvac.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
