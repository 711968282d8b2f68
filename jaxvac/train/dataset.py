"""Training and test catalogues, and the cached matrix of their normalised spectra.

A catalogue (FITS, CSV or Parquet table, read by :func:`jaxvac.io.tables.read_table`) has one
row per star: ``path`` (relative to the survey directory, or absolute) or ``obsid``, label
columns named as in :mod:`jaxvac.labels` (NaN where unknown), optional ``Err_<label>`` and
``snrg`` columns and anything else (curation columns). :func:`catalog_paths` finds its spectra.

:func:`load_spectra` reads and normalises the spectra of a list of files once and keeps the result
in the directory ``<cache_dir>/norm-<key>/`` (key: a hash of the file list, the sizes and
modification times of the files, the grid, this jaxvac version and the source of the reader,
constants and pre-processing modules), so retraining never re-reads FITS and a changed
normalisation is never served stale. The cache holds one ``.npy`` file per field: the normalised
flux (N, 1974) float32, its good-pixel mask, the pre-processing status, the header metadata needed
later (obsid, snrg, rv) and the rejected files with their reasons. It is built streaming (each
batch's rows written to disk as they come, so memory does not grow with N) in a temporary
directory renamed to its final name only when complete, and opened memory-mapped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

import jaxvac
from jaxvac.config import recipe_defaults
from jaxvac.constants import NPIX_GLOBAL
from jaxvac.errors import JaxvacError
from jaxvac.io.atomic import TMP_MARK, temporary_name
from jaxvac.io.lifetime import pid_alive

__all__ = ["SpectraMatrix", "catalog_paths", "load_spectra"]

CACHE_FORMAT = 2  # 2: a directory of .npy files, memory-mapped (1: one .npz)


class DatasetError(ValueError, JaxvacError):
    """A catalogue or spectrum list that cannot be used; the message says what to do."""


def catalog_paths(cat: dict[str, np.ndarray], data_dir: str | Path, where: str = "catalogue") -> np.ndarray:
    """Absolute spectrum paths of a catalogue's rows, from ``path`` or else ``obsid``.

    ``path``: taken relative to data_dir unless absolute. ``obsid`` only: the file
    ``<obsid>.fits[.gz]`` anywhere below data_dir (LAMOST's own per-obsid naming); a row whose
    file is not found gets "" (reported as missing by :func:`load_spectra`'s caller).
    """
    data_dir = Path(data_dir).resolve()
    cols = {k.lower(): k for k in cat}
    if "path" in cols:
        return np.array([str(p if os.path.isabs(p) else (data_dir / p)) for p in cat[cols["path"]]])
    if "obsid" in cols:
        index = {}
        for p in sorted(data_dir.rglob("*.fit*")):
            stem = p.name.split(".")[0]
            if stem.isdigit():
                index.setdefault(int(stem), str(p))
        return np.array([index.get(int(o), "") for o in cat[cols["obsid"]]])
    raise DatasetError(f"{where} has neither a 'path' nor an 'obsid' column (columns: {sorted(cat)[:20]}); add one.")


@dataclasses.dataclass
class SpectraMatrix:
    """Normalised spectra of a list of files, row i for paths[i].

    norm: float32 (N, 1974) normalised flux (1 at bad pixels); good: bool (N, 1974);
    status: int32 (N,) pre-processing status bits (0: clean); ok: bool (N,), False for files that
    were rejected by the reader (reason in ``reasons``); snrg, rv: float32 (N,) from the headers;
    obsid: int64 (N,).
    """

    paths: np.ndarray
    norm: np.ndarray
    good: np.ndarray
    status: np.ndarray
    ok: np.ndarray
    reasons: np.ndarray
    snrg: np.ndarray
    rv: np.ndarray
    obsid: np.ndarray

    def usable(self, max_bad_fraction: float = 0.5) -> np.ndarray:
        """(N,) bool: read, normalised with no status bit but ``input_masked`` (a wild pixel masked
        like a bad one leaves a usable spectrum), and at most max_bad_fraction bad pixels."""
        from jaxvac.kernels.normalize import STATUS_INPUT_MASKED

        clean = (self.status & ~np.int32(STATUS_INPUT_MASKED)) == 0
        return self.ok & clean & (1.0 - self.good.mean(1) <= max_bad_fraction)


# Modules whose code decides the cached values: a change to any of them invalidates the cache.
_PREPROCESS_MODULES = ("jaxvac.io.lamost", "jaxvac.preprocess", "jaxvac.constants", "jaxvac.kernels.normalize",
                       "jaxvac.kernels.medfilt", "jaxvac.kernels.continuum", "jaxvac.kernels.restframe",
                       "jaxvac.kernels.layout", "jaxvac.kernels.standardize")

# The cache directory's arrays: (N, npix) written batch by batch; (N,) written at the end.
_MATRIX_FIELDS = ("norm", "good")
_ROW_FIELDS = ("paths", "status", "ok", "reasons", "snrg", "rv", "obsid")


def _code_fingerprint() -> str:
    import importlib

    h = hashlib.sha256()
    for name in _PREPROCESS_MODULES:
        try:
            h.update(Path(importlib.import_module(name).__file__).read_bytes())
        except (ImportError, OSError, TypeError):
            h.update(f"{name}: unavailable".encode())
    return h.hexdigest()


def _cache_key(paths: list[str]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"format": CACHE_FORMAT, "version": jaxvac.__version__, "npix": NPIX_GLOBAL,
                         "code": _code_fingerprint()}).encode())
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}\0missing\n".encode())
    return h.hexdigest()[:20]


def load_spectra(paths, cache_dir: str | Path, *, workers: int = 2, batch_size: int = 512,
                 progress: bool | None = None) -> SpectraMatrix:
    """Normalised spectra of ``paths`` (in order), from the cache or by reading them once.

    Missing or unreadable files are kept as rows with ok False and the reader's reason, so every
    catalogue row can be accounted for. The arrays are read-only memory maps of the cache
    (``np.load(mmap_mode="r")``): opening costs no memory, rows are paged in when used. The build
    writes each batch's rows to the cache's files as it goes, so its memory does not grow with N.
    """
    paths = [str(p) for p in paths]
    cache_dir = Path(cache_dir)
    cache = cache_dir / f"norm-{_cache_key(paths)}"
    m = _open_cache(cache, paths)
    if m is not None:
        return m
    if cache.is_dir():  # under the final name but unreadable (truncated by a crash): never served, rebuilt
        shutil.rmtree(cache, ignore_errors=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    _sweep_dead_builds(cache_dir)
    tmp = temporary_name(cache)
    try:
        tmp.mkdir()
        _read_and_normalize(paths, tmp, workers=workers, batch_size=batch_size, progress=progress)
        try:
            os.replace(tmp, cache)  # a directory: atomic; the cache is trusted only under its final name
        except OSError:
            if not cache.is_dir():  # not another process that built the same key first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    m = _open_cache(cache, paths)
    if m is None:
        raise DatasetError(f"spectra cache {cache} was just written but cannot be read back; check the disk "
                           f"(free space, permissions) and rerun.")
    return m


def _open_cache(cache: Path, paths: list[str]) -> SpectraMatrix | None:
    """The cache as read-only memory maps, or None when absent, incomplete or for other paths."""
    if not cache.is_dir():
        return None
    try:
        arrays = {f: np.load(cache / f"{f}.npy", mmap_mode="r", allow_pickle=False) for f in _MATRIX_FIELDS + _ROW_FIELDS}
    except (OSError, ValueError):
        return None
    n = len(paths)
    if any(len(a) != n for a in arrays.values()) or arrays["norm"].shape != arrays["good"].shape:
        return None
    if arrays["paths"].tolist() != paths:
        return None
    return SpectraMatrix(**arrays)


def _sweep_dead_builds(cache_dir: Path) -> None:
    """Remove the temporary build directories that killed builds left (their pid is gone)."""
    for p in cache_dir.glob(f".norm-*{TMP_MARK}*"):
        pid = p.name.split(TMP_MARK, 1)[1].split("-", 1)[0]
        if p.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


class _RowWriter:
    """Writes an (N, npix) .npy file row block by row block, in increasing row order.

    Rows never written hold ``fill``. Plain sequential writes, no memory map: the written rows
    go to the page cache, not to this process's resident memory.
    """

    def __init__(self, path: Path, n: int, npix: int, dtype, fill):
        self.f = open(path, "wb")
        np.lib.format.write_array_header_1_0(self.f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                      "fortran_order": False, "shape": (n, npix)})
        self.n, self.next = n, 0
        self.filler = np.full((128, npix), fill, dtype)  # 1 MB of float32 rows for the gaps

    def write(self, rows: np.ndarray, values: np.ndarray) -> None:
        """rows: increasing int (k,), all >= the rows already written; values: (k, npix)."""
        start = 0
        while start < len(rows):  # runs of consecutive rows, each one write
            stop = start + 1
            while stop < len(rows) and rows[stop] == rows[stop - 1] + 1:
                stop += 1
            self._fill_to(int(rows[start]))
            self.f.write(np.ascontiguousarray(values[start:stop]).tobytes())
            self.next = int(rows[stop - 1]) + 1
            start = stop

    def _fill_to(self, row: int) -> None:
        while self.next < row:
            k = min(row - self.next, len(self.filler))
            self.f.write(self.filler[:k].tobytes())
            self.next += k

    def close(self) -> None:
        self._fill_to(self.n)
        self.f.close()


def _read_and_normalize(paths: list[str], out: Path, *, workers: int, batch_size: int, progress) -> None:
    """Read and normalise ``paths`` into the cache directory ``out`` (one .npy file per field).

    The (N, npix) norm and good arrays are written batch by batch (memory bounded by a batch);
    the (N,) arrays are kept in memory and written at the end.
    """
    from jaxvac.io.stream import stream_batches
    from jaxvac.preprocess import NPIX, normalize  # NPIX: jaxvac.model.N_INPUT, without importing flax

    n = len(paths)
    status = np.full(n, -1, np.int32)
    ok = np.zeros(n, bool)
    reasons = np.full(n, "", dtype=object)
    snrg = np.full(n, np.nan, np.float32)
    rv = np.full(n, np.nan, np.float32)
    obsid = np.full(n, -1, np.int64)
    present = np.array([i for i, p in enumerate(paths) if p], np.int64)
    reasons[np.setdiff1d(np.arange(n), present)] = "no spectrum file for this catalogue row"
    norm = _RowWriter(out / "norm.npy", n, NPIX, np.float32, 1.0)
    good = _RowWriter(out / "good.npy", n, NPIX, bool, False)
    try:
        with stream_batches([paths[i] for i in present], batch_size=batch_size, workers=workers,
                            progress=progress) as stream:
            for b in stream:
                for r, ri in zip(b.rejects, b.reject_index):
                    reasons[present[ri]] = r.reason
                v = b.valid
                if not v.any():
                    continue
                nb, gb, _, sb = normalize(b.flux, b.ivar, b.good, b.meta["rv"].astype(np.float32))
                nb, gb, sb = np.asarray(nb), np.asarray(gb), np.asarray(sb)
                if nb.shape[1] != NPIX:
                    raise DatasetError(f"normalize returned {nb.shape[1]} pixels per spectrum, jaxvac.preprocess.NPIX "
                                       f"is {NPIX}; the installed jaxvac is inconsistent: reinstall it.")
                rows = present[b.index[v]]
                norm.write(rows, nb[v])
                good.write(rows, gb[v])
                status[rows] = sb[v]
                ok[rows] = True
                snrg[rows], rv[rows], obsid[rows] = b.meta["snrg"][v], b.meta["rv"][v], b.meta["obsid"][v]
    finally:
        norm.close()
        good.close()
    for name, a in (("paths", np.array(paths, dtype=str)), ("status", status), ("ok", ok),
                    ("reasons", reasons.astype(str)), ("snrg", snrg), ("rv", rv), ("obsid", obsid)):
        np.save(out / f"{name}.npy", a, allow_pickle=False)


# ----------------------------------------------------------------------------------------------
# Curation of the training sets (SPEC.md "Networks": the cuts Wang et al. 2022 applied, the
# removal of likely binaries and the 1.5-sigma clipping of the LGMWAS set, then retraining).


@dataclasses.dataclass(frozen=True)
@recipe_defaults("curation")
class CurationConfig:
    """``[curation]`` of configs/*.toml; the defaults are those of configs/dr8.toml [curation].

    apply_cuts: apply ``cuts`` to the training catalogues.
    cuts: rules, each a table ``{set, column, min?, max?, abs?, relative_to?, labels?}``: keep a
        star of training set ``set`` for the networks ``labels`` (default: all of the set's) only
        where ``min < value < max``, value = column (``abs``: its absolute value; ``relative_to``:
        column / that column). A rule whose column is absent is skipped and reported.
    binary_removal: after a first training, drop stars of ``magnitude_set`` whose photometric M_G
        (label ``mg_label``) is brighter than the network's (spectroscopic) M_G by more than
        ``binary_mag``, then retrain.
    binary_mag: mag, threshold of the binary removal.
    clip_sigma: after a first training, drop ``magnitude_set`` stars whose residual in a band
        exceeds clip_sigma times that band's residual std (from that band's network only), except
        stars with M_G > clip_keep_mg_above; then retrain. 0: off.
    clip_keep_mg_above: mag, faint dwarfs kept by the clipping (M_G > this).
    magnitude_set: the training set of absolute magnitudes these two rules apply to (LGMWAS);
        nothing happens when the model does not train it.
    mg_label: its M_G label; without it in the set there is no binary removal and no star is kept
        from the clipping by its M_G.
    """

    apply_cuts: bool
    cuts: tuple[dict, ...]
    binary_removal: bool
    binary_mag: float
    clip_sigma: float
    clip_keep_mg_above: float
    magnitude_set: str
    mg_label: str


def apply_cuts(cat: dict[str, np.ndarray], set_name: str, set_labels: list[str], cuts) -> tuple[dict, list[str]]:
    """Per-label keep masks of a training catalogue and notes on what each rule did.

    Returns ({label: (n,) bool keep}, notes). A rule naming an absent column keeps everything and
    adds a note saying so (never silently).
    """
    n = len(next(iter(cat.values())))
    keep = {lab: np.ones(n, bool) for lab in set_labels}
    notes = []
    for rule in cuts:
        rule = dict(rule)
        if rule.get("set") != set_name:
            continue
        unknown = set(rule) - {"set", "column", "min", "max", "abs", "relative_to", "labels"}
        if unknown:
            raise DatasetError(f"curation cut {rule} has unknown key(s) {sorted(unknown)}; allowed: set, column, min, max, abs, relative_to, labels.")
        col = rule["column"]
        if col not in cat or (rule.get("relative_to") and rule["relative_to"] not in cat):
            notes.append(f"{set_name}: cut on {col!r} skipped: column absent from the catalogue")
            continue
        v = np.asarray(cat[col], float)
        if rule.get("relative_to"):
            v = v / np.asarray(cat[rule["relative_to"]], float)
        if rule.get("abs"):
            v = np.abs(v)
        ok = np.isfinite(v)
        if "min" in rule:
            ok &= v > rule["min"]
        if "max" in rule:
            ok &= v < rule["max"]
        targets = list(rule.get("labels", set_labels))
        for lab in targets:
            if lab not in keep:
                raise DatasetError(f"curation cut on {col!r} names label {lab!r}, not a label of training set {set_name} ({set_labels}).")
            keep[lab] &= ok
        notes.append(f"{set_name}: {col}{' (abs)' if rule.get('abs') else ''}"
                     f"{'/' + rule['relative_to'] if rule.get('relative_to') else ''} in "
                     f"({rule.get('min', '-inf')}, {rule.get('max', 'inf')}) keeps {int(ok.sum())}/{n} for {targets}")
    return keep, notes


def lgmwas_outliers(y_phot: np.ndarray, y_spec: np.ndarray, names: list[str], cfg: CurationConfig) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Binary and sigma-clipping rejections among the ``cfg.magnitude_set`` stars (LGMWAS) after a
    first training.

    y_phot: (N, K) photometric absolute magnitudes (the labels, NaN where unknown); y_spec: (N, K)
    the networks' predictions; names: the K band labels (with ``cfg.mg_label`` for the binary rule
    and the faint-star exemption). Returns (drop_star (N,) bool: binaries, removed from every
    band; drop_band (N, K) bool: clipped in that band; notes).
    """
    set_name = cfg.magnitude_set
    g = names.index(cfg.mg_label) if cfg.mg_label in names else None
    notes = []
    drop_star = np.zeros(len(y_phot), bool)
    if cfg.binary_removal and g is None:
        notes.append(f"{set_name}: no binary removal: [curation] mg_label {cfg.mg_label!r} is not one of its labels")
    elif cfg.binary_removal:
        drop_star = (y_phot[:, g] - y_spec[:, g]) < -cfg.binary_mag
        notes.append(f"{set_name}: {int(drop_star.sum())} likely binaries (M_G,phot brighter than M_G,spec by > {cfg.binary_mag} mag) removed")
    drop_band = np.zeros(y_phot.shape, bool)
    if cfg.clip_sigma > 0:
        r = y_phot - y_spec
        for k in range(len(names)):
            ok = np.isfinite(r[:, k]) & ~drop_star
            if ok.sum() < 3:
                continue
            s = np.std(r[ok, k], ddof=1)
            mu = np.mean(r[ok, k])
            faint = (y_phot[:, g] > cfg.clip_keep_mg_above) if g is not None else np.zeros(len(r), bool)
            drop_band[:, k] = ok & (np.abs(r[:, k] - mu) > cfg.clip_sigma * s) & ~faint
        notes.append(f"{set_name}: {cfg.clip_sigma}-sigma clipping removed {int(drop_band.sum())} star-band values "
                     f"(stars with M_G > {cfg.clip_keep_mg_above} kept)")
    return drop_star, drop_band, notes
