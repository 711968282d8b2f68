"""Join the parts of a run into the catalogue, with its provenance header (`jaxvac merge`)."""

from __future__ import annotations

import json
from pathlib import Path

import jaxvac
from jaxvac.run.catalog import write_catalog
from jaxvac.run.parts import collect_parts, parts_dir
from jaxvac.run.rows import finalize


def merge(out: str | Path, fmt: str | None = None, header: dict | None = None) -> tuple[Path, int, int]:
    """Join the parts of ``out`` into the final catalogue (uqflag over all rows); atomic.

    Returns (path, rows, rejects).
    """
    pdir = parts_dir(out)
    manifest = pdir / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"no parts to merge: {pdir} has no manifest.json; run `jaxvac run` first.")
    ident = json.loads(manifest.read_text())
    rows, rejects, _ = collect_parts(pdir)
    rows = finalize(rows)
    short = lambda d: (d or "none")[:16]  # noqa: E731
    hdr = {"JAXVAC": (jaxvac.__version__, "jaxvac version that made the catalogue"),
           "MODEL": (ident.get("model", ""), "checkpoint directory"),
           "MODELSHA": (short(ident.get("model_metadata")), "sha256 of the checkpoint metadata (first 16)"),
           "CONFIG": (",".join(ident.get("config_files", [])), "config files, base first"),
           "CONFSHA": (",".join(short(d) for d in ident.get("config", [])), "their sha256 (first 16)"),
           "INPUTS": (short(ident.get("inputs")), "sha256 of the ordered input list (first 16)"),
           "NINPUTS": (ident.get("n_inputs", -1), "input files"),
           "XMATCH": (short(ident.get("crossmatch")), "sha256 of the cross-match table (first 16)"),
           "CLASSES": (",".join(ident.get("classes", [])), "CLASS values processed"),
           **({"MINSNRG": (ident["min_snrg"], "spectra with snrg <= this were skipped")} if "min_snrg" in ident else {}),
           **(header or {})}
    path = write_catalog(out, rows, rejects, header=hdr, fmt=fmt)
    return path, len(rows), len(rejects)
