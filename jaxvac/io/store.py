"""The packed spectra store: read the FITS files once, run the catalogue from memory-mapped shards.

``pack(inputs, out)`` keeps, per spectrum, only the global-grid pixels the normalisation can
read -- each window widened by the median-filter margin and by the largest rest-frame shift
(``Layout.max_abs_rv``), the two ranges laid end to end (2,250 of the 3,909 pixels for DR8) --
as float32 flux and ivar, plus the reader's metadata. ``jaxvac run --input STORE`` then runs
the kernels on a *packed* Layout (the same windows moved into the packed coordinates); because
resampling reads only pixels inside the stored ranges, the catalogue is bit-identical to the one
made from the FITS files (tests/test_store.py proves it on real files).

Layout of a store directory::

    pack.json                 what is being packed (grid, windows, shard size, inputs digest);
                              a rerun with other inputs or another geometry is refused
    inputs.txt                the input paths in order, one a line (positions = catalogue indices)
    shards/000042/            inputs [42 N, 43 N) with N = shard_size, whatever the worker count:
        flux.npy, ivar.npy    float32 (n, P): P packed pixels; flux = ivar = 0 where not good
        meta.npy              (n,) META_DTYPE less "path", strings as bytes (path from inputs.txt)
        index.npy             int64 (n,) positions of the rows in inputs.txt
        rejects.json          [[position, reason], ...] files the reader rejected
        shard.json            CRC-32 of each of the five files above
    manifest.json             written last: everything of pack.json, the CRC-32 of every shard
                              file, counts, bytes per spectrum; its presence marks a complete store

Bad pixels: flux and ivar are stored as 0 where the reader's ``good`` is False, and the reader
of the store uses ``good = ivar > 0``. The kernels use a pixel only when it is good, finite and
has ivar > 0 (``jaxvac.kernels.restframe``), and read values only at such pixels, so this encoding gives
the kernels exactly the information of (flux, ivar, good).

Crash safety: a shard is written to ``shards/.tmp-*`` and renamed (atomic), so after a SIGKILL a
shard is complete or absent; a rerun sweeps temporaries and packs only the missing shards. The
bytes of every file are a function of the inputs only, so an interrupted-and-resumed pack equals
an uninterrupted one, for any number of reader processes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import mmap
import os
import queue
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

try:
    from zlib_ng import zlib_ng as _zlib  # the same CRC-32 as zlib's, 2-4x faster
except ImportError:  # pragma: no cover
    import zlib as _zlib

import jaxvac
from jaxvac.io.records import META_DTYPE, Reject, empty_meta

__all__ = ["FORMAT", "PackSummary", "Store", "StoreError", "is_store", "open_store", "pack", "pack_ranges",
           "packed_layout"]

FORMAT = "jaxvac-store/2"  # 2: CRC-32 checksums (1 had SHA-256)
SHARD_FILES = ("flux.npy", "ivar.npy", "meta.npy", "index.npy", "rejects.json")
BAD_SHARD = "bad shard: checksum mismatch"
# The stored metadata: META_DTYPE without the path (it is in inputs.txt), strings as bytes.
STORED_META_DTYPE = np.dtype([(n, f"S{META_DTYPE[n].itemsize // 4}" if META_DTYPE[n].kind == "U" else META_DTYPE[n])
                              for n in META_DTYPE.names if n != "path"])


class StoreError(ValueError):
    """A store that cannot be written or read as asked (mismatch, damage, incomplete)."""


# ----------------------------------------------------------------------------- geometry
def pack_ranges(layout) -> tuple[tuple[int, int], ...]:
    """Global-grid pixel ranges [a, b) a store keeps for ``layout``, one per window.

    a = j0 - margin - S, b = j1 + margin + S with S = ceil(log10(1 + max_abs_rv / c) / log_step) + 1:
    linear interpolation at a shift s, |s| <= S - 1, reads pixels floor(j + s) and floor(j + s) + 1.
    """
    shift = math.ceil(math.log10(1.0 + layout.max_abs_rv / layout.c_kms) / layout.log_step) + 1
    ranges = tuple((j0 - shift, j1 + shift) for j0, j1 in layout.extended)
    if ranges[0][0] < 0 or ranges[-1][1] > layout.npix_in or any(b > a for (_, b), (a, _) in zip(ranges, ranges[1:])):
        raise StoreError(f"the windows {layout.windows} widened by the margin {layout.margin} and the rv room "
                         f"{shift} px must lie on the input grid [0, {layout.npix_in}) without overlapping, "
                         f"got {ranges}.")
    return ranges


def packed_layout(layout):
    """The Layout on the packed pixels: same recipe, windows moved into the concatenated ranges."""
    ranges = pack_ranges(layout)
    starts = np.cumsum([0] + [b - a for a, b in ranges])
    windows = tuple((int(s + j0 - a), int(s + j1 - a)) for s, (a, _), (j0, j1) in zip(starts, ranges, layout.windows))
    out = layout._replace(npix_in=int(starts[-1]), windows=windows)
    out.check()
    return out


def _columns(ranges) -> np.ndarray:
    return np.concatenate([np.arange(a, b) for a, b in ranges])


def _gather(a: np.ndarray, rows, ranges) -> np.ndarray:
    """a[rows] restricted to the pixel ranges, laid end to end: (n, sum of b - a), a new array."""
    return np.concatenate([a[rows, lo:hi] for lo, hi in ranges], axis=1)


def _geometry(layout) -> dict:
    return {"npix_global": layout.npix_in, "log_step": layout.log_step, "windows": [list(w) for w in layout.windows],
            "margin": layout.margin, "width": layout.width, "max_abs_rv_kms": layout.max_abs_rv,
            "c_kms": layout.c_kms, "pixel_ranges": [list(r) for r in pack_ranges(layout)]}


def _dr8_layout():
    from jaxvac.preprocess import LAYOUT

    return LAYOUT


# ----------------------------------------------------------------------------- files
def _checksum(path: Path) -> str:
    """CRC-32 of a file as 8 hex digits, computed from a memory map (no copy, the GIL released).

    A checksum against damage (bit rot, truncation, a bad copy), not against tampering: zlib-ng's
    CRC-32 runs at ~4 GB/s a core here, 3.7x SHA-256, which cost ~14 us of CPU per spectrum of
    every packed run (bench_pipeline, packed_host_only)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return f"{_zlib.crc32(b''):08x}"
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return f"{_zlib.crc32(m):08x}"


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _shard_name(k: int) -> str:
    return f"{k:06d}"


def _to_stored_meta(meta: np.ndarray) -> np.ndarray:
    out = np.zeros(len(meta), STORED_META_DTYPE)
    for n in STORED_META_DTYPE.names:
        out[n] = np.char.encode(meta[n], "utf-8") if meta.dtype[n].kind == "U" else meta[n]
    return out


def _from_stored_meta(stored: np.ndarray, paths: Sequence[str], index: np.ndarray) -> np.ndarray:
    out = np.zeros(len(stored), META_DTYPE)
    for n in STORED_META_DTYPE.names:
        if STORED_META_DTYPE[n].kind != "S":
            out[n] = stored[n]
            continue
        try:
            out[n] = stored[n].astype(META_DTYPE[n])  # ASCII (FITS header values): decoded in C
        except UnicodeDecodeError:
            out[n] = np.char.decode(stored[n], "utf-8")
    out["path"] = [paths[i] for i in index.tolist()]
    return out


def _write_shard(root: Path, k: int, flux, ivar, meta, index, rejects: list[tuple[int, str]]) -> None:
    """Write shard k to a temporary directory, then rename it into place (atomic)."""
    final = root / "shards" / _shard_name(k)
    tmp = root / "shards" / f".tmp-{_shard_name(k)}-{uuid.uuid4().hex}"
    tmp.mkdir(parents=True)
    np.save(tmp / "flux.npy", flux)
    np.save(tmp / "ivar.npy", ivar)
    np.save(tmp / "meta.npy", meta)
    np.save(tmp / "index.npy", index)
    (tmp / "rejects.json").write_text(json.dumps([[int(i), r] for i, r in rejects]))
    sums = {name: _checksum(tmp / name) for name in SHARD_FILES}
    (tmp / "shard.json").write_text(json.dumps({"spectra": len(index), "rejects": len(rejects), "crc32": sums},
                                               indent=1, sort_keys=True))
    for name in (*SHARD_FILES, "shard.json"):
        with open(tmp / name, "rb") as f:
            os.fsync(f.fileno())
    try:
        os.replace(tmp, final)
    except OSError:  # already there (two packs of one store at once): keep the first, same bytes
        shutil.rmtree(tmp, ignore_errors=True)
        if not (final / "shard.json").is_file():
            raise


# ----------------------------------------------------------------------------- pack
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
    from jaxvac.run.parts import inputs_digest

    t0 = time.perf_counter()
    if not (isinstance(shard_size, int) and shard_size >= 1):
        raise StoreError(f"shard_size must be a positive number of files, got {shard_size!r}.")
    layout = _dr8_layout()
    ranges = pack_ranges(layout)
    cols = _columns(ranges)
    root = Path(out)
    paths = resolve_inputs(inputs)
    if any("\n" in p for p in paths):
        raise StoreError("an input path contains a newline; inputs.txt holds one path a line. Rename the file.")
    n_shards = -(-len(paths) // shard_size)
    ident = {"format": FORMAT, "geometry": _geometry(layout), "shard_size": shard_size, "n_inputs": len(paths),
             "inputs_sha256": inputs_digest(paths), "jaxvac": jaxvac.__version__}
    (root / "shards").mkdir(parents=True, exist_ok=True)
    for tmp in root.glob(".*.tmp-*"):  # a JSON file being written when a run was killed
        tmp.unlink(missing_ok=True)
    if (root / "pack.json").is_file():
        old = json.loads((root / "pack.json").read_text())
        if old != ident:
            diff = sorted(k for k in set(old) | set(ident) if old.get(k) != ident.get(k))
            raise StoreError(f"{root} holds a store of other inputs or settings (differs in: {', '.join(diff)}); "
                             f"delete it or choose another --out.")
    else:
        (root / "inputs.txt").write_text("".join(p + "\n" for p in paths))
        _write_json(root / "pack.json", ident)
    for tmp in (root / "shards").glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
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
    manifest = {**ident, "inputs_file": "inputs.txt", "inputs_txt_crc32": _checksum(root / "inputs.txt"),
                "packed_pixels": len(cols), "spectra": spectra, "rejects": rejects, "shard_bytes": nbytes,
                "shards": shards}
    _write_json(root / "manifest.json", manifest)
    summary.spectra, summary.rejects, summary.bytes = spectra, rejects, nbytes
    summary.wall_s = time.perf_counter() - t0
    return summary


# ----------------------------------------------------------------------------- read
def is_store(inputs) -> bool:
    """True when ``inputs`` (a path or a one-item list) is a store directory."""
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if len(items) != 1 or not isinstance(items[0], (str, os.PathLike)) or not Path(items[0]).is_dir():
        return False
    return (Path(items[0]) / "manifest.json").is_file() or (Path(items[0]) / "pack.json").is_file()


def open_store(inputs) -> Store | None:
    """The Store named by ``inputs`` (a path or a one-item list), or None when it is not a store."""
    if not is_store(inputs):
        return None
    item = inputs if isinstance(inputs, (str, os.PathLike)) else list(inputs)[0]
    return Store(item)


class Store:
    """A complete packed store: its input list, the packed Layout and batch streams over it."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        if not (self.dir / "manifest.json").is_file():
            raise StoreError(f"{self.dir} is an incomplete store (no manifest.json): `jaxvac pack` did not finish; "
                             f"rerun the same `jaxvac pack` command to complete it.")
        self.manifest = json.loads((self.dir / "manifest.json").read_text())
        if self.manifest.get("format") != FORMAT:
            raise StoreError(f"{self.dir} has format {self.manifest.get('format')!r}; this jaxvac reads {FORMAT!r}. "
                             f"Re-pack the spectra with this jaxvac (`jaxvac pack --input ... --out NEW_STORE`).")
        layout = _dr8_layout()
        if self.manifest["geometry"] != _geometry(layout):
            raise StoreError(f"{self.dir} was packed for the geometry {self.manifest['geometry']}, but this jaxvac "
                             f"uses {_geometry(layout)}; re-pack the spectra with `jaxvac pack`.")
        if _checksum(self.dir / "inputs.txt") != self.manifest["inputs_txt_crc32"]:
            raise StoreError(f"{self.dir / 'inputs.txt'} fails its checksum: the store is damaged; re-pack it.")
        self.paths = (self.dir / "inputs.txt").read_text().split("\n")[:-1]
        self.layout = packed_layout(layout)
        self.shard_size = self.manifest["shard_size"]

    def batches(self, *, batch_size: int, shard: tuple[int, int] = (0, 1), skip=(), on_bad_shard: str = "stop",
                prefetch: int = 2, progress: bool | None = None) -> PackedStream:
        """Fixed-size batches of the packed spectra in input order; see :class:`PackedStream`."""
        return PackedStream(self, batch_size=batch_size, shard=shard, skip=skip, on_bad_shard=on_bad_shard,
                            prefetch=prefetch, progress=progress)


class PackedStream:
    """Batches from a store, read ahead in a thread (shard checksums checked there too).

    Each item is a ``jaxvac.io.stream.Batch`` with flux, ivar float32 (B, P) on the packed
    pixels, ``good`` None (good = ivar > 0, computed on the device), meta of META_DTYPE, and
    index, rejects, reject_index as for the FITS stream (positions in the store's input list).
    shard (i, n) and skip have the meaning of ``jaxvac.io.stream.stream_batches``.
    on_bad_shard: "stop" raises StoreError naming the shard whose checksum fails; "skip" turns
    its inputs into rejects with reason "bad shard: checksum mismatch (...)".
    progress: a bar with spectra/s, rejects and ETA on stderr (None: when it is a terminal).
    """

    def __init__(self, store: Store, *, batch_size, shard, skip, on_bad_shard, prefetch, progress=None):
        from jaxvac.io.stream import shard_bounds

        if on_bad_shard not in ("stop", "skip"):
            raise StoreError(f"on_bad_shard must be 'stop' or 'skip', got {on_bad_shard!r}.")
        self.store, self.batch_size, self.on_bad_shard = store, int(batch_size), on_bad_shard
        self.start, self.stop = shard_bounds(len(store.paths), shard)
        self.skip = np.sort(np.fromiter((int(i) for i in skip), np.int64))
        self.bad_shards: list[str] = []
        self.progress = progress
        self._queue: queue.Queue = queue.Queue(maxsize=prefetch)
        self._halt = threading.Event()
        self._thread = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self) -> None:
        self._halt.set()
        if self._thread is not None:
            while self._thread.is_alive():
                try:
                    self._queue.get(timeout=0.05)
                except queue.Empty:
                    pass
            self._thread.join()

    @property
    def n_selected(self) -> int:
        """Inputs this stream covers: its share of the store, less those skipped."""
        skipped = np.count_nonzero((self.skip >= self.start) & (self.skip < self.stop))
        return self.stop - self.start - int(skipped)

    def __iter__(self) -> Iterator:
        from jaxvac.display.progress import FileProgress, progress_wanted

        self._thread = threading.Thread(target=self._produce, name="jaxvac-store-prefetch", daemon=True)
        self._thread.start()
        with FileProgress(self.n_selected, enabled=progress_wanted(self.progress), description="packed",
                          unit="spectra") as bar:
            while True:
                kind, item = self._queue.get()
                if kind == "batch":
                    bar.advance(item.n_valid + len(item.rejects), len(item.rejects))
                    yield item
                elif kind == "error":
                    raise item
                else:
                    return

    def _put(self, item) -> bool:
        while not self._halt.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def _produce(self) -> None:
        try:
            for batch in self._batches():
                if not self._put(("batch", batch)):
                    return
            self._put(("end", None))
        except BaseException as e:  # handed to the consumer, raised there
            self._put(("error", e))

    def _verify(self, entry: dict) -> str | None:
        """None when every file of the shard matches the manifest, else what failed."""
        d = self.store.dir / entry["name"]
        for name, want in entry["crc32"].items():
            try:
                got = _checksum(d / name)
            except OSError as e:
                return f"{d / name}: {e.strerror or e}"
            if got != want:
                return f"{d / name}: crc32 {got} != manifest {want}"
        return None

    def _batches(self):
        from jaxvac.io.stream import Batch

        store, B = self.store, self.batch_size
        P = store.layout.npix_in
        buf = {"flux": np.zeros((B, P), np.float32), "ivar": np.zeros((B, P), np.float32), "meta": [], "index": [], "n": 0}
        pending: list[tuple[int, Reject]] = []

        def emit():
            n = buf["n"]
            meta = empty_meta(B)
            if n:
                meta[:n] = np.concatenate(buf["meta"])
            index = np.full(B, -1, np.int64)
            index[:n] = np.concatenate(buf["index"]) if n else []
            valid = np.arange(B) < n
            buf["flux"][n:], buf["ivar"][n:] = 0, 0
            batch = Batch(buf["flux"], buf["ivar"], None, meta, valid, index, tuple(r for _, r in pending),
                          np.array([i for i, _ in pending], np.int64))
            buf.update(flux=np.zeros((B, P), np.float32), ivar=np.zeros((B, P), np.float32), meta=[], index=[], n=0)
            pending.clear()
            return batch

        def wanted(positions):
            keep = (positions >= self.start) & (positions < self.stop)
            return keep & ~np.isin(positions, self.skip) if len(self.skip) else keep

        entries = [e for e in store.manifest["shards"]
                   if max(e["first"], self.start) < min(e["stop"], self.stop)
                   and wanted(np.arange(max(e["first"], self.start), min(e["stop"], self.stop))).any()]
        # Checksums of the next few shards are computed in threads (crc32 releases the GIL),
        # ahead of their use: the files are then in the page cache when they are memory-mapped.
        ahead = max(2, min(8, os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="jaxvac-store-crc") as pool:
            checks = [pool.submit(self._verify, e) for e in entries[:ahead]]
            for k, entry in enumerate(entries):
                if k + ahead < len(entries):
                    checks.append(pool.submit(self._verify, entries[k + ahead]))
                if self._halt.is_set():
                    return
                yield from self._shard_batches(entry, checks[k].result(), wanted, buf, pending, emit)
        if buf["n"] or pending:
            yield emit()

    def _shard_batches(self, entry, problem, wanted, buf, pending, emit):
        """Rows and rejects of one shard into the batch buffer; yields every batch filled."""
        store, B = self.store, self.batch_size
        lo, hi = max(entry["first"], self.start), min(entry["stop"], self.stop)
        if problem is not None:
            path = store.dir / entry["name"]
            if self.on_bad_shard == "stop":
                raise StoreError(f"shard {path} is damaged ({problem}); it is never read as data. Re-pack it "
                                 f"(delete {path} and rerun the same `jaxvac pack`), or run with "
                                 f"--on-bad-shard skip to report its inputs as rejects.")
            self.bad_shards.append(str(path))
            positions = np.arange(lo, hi)
            for i in positions[wanted(positions)].tolist():
                pending.append((i, Reject(store.paths[i], f"{BAD_SHARD} ({path})")))
            return
        d = store.dir / entry["name"]
        for i, reason in json.loads((d / "rejects.json").read_text()):
            if wanted(np.array([i]))[0]:
                pending.append((i, Reject(store.paths[i], reason)))
        index = np.load(d / "index.npy")
        rows = np.flatnonzero(wanted(index))
        if not len(rows):
            return
        flux, ivar = np.load(d / "flux.npy", mmap_mode="r"), np.load(d / "ivar.npy", mmap_mode="r")
        meta = np.load(d / "meta.npy", mmap_mode="r")
        contiguous = rows[-1] - rows[0] + 1 == len(rows)
        pos = 0
        while pos < len(rows):
            take = min(B - buf["n"], len(rows) - pos)
            sel = slice(rows[pos], rows[pos] + take) if contiguous else rows[pos:pos + take]
            n = buf["n"]
            buf["flux"][n:n + take] = flux[sel]
            buf["ivar"][n:n + take] = ivar[sel]
            buf["meta"].append(_from_stored_meta(np.asarray(meta[sel]), store.paths, index[sel]))
            buf["index"].append(index[sel])
            buf["n"] += take
            pos += take
            if buf["n"] == B:
                yield emit()
