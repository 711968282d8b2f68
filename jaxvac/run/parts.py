"""Resumable output: a run writes its rows in parts, each part atomic, then merges them.

Layout of ``<catalogue>.parts/`` (next to the final catalogue):

    manifest.json              what the run is (inputs digest, model, config); refuses a mismatch
    part-p<proc>-<seq>.npz     rows, rejects and skipped inputs of consecutive batches (rows in the
                               run's catalogue dtype, with the columns' units as JSON)
    lock, lock-p<proc>         who is writing now (jaxvac.run.output)

A part is written to a temporary name, flushed to disk and renamed (jaxvac.io.atomic), so after
a SIGKILL at any moment a part is either complete or absent (temporaries are swept on restart).
Every input index a part covers (row, reject or skip) is recorded in it, so a rerun skips exactly
those inputs and the merged catalogue equals that of an uninterrupted run, with no row lost or
duplicated. Each part also records its writer (k of n), so that a merge can say which shares of
a sharded run are missing (:func:`coverage`).

The rows' columns are those of the run's model (``jaxvac.run.catalog.catalog_dtype`` of its label
schema); a part stores them as a structured array (np.savez, no pickle) and the columns' units
beside them, so a merge (also ``jaxvac merge`` alone) writes the model's columns and units. Parts
of a run of another model are refused before this matters: the manifest holds the digest of the
model's metadata.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path

import numpy as np

from jaxvac.errors import JaxvacError
from jaxvac.io.atomic import TMP_MARK, atomic_write
from jaxvac.run.catalog import CATALOG_DTYPE, REJECT_DTYPE, SKIPPED_DTYPE

SKIP_DTYPE = SKIPPED_DTYPE  # (path, obsid, reason) of a spectrum skipped by class or snrg
_PART_RE = re.compile(r"^part-p(\d+)-(\d+)\.npz$")


class ManifestMismatch(RuntimeError, JaxvacError):
    """The parts directory belongs to a different run (other inputs, model or config)."""


class PartsError(RuntimeError, JaxvacError):
    """The parts cannot be merged as they are (an input covered twice, or inputs missing)."""


def inputs_digest(paths: list[str]) -> str:
    """SHA-256 of the ordered input list, to recognise the same run."""
    text = "\0".join(map(os.fspath, paths)) + "\0" if len(paths) else ""  # = each os.fsencode(p) + b"\0"
    return hashlib.sha256(text.encode(sys.getfilesystemencoding(), "surrogateescape")).hexdigest()


class PartStore:
    """The parts directory of one catalogue run.

    identity: JSON-serialisable dict (inputs digest, model, config...) that must match on resume.
    worker, n_workers: this writer's id among the writers of one run (processes of a
        jax.distributed run, or jobs of a --shard array), so writers never touch the same file.
    fresh: delete earlier parts first (a single writer: all; one of several: only its own).
    dtype: the catalogue dtype of the rows (default the paper's); units: {column: unit} of its
        columns (``jaxvac.run.catalog.catalog_units``), stored in every part for the merge.
    """

    def __init__(self, directory: str | Path, identity: dict, worker: int = 0, n_workers: int = 1,
                 fresh: bool = False, dtype: np.dtype = CATALOG_DTYPE, units: dict[str, str] | None = None):
        self.dir = Path(directory)
        self.dtype = np.dtype(dtype)
        self.units = dict(units) if units is not None else None
        self.worker = worker
        self.n_workers = n_workers
        self.dir.mkdir(parents=True, exist_ok=True)
        mine = f"part-p{worker:03d}-"
        for tmp in self.dir.glob(f".{mine}*{TMP_MARK}*"):  # only this worker's: others may be writing theirs
            tmp.unlink(missing_ok=True)
        manifest = self.dir / "manifest.json"
        if fresh:  # a single worker owns everything; one of several clears only its own parts
            for p in self.dir.glob("part-*.npz"):
                if n_workers == 1 or p.name.startswith(mine):
                    p.unlink()
            if n_workers == 1:
                manifest.unlink(missing_ok=True)
        if manifest.is_file():
            old = json.loads(manifest.read_text())
            if old != identity:
                diff = sorted(k for k in set(old) | set(identity) if old.get(k) != identity.get(k))
                raise ManifestMismatch(
                    f"{self.dir} holds parts of a different run (differs in: {', '.join(diff)}). "
                    f"Rerun with --fresh to start over, or choose another output name."
                )
        else:
            atomic_write(manifest, json.dumps(identity, indent=1, sort_keys=True), fsync=True)
        self._seq = 1 + max((int(m.group(2)) for m in self._parts(worker)), default=-1)

    def _parts(self, worker: int | None = None):
        for p in sorted(self.dir.iterdir()):
            m = _PART_RE.match(p.name)
            if m and (worker is None or int(m.group(1)) == worker):
                yield m

    def done_indices(self) -> set[int]:
        """Input indices already covered by complete parts (of every process)."""
        done: set[int] = set()
        for m in self._parts():
            with np.load(self.dir / m.group(0)) as z:
                done.update(int(i) for i in z["indices"])
        return done

    def write(self, rows: np.ndarray, row_index: np.ndarray, rejects: np.ndarray, reject_index: np.ndarray,
              skipped: np.ndarray, skip_index: np.ndarray) -> Path:
        """Write one part atomically: catalogue rows, rejects and skips with their input indices."""
        path = self.dir / f"part-p{self.worker:03d}-{self._seq:06d}.npz"
        self._seq += 1
        indices = np.concatenate([row_index, reject_index, skip_index]).astype(np.int64)
        arrays = dict(rows=rows.astype(self.dtype), row_index=row_index.astype(np.int64),
                      rejects=rejects.astype(REJECT_DTYPE), reject_index=reject_index.astype(np.int64),
                      skipped=_as_skipped(skipped), skip_index=skip_index.astype(np.int64), indices=indices,
                      writer=np.array([self.worker, self.n_workers], np.int64))
        if self.units is not None:
            arrays["units"] = np.array(json.dumps(self.units, sort_keys=True))
        atomic_write(path, lambda f: np.savez(f, **arrays), fsync=True)
        return path

    def collect(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All parts of this run merged in input order; see :func:`collect_parts`."""
        return collect_parts(self.dir, self.dtype)


def collect_parts(directory: str | Path, dtype: np.dtype | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The complete parts in ``directory`` merged in input order: (rows, rejects, skipped).

    rows keep the parts' own catalogue dtype (``dtype``, default the paper's, only when there is
    no part). Reads only; raises PartsError if two parts cover the same input (it would mean a
    duplicated row) or hold rows of different columns.
    """
    directory = Path(directory)
    rows, ri, rej, ji, sk, si = [], [], [], [], [], []
    for p in sorted(directory.iterdir()):
        if not _PART_RE.match(p.name):
            continue
        with np.load(p) as z:
            rows.append(z["rows"]); ri.append(z["row_index"])
            rej.append(z["rejects"]); ji.append(z["reject_index"])
            sk.append(_as_skipped(z["skipped"])); si.append(z["skip_index"])
    kinds = {r.dtype for r in rows}
    if len(kinds) > 1:
        raise PartsError(f"{directory}: parts hold rows of {len(kinds)} different column layouts (written by "
                         f"different models?); rerun with --fresh.")
    cat = lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt)  # noqa: E731
    rows, ri = cat(rows, CATALOG_DTYPE if dtype is None else dtype), cat(ri, np.int64)
    rej, ji = cat(rej, REJECT_DTYPE), cat(ji, np.int64)
    sk, si = cat(sk, SKIP_DTYPE), cat(si, np.int64)
    allidx = np.concatenate([ri, ji, si])
    if len(np.unique(allidx)) != len(allidx):
        raise PartsError(f"{directory}: an input appears in two parts (two runs wrote this output at once?); "
                         f"rerun with --fresh.")
    return rows[np.argsort(ri, kind="stable")], rej[np.argsort(ji, kind="stable")], sk[np.argsort(si, kind="stable")]


def parts_units(directory: str | Path) -> dict[str, str] | None:
    """{column: unit} of the rows, as the first part that records them says (None when no part
    does: parts of older versions, always the paper's columns)."""
    for p in sorted(Path(directory).iterdir()):
        if _PART_RE.match(p.name):
            with np.load(p) as z:
                if "units" in z.files:
                    return json.loads(str(z["units"]))
    return None


def _as_skipped(a: np.ndarray) -> np.ndarray:
    """A skipped table as SKIP_DTYPE, field by field (parts of older versions had no obsid: -1)."""
    if a.dtype == SKIP_DTYPE:
        return a
    out = np.zeros(len(a), SKIP_DTYPE)
    out["obsid"] = -1
    for name in SKIP_DTYPE.names:
        if a.dtype.names and name in a.dtype.names:
            out[name] = a[name]
    return out


def coverage(directory: str | Path, n_inputs: int) -> tuple[np.ndarray, set[int]]:
    """(covered, writers): a bool (n_inputs,) mask of the inputs some complete part covers, and the
    writer counts (n of "writer k of n") recorded by the parts (empty for parts of older versions)."""
    covered = np.zeros(n_inputs, bool)
    writers: set[int] = set()
    for p in sorted(Path(directory).iterdir()):
        if _PART_RE.match(p.name):
            with np.load(p) as z:
                idx = z["indices"]
                covered[idx[(idx >= 0) & (idx < n_inputs)]] = True
                if "writer" in z.files:
                    writers.add(int(z["writer"][1]))
    return covered, writers


def parts_dir(out: str | Path) -> Path:
    """Where the resumable parts of catalogue ``out`` live: ``<out>.parts/``."""
    out = Path(out).resolve()
    return out.with_name(out.name + ".parts")
