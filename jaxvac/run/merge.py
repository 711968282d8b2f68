"""Join the parts of a run into the catalogue, with its provenance header (`jaxvac merge`).

The merge refuses a set of parts that does not cover every input of the manifest (a share of a
``--shard`` run that has not run or not finished), naming the missing shares and counting the
missing inputs, unless ``allow_partial``: then the header says ``PARTIAL = T`` and ``NMISSING``.
Every input is accounted for: ``NINPUTS = NROWS + NREJECT + NSKIPPED (+ NMISSING)``, and the
skipped inputs are in the catalogue's SKIPPED table. After a complete merge the parts folder is
removed unless ``keep_parts``. The catalogue has the columns (and units) the parts were written
with: those of the run's model (``jaxvac.run.catalog.catalog_dtype``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

import jaxvac
from jaxvac.io.stream import shard_bounds
from jaxvac.run.catalog import read_header, write_catalog
from jaxvac.run.output import acquire, remove_parts, sweep_output
from jaxvac.run.parts import PartsError, collect_parts, coverage, parts_dir, parts_units
from jaxvac.run.rows import finalize


class Merged(NamedTuple):
    """What a merge wrote: the catalogue's path and its counts; ``notes`` for the user."""

    path: Path
    rows: int
    rejects: int
    skipped: int = 0
    missing: int = 0
    notes: tuple[str, ...] = ()


def _short(d) -> str:
    return (d or "none")[:16]


def provenance_cards(ident: dict) -> dict:
    """The header cards that say which run made a catalogue, from its manifest ``ident``."""
    return {"JAXVAC": (ident.get("jaxvac", jaxvac.__version__), "jaxvac version that made the catalogue"),
            "MODEL": (ident.get("model", ""), "checkpoint directory"),
            "MODELSHA": (_short(ident.get("model_metadata")), "sha256 of the checkpoint metadata (first 16)"),
            "CONFIG": (",".join(ident.get("config_files", [])), "config files, base first"),
            "CONFSHA": (",".join(_short(d) for d in ident.get("config", [])), "their sha256 (first 16)"),
            "INPUTS": (_short(ident.get("inputs")), "sha256 of the ordered input list (first 16)"),
            "NINPUTS": (ident.get("n_inputs", -1), "input files"),
            "XMATCH": (_short(ident.get("crossmatch")), "sha256 of the cross-match table (first 16)"),
            "CLASSES": (",".join(ident.get("classes", [])), "CLASS values processed"),
            **({"MINSNRG": (ident["min_snrg"], "spectra with snrg <= this were skipped")} if "min_snrg" in ident else {}),
            # issue 12: which Err_ model the run used (jaxvac.run.uncertainties.run_error_model)
            **({"ERRMODEL": (ident["error_model"], "Err_ model: checkpoint/repeats/config:sha256")}
               if "error_model" in ident else {})}


def provenance_diff(out: str | Path, ident: dict) -> list[str] | None:
    """The provenance cards in which the catalogue ``out`` differs from the run ``ident`` ([] when
    this very run made it, complete); None when ``out`` is not a catalogue that can be read."""
    try:
        header = read_header(out)
    except Exception:  # noqa: BLE001 - not a catalogue we can read
        return None

    def same(a, b) -> bool:
        try:
            return float(a) == float(b)
        except ValueError:
            return str(a).strip() == str(b).strip()

    diff = [k for k, v in provenance_cards(ident).items() if not (k in header and same(header[k], v[0]))]
    if header.get("PARTIAL", "F") not in ("F", "False", "0"):
        diff.append("PARTIAL")
    return diff


def merge(out: str | Path, fmt: str | None = None, header: dict | None = None, *, allow_partial: bool = False,
          keep_parts: bool = False, force_lock: bool = False, locked: bool = False,
          dtype: np.dtype | None = None, units: dict[str, str] | None = None) -> Merged:
    """Join the parts of ``out`` into the final catalogue (uqflag over all rows); atomic.

    allow_partial: write the catalogue even if inputs are missing (header PARTIAL = T, NMISSING);
        the parts are then kept, so the missing shares can still run and be merged later.
    keep_parts: keep ``out.parts/`` after a complete merge (default: removed).
    force_lock: take over a lock held on another host (see jaxvac.run.output).
    locked: the caller holds the output's lock already (``run_catalog``).
    dtype, units: the run's catalogue dtype and {column: unit} (``run_catalog`` passes them); the
        parts' own are used where they have them (``jaxvac merge``: always), these when there is
        no part (no input), the paper's when neither.
    Raises PartsError for a missing manifest or missing inputs, OutputLocked while a run writes.
    """
    pdir = parts_dir(out)
    manifest = pdir / "manifest.json"
    if not manifest.is_file():
        raise PartsError(f"no parts to merge: {str(pdir)!r} has no manifest.json; run `jaxvac run ... --out {out}` "
                         f"first (and merge with the same OUT).")
    lock = None if locked else acquire(pdir, None, force=force_lock, out=out)
    try:
        notes = list(lock.notes) if lock else []
        sweep_output(out)
        ident = json.loads(manifest.read_text())
        n_inputs = int(ident.get("n_inputs", -1))
        covered, writers = coverage(pdir, max(n_inputs, 0))
        missing = int((~covered).sum())
        if missing and not allow_partial:
            raise PartsError(f"{str(pdir)!r} covers {n_inputs - missing:,} of the {n_inputs:,} inputs "
                             f"({missing:,} missing: {_missing_shares(covered, writers)}); run the missing shares "
                             f"(the same `jaxvac run` with their --shard I/N), or merge anyway with --allow-partial.")
        rows, rejects, skipped = collect_parts(pdir, dtype)
        units = parts_units(pdir) or units
        rows = finalize(rows)
        counts = {"NROWS": (len(rows), "catalogue rows (HDU CATALOG)"),
                  "NREJECT": (len(rejects), "unusable inputs (HDU REJECTS)"),
                  "NSKIPPED": (len(skipped), "inputs skipped by CLASS or snrg (HDU SKIPPED)")}
        if missing:
            counts["PARTIAL"] = (True, "inputs are missing: merged with --allow-partial")
            counts["NMISSING"] = (missing, "inputs in no part (NINPUTS = the 4 counts)")
        path = write_catalog(out, rows, rejects, header={**provenance_cards(ident), **counts, **(header or {})},
                             fmt=fmt, skipped=skipped, units=units)
        if missing:
            notes.append(f"partial catalogue: {missing:,} of {n_inputs:,} inputs missing (header PARTIAL = T); "
                         f"the parts stay in {pdir}")
        elif not keep_parts:
            remove_parts(pdir)  # with the lock still in it: nobody starts writing there meanwhile
        return Merged(Path(path), len(rows), len(rejects), len(skipped), missing, tuple(notes))
    finally:
        if lock is not None:
            lock.release()


def _missing_shares(covered: np.ndarray, writers: set[int]) -> str:
    """Which shares of a ``--shard I/N`` run lack inputs, e.g. "share 1/2 (10,000 inputs)"; the
    missing input ranges when the parts do not record one share count."""
    n = len(covered)
    if len(writers) == 1 and (k := next(iter(writers))) > 1:
        out = []
        for i in range(k):
            a, b = shard_bounds(n, (i, k))
            m = int((~covered[a:b]).sum())
            if m:
                out.append(f"--shard {i}/{k} ({m:,} of its {b - a:,} inputs)")
        return "missing from " + ", ".join(out)
    idx = np.flatnonzero(~covered)
    cuts = np.flatnonzero(np.diff(idx) > 1)
    starts, ends = np.r_[idx[0], idx[cuts + 1]], np.r_[idx[cuts], idx[-1]]
    ranges = [f"{a}" if a == b else f"{a}-{b}" for a, b in zip(starts.tolist(), ends.tolist())]
    return "input numbers " + ", ".join(ranges[:6]) + (f" and {len(ranges) - 6} more ranges" if len(ranges) > 6 else "")
