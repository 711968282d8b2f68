"""The packed spectra store, write side: read the FITS files once into a store (``jaxvac pack``).

``pack(inputs, out)`` writes the store described in ``jaxvac.io.store`` (its format, the pixels
kept, the bad-pixel encoding) and returns a :class:`PackSummary`.

Crash safety: a shard is written to a temporary directory beside its place
(``jaxvac.io.atomic.temporary_name``), its files flushed to disk, and the directory renamed
as a whole (atomic), so after a SIGKILL a shard is complete or absent; the JSON files are written
with ``jaxvac.io.atomic.atomic_write``. A rerun removes the temporaries and packs only the missing
shards. The bytes of every file are a function of the inputs only, so an interrupted-and-resumed
pack equals an uninterrupted one, for any number of reader processes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

import jaxvac
from jaxvac.io import atomic
from jaxvac.io.store import FORMAT, SHARD_FILES, STORED_META_DTYPE, StoreError, checksum, geometry

__all__ = ["PackSummary", "pack"]


def _columns(ranges) -> np.ndarray:
    """Global-grid pixel indices of the ranges [a, b), laid end to end: the store's columns."""
    return np.concatenate([np.arange(a, b) for a, b in ranges])


def _gather(a: np.ndarray, rows, ranges) -> np.ndarray:
    """a[rows] restricted to the pixel ranges, laid end to end: (n, sum of b - a), a new array."""
    return np.concatenate([a[rows, lo:hi] for lo, hi in ranges], axis=1)


def _write_json(path: Path, obj) -> None:
    atomic.atomic_write(path, json.dumps(obj, indent=1, sort_keys=True))


def _shard_name(k: int) -> str:
    return f"{k:06d}"


def _to_stored_meta(meta: np.ndarray) -> np.ndarray:
    out = np.zeros(len(meta), STORED_META_DTYPE)
    for n in STORED_META_DTYPE.names:
        out[n] = np.char.encode(meta[n], "utf-8") if meta.dtype[n].kind == "U" else meta[n]
    return out


def _remove_temporary_shards(shards: Path) -> None:
    """Remove shard directories a killed pack left half-written (``atomic.sweep`` removes files only)."""
    for tmp in shards.glob(f".*{atomic.TMP_MARK}*"):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)


def _write_shard(root: Path, k: int, flux, ivar, meta, index, rejects: list[tuple[int, str]]) -> None:
    """Write shard k to a temporary directory, then rename it into place as a whole (atomic)."""
    final = root / "shards" / _shard_name(k)
    tmp = atomic.temporary_name(final)
    tmp.mkdir(parents=True)
    try:
        np.save(tmp / "flux.npy", flux)
        np.save(tmp / "ivar.npy", ivar)
        np.save(tmp / "meta.npy", meta)
        np.save(tmp / "index.npy", index)
        (tmp / "rejects.json").write_text(json.dumps([[int(i), r] for i, r in rejects]))
        sums = {name: checksum(tmp / name) for name in SHARD_FILES}
        (tmp / "shard.json").write_text(json.dumps({"spectra": len(index), "rejects": len(rejects), "crc32": sums},
                                                   indent=1, sort_keys=True))
        for name in (*SHARD_FILES, "shard.json"):
            with open(tmp / name, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, final)
    except OSError:  # already there (two packs of one store at once): keep the first, same bytes
        if not (final / "shard.json").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclasses.dataclass
class PackSummary:
    """What a pack did."""

    store: str = ""
    inputs: int = 0
    shards: int = 0
    shards_done_before: int = 0
    spectra: int = 0
    rejects: int = 0
    bytes: int = 0
    wall_s: float = 0.0

    @property
    def bytes_per_spectrum(self) -> float:
        return self.bytes / self.spectra if self.spectra else float("nan")

    def lines(self) -> list[str]:
        return [f"store: {self.store}",
                f"inputs: {self.inputs} files in {self.shards} shards ({self.shards_done_before} done before)",
                f"spectra: {self.spectra}; rejects: {self.rejects}",
                f"size: {self.bytes / 1e6:.1f} MB, {self.bytes_per_spectrum:.0f} bytes per spectrum",
                f"wall: {self.wall_s:.2f} s"]


def pack(inputs, out: str | Path, *, shard_size: int = 4096, workers: int | None = None,
         progress: bool | None = None) -> PackSummary:
    """Read the spectra ``inputs`` once and write the store ``out`` (resumable: rerun to continue).

    inputs: anything ``jaxvac.io.inputs.resolve_inputs`` takes.
    shard_size: input files per shard (the last shard holds the rest).
    workers: reader processes (``jaxvac.io.stream``); 0 reads in this process; None: one per CPU.
    Returns a PackSummary; the store is complete once ``out/manifest.json`` exists.
    """
    from jaxvac.io.inputs import resolve_inputs
    from jaxvac.io.stream import stream_batches
    from jaxvac.kernels.layout import pack_ranges
    from jaxvac.preprocess import LAYOUT
    from jaxvac.run.parts import inputs_digest

    t0 = time.perf_counter()
    if not (isinstance(shard_size, int) and shard_size >= 1):
        raise StoreError(f"shard_size must be a positive number of files, got {shard_size!r}.")
    ranges = pack_ranges(LAYOUT)
    cols = _columns(ranges)
    root = Path(out)
    paths = resolve_inputs(inputs)
    if any("\n" in p for p in paths):
        raise StoreError("an input path contains a newline; inputs.txt holds one path a line. Rename the file.")
    n_shards = -(-len(paths) // shard_size)
    ident = {"format": FORMAT, "geometry": geometry(LAYOUT), "shard_size": shard_size, "n_inputs": len(paths),
             "inputs_sha256": inputs_digest(paths), "jaxvac": jaxvac.__version__}
    (root / "shards").mkdir(parents=True, exist_ok=True)
    atomic.sweep(root)  # a JSON file being written when a run was killed
    if (root / "pack.json").is_file():
        old = json.loads((root / "pack.json").read_text())
        if old != ident:
            diff = sorted(k for k in set(old) | set(ident) if old.get(k) != ident.get(k))
            raise StoreError(f"{root} holds a store of other inputs or settings (differs in: {', '.join(diff)}); "
                             f"delete it or choose another --out.")
    else:
        atomic.atomic_write(root / "inputs.txt", "".join(p + "\n" for p in paths))
        _write_json(root / "pack.json", ident)
    _remove_temporary_shards(root / "shards")
    finished = {k for k in range(n_shards) if (root / "shards" / _shard_name(k) / "shard.json").is_file()}
    summary = PackSummary(store=str(root), inputs=len(paths), shards=n_shards, shards_done_before=len(finished))
    skip = np.concatenate([np.arange(k * shard_size, min((k + 1) * shard_size, len(paths))) for k in sorted(finished)]
                          ) if finished else ()

    open_: dict[int, dict] = {}  # shard -> lists of rows and rejects being gathered
    unfinished = [k for k in range(n_shards) if k not in finished]  # ascending; written in this order

    def bucket(k):
        return open_.setdefault(k, {"flux": [], "ivar": [], "meta": [], "index": [], "rejects": []})

    def write_upto(last: int) -> None:
        """Write every gathered shard whose inputs all lie at or below position ``last``."""
        while unfinished and min((unfinished[0] + 1) * shard_size, len(paths)) - 1 <= last:
            k = unfinished.pop(0)
            b = bucket(k)
            del open_[k]
            cat = lambda xs, empty: np.concatenate(xs) if xs else empty  # noqa: E731
            _write_shard(root, k, cat(b["flux"], np.zeros((0, len(cols)), np.float32)),
                         cat(b["ivar"], np.zeros((0, len(cols)), np.float32)),
                         cat(b["meta"], np.zeros(0, STORED_META_DTYPE)), cat(b["index"], np.zeros(0, np.int64)),
                         b["rejects"])

    with stream_batches(paths, batch_size=min(shard_size, 256), workers=workers, skip=skip, progress=progress) as st:
        for batch in st:
            for i, r in zip(batch.reject_index.tolist(), batch.rejects):
                bucket(i // shard_size)["rejects"].append((i, r.reason))
            v = batch.valid
            if v.any():
                rows = slice(None) if v.all() else np.flatnonzero(v)
                good = _gather(batch.good, rows, ranges)
                flux, ivar = _gather(batch.flux, rows, ranges), _gather(batch.ivar, rows, ranges)
                np.copyto(flux, 0, where=~good)
                np.copyto(ivar, 0, where=~good)
                meta, index = _to_stored_meta(batch.meta[rows]), batch.index[rows]
                shard = index // shard_size
                for k in np.unique(shard).tolist():
                    s = shard == k
                    b = bucket(k)
                    b["flux"].append(flux[s]), b["ivar"].append(ivar[s])
                    b["meta"].append(meta[s]), b["index"].append(index[s])
                write_upto(int(index[-1]))
        write_upto(len(paths))

    shards, spectra, rejects, nbytes = [], 0, 0, 0
    for k in range(n_shards):
        d = root / "shards" / _shard_name(k)
        info = json.loads((d / "shard.json").read_text())
        shards.append({"name": f"shards/{_shard_name(k)}", "first": k * shard_size,
                       "stop": min((k + 1) * shard_size, len(paths)), **info})
        spectra += info["spectra"]
        rejects += info["rejects"]
        nbytes += sum((d / n).stat().st_size for n in SHARD_FILES)
    manifest = {**ident, "inputs_file": "inputs.txt", "inputs_txt_crc32": checksum(root / "inputs.txt"),
                "packed_pixels": len(cols), "spectra": spectra, "rejects": rejects, "shard_bytes": nbytes,
                "shards": shards}
    _write_json(root / "manifest.json", manifest)
    summary.spectra, summary.rejects, summary.bytes = spectra, rejects, nbytes
    summary.wall_s = time.perf_counter() - t0
    return summary
