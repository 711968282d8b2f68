"""Helpers shared by the benchmark scripts (bench/ is on sys.path when a script here runs)."""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

#: The real spectra: ../shared/lamost beside the checkout, or $JAXVAC_LAMOST (a copy carried to a
#: machine where ../shared is absent, such as a lent GPU machine: bench/gpu.sh).
LAMOST = Path(os.environ.get("JAXVAC_LAMOST") or Path(__file__).resolve().parents[2] / "shared" / "lamost")


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def real_file_copies(n_files: int, out: Path, *, link: bool = False) -> list[str]:
    """n_files copies of the real spectra of ../shared/lamost in out (cycled), in a stable order;
    ``link``: symbolic links instead of copies (distinct names at no disk cost)."""
    from jaxvac.io.inputs import resolve_inputs

    real = resolve_inputs(LAMOST)
    paths = []
    for k in range(n_files):
        src = real[k % len(real)]
        dst = out / f"{k:06d}_{os.path.basename(src)}"
        if link:
            os.symlink(src, dst)
        else:
            shutil.copyfile(src, dst)
        paths.append(str(dst))
    return paths


def machine(extra: str = "") -> str:
    """One line naming the machine and software a result came from: CPU model, cores, Python,
    numpy, and (when the script uses it) jax with its device; ``extra`` is appended."""
    import sys

    import numpy as np

    parts = [cpu_name(), f"{os.cpu_count()} cores", f"Python {platform.python_version()}", f"numpy {np.__version__}"]
    if "jax" in sys.modules:
        import jax

        dev = jax.devices()[0]
        parts.append(f"jax {jax.__version__} on {dev.platform}" + (f" ({dev.device_kind})" if dev.platform != "cpu" else ""))
    return ", ".join(parts + ([extra] if extra else []))


def write_results(script: str, results: list[dict], *, out: str | Path | None = None, machine_note: str = "",
                  **extra) -> Path:
    """Write ``bench/results/<script>.json`` = {"machine", **extra, "results"} atomically; returns its path."""
    import json

    from jaxvac.io.atomic import atomic_write

    path = Path(out) if out else Path(__file__).resolve().parent / "results" / f"{script}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps({"machine": machine(machine_note), **extra, "results": results}, indent=1) + "\n")
    return path
