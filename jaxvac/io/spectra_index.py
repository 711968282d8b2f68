"""The spectra index: one row per spectrum file, from its header only (``jaxvac index``).

A user's reference catalogues (APOGEE, PASTEL, Gaia, ...) find their LAMOST spectra through an
index: by obsid or by sky position (:mod:`jaxvac.io.match`). :func:`build_index` reads the
headers of every file named by the inputs once (:func:`jaxvac.io.inputs.resolve_inputs`, then
:func:`jaxvac.io.lamost.read_meta`: the header parser of :mod:`jaxvac.io.fitsheader`, no pixel
decoded) in worker processes that exit with their parent, and writes

    obsid    int64    OBSID (-1 when the header has none: DR1)
    ra, dec  float64  deg, the target position (RA, DEC; NaN when absent)
    snrg     float32  S/N in g (SNRG, DR1: SN_G)
    class    text     CLASS (STAR, GALAXY, QSO, Unknown)
    lmjd, planid, spid, fiberid   the observation (LMJD int32, PLANID text, SPID, FIBERID int16)
    rv       float64  km/s, Z * c; NaN when Z is -9999 (such a spectrum cannot be put at rest)
    path     text     the file, absolute

in input order, to FITS (jaxvac.io.fitstable: HDU 1 ``INDEX``, HDU 2 ``REJECTS`` with path and
reason of every file that could not be read) or Parquet (pyarrow; the rejects as JSON in the
schema metadata ``jaxvac.rejects``), atomically.

:func:`read_index` reads it back (or any FITS/CSV/Parquet table with those columns) as a
:class:`SpectraIndex`; :func:`lrs_catalogue_index` makes one from the official LAMOST LRS
catalogue (obsid, lmjd, planid, spid, fiberid) and a data directory, without reading a header.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from jaxvac.errors import JaxvacError

__all__ = ["INDEX_COLUMNS", "IndexSummary", "SpectraIndex", "SpectraIndexError", "build_index", "lrs_catalogue_index",
           "lrs_file_stem", "read_index", "read_index_rejects"]

INDEX_COLUMNS = ("obsid", "ra", "dec", "snrg", "class", "lmjd", "planid", "spid", "fiberid", "rv", "path")
REQUIRED = ("obsid", "ra", "dec", "snrg", "path")  # what a table must have to serve as an index
UNITS = {"ra": "deg", "dec": "deg", "rv": "km/s"}
CHUNK = 128  # files per worker task
MIN_FILES_PER_WORKER = 256  # fewer files than this per worker: read in this process (no start-up cost)
_DTYPE = np.dtype([("obsid", "i8"), ("ra", "f8"), ("dec", "f8"), ("snrg", "f4"), ("class", "U16"), ("lmjd", "i4"),
                   ("planid", "U40"), ("spid", "i2"), ("fiberid", "i2"), ("rv", "f8")])
_SUFFIXES = {".fits": "fits", ".fit": "fits", ".parquet": "parquet"}


class SpectraIndexError(ValueError, JaxvacError):
    """An index that cannot be written or read as asked; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class SpectraIndex:
    """Index columns (INDEX_COLUMNS, each (K,)), where they came from, and what they can vouch for.

    rv_known: the rv column is real (False for an LRS catalogue without z: rv is then NaN and
    cannot tell a usable spectrum). class_known: likewise for class. missing: rows whose file was
    not found (LRS catalogue), with up to 3 example names.
    """

    columns: dict
    source: str
    rv_known: bool = True
    class_known: bool = True
    n_missing: int = 0
    missing_examples: tuple = ()

    def __len__(self) -> int:
        return len(self.columns["path"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]


@dataclasses.dataclass
class IndexSummary:
    """What :func:`build_index` did: rows written, rejects (path, reason), time, where."""

    out: Path
    files: int
    rows: int
    rejects: list
    seconds: float
    workers: int

    def reasons(self) -> dict[str, int]:
        """Rejects per kind (the reason's text before its first ':')."""
        out: dict[str, int] = {}
        for _, r in self.rejects:
            key = r.split(":", 1)[0].strip()
            out[key] = out.get(key, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def lines(self) -> list[str]:
        rate = self.files / self.seconds if self.seconds > 0 else 0.0
        out = [f"indexed {self.files:,} files in {self.seconds:.1f} s ({rate:,.0f} files/s, "
               f"{self.workers or 'no'} worker processes): {self.rows:,} spectra, {len(self.rejects):,} rejected"]
        for kind, n in self.reasons().items():
            example = next(p for p, r in self.rejects if r.split(":", 1)[0].strip() == kind)
            out.append(f"  rejected {n:,}: {kind} (e.g. {example})")
        out.append(f"wrote {self.out}")
        return out


# ----------------------------------------------------------------------------------------------
# Building


def build_index(inputs, out, *, workers: int | None = None, progress: bool | None = False) -> IndexSummary:
    """Read the header of every spectrum named by ``inputs`` and write the index to ``out``.

    inputs: what :func:`jaxvac.io.inputs.resolve_inputs` accepts (directories, globs, lists,
    tables; several in a list). out: ``*.fits`` or ``*.parquet``; its folder must exist.
    workers: reader processes (None: one per usable CPU when there are at least
    MIN_FILES_PER_WORKER files per process, else this process; 0: this process).
    progress: a bar on stderr (None: when stderr is a terminal).
    """
    from jaxvac.display.progress import FileProgress, progress_wanted
    from jaxvac.io.inputs import InputError, resolve_inputs

    t0 = time.perf_counter()
    out = Path(out)
    fmt = _format(out)
    if not out.parent.is_dir():
        raise SpectraIndexError(f"index {str(out)!r}: folder {str(out.parent)!r} does not exist; create it or choose "
                                f"another --out.")
    try:
        paths = resolve_inputs(inputs)
    except InputError as e:
        raise SpectraIndexError(str(e)) from None
    tasks = [paths[a:a + CHUNK] for a in range(0, len(paths), CHUNK)]
    if workers is None:
        workers = min(_usable_cpus(), len(paths) // MIN_FILES_PER_WORKER)
    workers = max(0, min(int(workers), len(tasks)))
    parts, good, rejects = [], [], []
    with FileProgress(len(paths), enabled=progress_wanted(progress), description="indexing") as bar:
        for rows, ok, rej in _read_all(tasks, workers):
            parts.append(rows)
            good.extend(ok)
            rejects.extend(rej)
            bar.advance(len(rows) + len(rej), len(rej))
    rows = np.concatenate(parts) if parts else np.zeros(0, _DTYPE)
    columns = {name: rows[name] for name in _DTYPE.names}
    columns["class"] = rows["class"].astype(object)
    columns["planid"] = rows["planid"].astype(object)
    columns["path"] = np.array(good, dtype=object)
    meta = {"jaxvac_version": _version(), "files": len(paths), "spectra": len(rows), "rejects": len(rejects)}
    if fmt == "fits":
        _write_fits(out, columns, rejects, meta)
    else:
        _write_parquet(out, columns, rejects, meta)
    return IndexSummary(out, len(paths), len(rows), rejects, time.perf_counter() - t0, workers)


def _read_all(tasks, workers):
    """(rows, paths, rejects) per task, in task order: in this process or in a pool of ``workers``."""
    if workers <= 0:
        for t in tasks:
            yield _read_chunk(t)
        return
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["numpy", __name__])
    else:
        ctx = multiprocessing.get_context("spawn")
    # Workers watch this process and exit when it is gone, however it ends (jaxvac.io.lifetime).
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                             initargs=(os.getpid(),)) as ex:
        yield from ex.map(_read_chunk, tasks)


def _worker_init(parent: int) -> None:
    from jaxvac.io.lifetime import exit_with

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process gets Ctrl-C and stops the pool
    exit_with(parent)


def _read_chunk(paths: list[str]) -> tuple[np.ndarray, list[str], list[tuple[str, str]]]:
    """The index rows of the readable files of ``paths`` (in order), their paths, and (path,
    reason) of the files that could not be read."""
    from jaxvac.io.lamost import read_meta
    from jaxvac.io.records import Reject

    rows, good, rejects = [], [], []
    for p in paths:
        m = read_meta(p)
        if isinstance(m, Reject):
            rejects.append((p, m.reason))
            continue
        rows.append(tuple(m[name].item() for name in _DTYPE.names))
        good.append(p)
    return np.array(rows, _DTYPE), good, rejects


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _version() -> str:
    from jaxvac import __version__

    return __version__


def _format(out: Path) -> str:
    fmt = _SUFFIXES.get(out.suffix.lower())
    if fmt is None:
        raise SpectraIndexError(f"index {str(out)!r}: unknown format {out.suffix!r}; name it *.fits or *.parquet.")
    return fmt


def _bytes_column(values) -> np.ndarray:
    enc = [str(v).encode("utf-8") for v in values]
    width = max([1] + [len(b) for b in enc])
    return np.array(enc, dtype=f"S{width}")


def _write_fits(out: Path, columns: dict, rejects: list, meta: dict) -> None:
    from jaxvac.io.fitstable import write_tables

    fields = []
    arrays = {}
    for name in INDEX_COLUMNS:
        v = columns[name]
        if v.dtype == object:
            v = _bytes_column(v)
        arrays[name] = v
        fields.append((name, v.dtype))
    rows = np.empty(len(columns["path"]), fields)
    for name in INDEX_COLUMNS:
        rows[name] = arrays[name]
    rej = np.empty(len(rejects), [("path", _bytes_column([p for p, _ in rejects]).dtype),
                                  ("reason", _bytes_column([r for _, r in rejects]).dtype)])
    if rejects:
        rej["path"] = _bytes_column([p for p, _ in rejects])
        rej["reason"] = _bytes_column([r for _, r in rejects])
    cards = {"JVVERS": (meta["jaxvac_version"], "jaxvac version that wrote the index"),
             "NFILES": (meta["files"], "files named by the inputs"),
             "NREJECT": (meta["rejects"], "files that could not be read (HDU REJECTS)")}
    write_tables(out, [("INDEX", rows, UNITS, cards), ("REJECTS", rej, None, None)])


def _write_parquet(out: Path, columns: dict, rejects: list, meta: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from jaxvac.io.atomic import atomic_path

    arrays = {name: (pa.array(columns[name].tolist(), pa.string()) if columns[name].dtype == object
                     else pa.array(columns[name])) for name in INDEX_COLUMNS}
    table = pa.table(arrays)
    md = {b"jaxvac.index": json.dumps(meta).encode(), b"jaxvac.units": json.dumps(UNITS).encode(),
          b"jaxvac.rejects": json.dumps([{"path": p, "reason": r} for p, r in rejects]).encode()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **md})
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)


# ----------------------------------------------------------------------------------------------
# Reading


def read_index(path, *, hint: str = "check the --index path") -> SpectraIndex:
    """An index written by :func:`build_index` (or any FITS/CSV/Parquet table with at least the
    columns obsid, ra, dec, snrg and path; class, lmjd, planid, spid, fiberid, rv are optional).

    Text columns come back as object arrays of str; ``path`` is made absolute relative to the
    index's own folder when it is relative. Raises SpectraIndexError naming what is missing.
    """
    from jaxvac.io.tables import TableError, column_names, read_table, require_columns

    try:
        lower = require_columns(column_names(path, hint=hint), REQUIRED, what="index", path=path,
                                fix="build one with `jaxvac index DIR --out INDEX.fits`, or give the official "
                                    "LRS catalogue with --data DIR.")
        table = read_table(path, [lower[c] for c in INDEX_COLUMNS if c in lower], hint=hint)
    except TableError as e:
        raise SpectraIndexError(str(e)) from None
    cols = {k.lower(): v for k, v in table.items()}
    n = len(cols["path"])
    base = Path(path).resolve().parent
    out = {"obsid": _ids(cols["obsid"]), "ra": np.asarray(cols["ra"], np.float64),
           "dec": np.asarray(cols["dec"], np.float64), "snrg": np.asarray(cols["snrg"], np.float64),
           "class": _text(cols.get("class"), n), "lmjd": _ints(cols.get("lmjd"), n),
           "planid": _text(cols.get("planid"), n), "spid": _ints(cols.get("spid"), n),
           "fiberid": _ints(cols.get("fiberid"), n),
           "rv": np.asarray(cols["rv"], np.float64) if "rv" in cols else np.full(n, np.nan),
           "path": np.array([p if not p or os.path.isabs(p) else str(base / p) for p in _text(cols["path"], n)],
                            dtype=object)}
    return SpectraIndex(out, f"index {path} ({n:,} spectra)", rv_known="rv" in cols, class_known="class" in cols)


def read_index_rejects(path) -> list[tuple[str, str]]:
    """The (path, reason) of every file :func:`build_index` could not read, from its index file."""
    path = Path(path)
    if _format(path) == "fits":
        import fitsio

        with fitsio.FITS(str(path)) as f:
            if "REJECTS" not in f:
                return []
            hdu = f["REJECTS"]
            if hdu.get_nrows() == 0:
                return []
            rows = hdu.read()
        return [(p.decode().rstrip() if isinstance(p, bytes) else str(p).rstrip(),
                 r.decode().rstrip() if isinstance(r, bytes) else str(r).rstrip()) for p, r in rows[["path", "reason"]]]
    import pyarrow.parquet as pq

    md = pq.read_schema(path).metadata or {}
    return [(d["path"], d["reason"]) for d in json.loads(md.get(b"jaxvac.rejects", b"[]"))]


def _ids(a) -> np.ndarray:
    from jaxvac.io.match import as_ids

    return as_ids(a)


def _ints(a, n) -> np.ndarray:
    if a is None:
        return np.full(n, -1, np.int64)
    if isinstance(a, np.ma.MaskedArray):
        return a.filled(-1).astype(np.int64)
    a = np.asarray(a)
    return np.where(np.isfinite(a), a, -1).astype(np.int64) if a.dtype.kind == "f" else a.astype(np.int64)


def _text(a, n) -> np.ndarray:
    if a is None:
        return np.full(n, "", dtype=object)
    return np.array([("" if v != v else str(v).strip()) if not isinstance(v, str) else v.strip() for v in a.tolist()],
                    dtype=object)


# ----------------------------------------------------------------------------------------------
# The official LAMOST LRS catalogue as an index

LRS_COLUMNS = ("obsid", "lmjd", "planid", "spid", "fiberid")


def lrs_file_stem(lmjd, planid, spid, fiberid) -> str:
    """The LAMOST file name of a spectrum without its suffix:
    ``spec-<lmjd>-<planid>_sp<spid:02d>-<fiberid:03d>`` (e.g. spec-55859-F5902_sp03-232; the file
    is that + .fits or .fits.gz)."""
    return f"spec-{int(lmjd)}-{str(planid).strip()}_sp{int(spid):02d}-{int(fiberid):03d}"


def _stem(name: str) -> str:
    low = name.lower()
    for suffix in (".fits.gz", ".fit.gz", ".fits", ".fit"):
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return name


def lrs_catalogue_index(catalogue, data_dir, *, hint: str = "check the --index path") -> SpectraIndex:
    """An index from the official LAMOST LRS catalogue and the files under ``data_dir``.

    catalogue: a FITS/CSV/Parquet table with at least obsid, lmjd, planid, spid, fiberid (case
    ignored); ra, dec, snrg, class and z are taken when present (z: rv = z c, -9999 -> NaN).
    Each row's file is ``lrs_file_stem(...) + .fits[.gz]`` anywhere below data_dir (one walk of
    the folder, no header read), else ``<obsid>.fits[.gz]``; a row whose file is absent gets
    path "" and is counted in ``n_missing``.
    """
    from jaxvac.constants import C_KMS
    from jaxvac.io.inputs import InputError, resolve_inputs
    from jaxvac.io.tables import TableError, column_names, read_table, require_columns

    try:
        lower = require_columns(column_names(catalogue, hint=hint), LRS_COLUMNS, what="LRS catalogue",
                                path=catalogue, fix=f"it needs {list(LRS_COLUMNS)} to name each spectrum's file, "
                                                    f"or give an index from `jaxvac index`.")
        wanted = [lower[c] for c in (*LRS_COLUMNS, "ra", "dec", "snrg", "class", "z") if c in lower]
        cols = {k.lower(): v for k, v in read_table(catalogue, wanted, hint=hint).items()}
    except TableError as e:
        raise SpectraIndexError(str(e)) from None
    try:
        files = resolve_inputs(os.fspath(data_dir))
    except InputError as e:
        raise SpectraIndexError(f"{e} (the spectra of the LRS catalogue {str(catalogue)!r} are looked for there)") from None
    by_stem: dict[str, str] = {}
    for p in files:
        by_stem.setdefault(_stem(os.path.basename(p)), p)
    obsid = _ids(cols["obsid"])
    n = len(obsid)
    planid = _text(cols["planid"], n)
    lmjd, spid, fiberid = (_ints(cols[c], n) for c in ("lmjd", "spid", "fiberid"))
    stems = [lrs_file_stem(*v) for v in zip(lmjd.tolist(), planid, spid.tolist(), fiberid.tolist())]
    path = np.array([by_stem.get(s) or by_stem.get(str(o), "") for s, o in zip(stems, obsid.tolist())], dtype=object)
    absent = np.nonzero(path == "")[0]

    def num(name):
        return np.asarray(cols[name], np.float64) if name in cols else np.full(n, np.nan)

    z = num("z")
    out = {"obsid": obsid, "ra": num("ra"), "dec": num("dec"), "snrg": num("snrg"), "class": _text(cols.get("class"), n),
           "lmjd": lmjd, "planid": planid, "spid": spid, "fiberid": fiberid,
           "rv": np.where(z > -9990.0, z * C_KMS, np.nan), "path": path}
    return SpectraIndex(out, f"LRS catalogue {catalogue} ({n:,} rows; files under {data_dir})",
                        rv_known="z" in cols, class_known="class" in cols, n_missing=len(absent),
                        missing_examples=tuple(stems[i] for i in absent[:3]))
