"""The packed spectra store, read side: run the catalogue from memory-mapped shards.

A store (written once by ``jaxvac.io.pack.pack``, ``jaxvac pack``) keeps, per spectrum, only the
global-grid pixels the normalisation can read -- each window widened by the median-filter margin
and by the largest rest-frame shift (``jaxvac.kernels.layout.pack_ranges``), the ranges laid end
to end (2,250 of the 3,909 pixels for DR8) -- as float32 flux and ivar, plus the reader's
metadata. ``jaxvac run --input STORE`` then runs the kernels on the *packed* Layout
(``jaxvac.kernels.layout.packed_layout``: the same windows moved into the packed coordinates);
because resampling reads only pixels inside the stored ranges, the catalogue is bit-identical to
the one made from the FITS files (tests/test_store.py proves it on real files).

Layout of a store directory::

    pack.json                 what is being packed (grid, windows, shard size, inputs digest);
                              a rerun with other inputs or another geometry is refused
    inputs.txt                the input paths in order, one a line (positions = catalogue indices)
    shards/000042/            inputs [42 N, 43 N) with N = shard_size, whatever the worker count:
        flux.npy, ivar.npy    float32 (n, P): P packed pixels; flux = ivar = 0 where not good
        meta.npy              (n,) STORED_META_DTYPE: META_DTYPE less "path", strings as bytes
        index.npy             int64 (n,) positions of the rows in inputs.txt
        rejects.json          [[position, reason], ...] files the reader rejected
        shard.json            CRC-32 of each of the five files above
    manifest.json             written last: everything of pack.json, the CRC-32 of every shard
                              file, counts, bytes per spectrum; its presence marks a complete store

Bad pixels: flux and ivar are stored as 0 where the reader's ``good`` is False, and the reader
of the store uses ``good = ivar > 0``. The kernels use a pixel only when it is good, finite and
has ivar > 0 (``jaxvac.kernels.restframe``), and read values only at such pixels, so this encoding
gives the kernels exactly the information of (flux, ivar, good).

Every shard file is checked against its CRC-32 (:func:`checksum`) before it is read as data.
"""

from __future__ import annotations

import json
import mmap
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

try:
    from zlib_ng import zlib_ng as _zlib  # the same CRC-32 as zlib's, 2-4x faster
except ImportError:  # pragma: no cover
    import zlib as _zlib

from jaxvac.errors import JaxvacError
from jaxvac.io.records import META_DTYPE, Reject, empty_meta

__all__ = ["FORMAT", "SHARD_FILES", "STORED_META_DTYPE", "PackedStream", "Store", "StoreError", "checksum", "geometry",
           "is_store", "open_store"]

FORMAT = "jaxvac-store/2"  # 2: CRC-32 checksums (1 had SHA-256)
SHARD_FILES = ("flux.npy", "ivar.npy", "meta.npy", "index.npy", "rejects.json")  # checksummed, in shard.json
BAD_SHARD = "bad shard: checksum mismatch"
# The stored metadata: META_DTYPE without the path (it is in inputs.txt), strings as bytes.
STORED_META_DTYPE = np.dtype([(n, f"S{META_DTYPE[n].itemsize // 4}" if META_DTYPE[n].kind == "U" else META_DTYPE[n])
                              for n in META_DTYPE.names if n != "path"])


class StoreError(ValueError, JaxvacError):
    """A store that cannot be written or read as asked (mismatch, damage, incomplete)."""


def checksum(path: Path) -> str:
    """CRC-32 of a file as 8 hex digits, computed from a memory map (no copy, the GIL released).

    A checksum against damage (bit rot, truncation, a bad copy), not against tampering: zlib-ng's
    CRC-32 runs at ~4 GB/s a core here, 3.7x SHA-256, which cost ~14 us of CPU per spectrum of
    every packed run (bench_pipeline, packed_host_only)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return f"{_zlib.crc32(b''):08x}"
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return f"{_zlib.crc32(m):08x}"


def geometry(layout) -> dict:
    """What a store's bytes depend on, for ``layout`` (a global-grid Layout): recorded at pack
    time in pack.json and manifest.json, compared when the store is opened."""
    from jaxvac.kernels.layout import pack_ranges

    return {"npix_global": layout.npix_in, "log_step": layout.log_step, "windows": [list(w) for w in layout.windows],
            "margin": layout.margin, "width": layout.width, "max_abs_rv_kms": layout.max_abs_rv,
            "c_kms": layout.c_kms, "pixel_ranges": [list(r) for r in pack_ranges(layout)]}


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
        from jaxvac.kernels.layout import packed_layout
        from jaxvac.preprocess import LAYOUT

        if self.manifest["geometry"] != geometry(LAYOUT):
            raise StoreError(f"{self.dir} was packed for the geometry {self.manifest['geometry']}, but this jaxvac "
                             f"uses {geometry(LAYOUT)}; re-pack the spectra with `jaxvac pack`.")
        if checksum(self.dir / "inputs.txt") != self.manifest["inputs_txt_crc32"]:
            raise StoreError(f"{self.dir / 'inputs.txt'} fails its checksum: the store is damaged; re-pack it.")
        self.paths = (self.dir / "inputs.txt").read_text().split("\n")[:-1]
        self.layout = packed_layout(LAYOUT)
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
                got = checksum(d / name)
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
