"""Stream spectra from many files as fixed-size batches, in input order, with bounded memory.

``stream_batches(paths, ...)`` reads the files with a pool of worker processes and yields
``Batch`` objects of exactly ``batch_size`` rows: flux, ivar and good pixels on the global grid,
the metadata table, a ``valid`` vector (False on the padding rows of the last batch) and each
row's position in ``paths``. Every file of the shard ends up either as a valid row or as a reject
carried by a batch: nothing disappears silently.

How it works. The shard's files are cut into chunks of ``chunk_size`` consecutive files; a worker
reads a whole chunk and sends back packed NumPy arrays (one message per chunk, not per file). At
most ``prefetch`` chunks are submitted and not yet consumed, so memory does not grow with the
number of files. The main process takes the chunks back in submission order and fills the
batches, so the output is identical for any worker count, chunk size and prefetch depth.
Workers are started with 'forkserver' (Linux) or 'spawn': never a bare fork of a process that may
hold JAX's threads.

Failures. A reader that raises on a file turns that file into a reject naming the exception. If a
worker process dies (a crash in a C library, the out-of-memory killer), every chunk in flight is
re-read one file at a time in a fresh single-worker pool: the file that kills its worker again is
rejected with that reason and the stream goes on. If fresh workers cannot even start, StreamError
says so instead of hanging.

Sharding: shard ``(i, n)`` takes the i-th of n contiguous blocks of ``paths`` (sizes differ by at
most one file), so concatenating the outputs of shards 0..n-1 gives the input order back.
Resumption: ``skip`` holds paths (compared after ``os.path.abspath``) or integer positions already
processed; they are not read and are counted in the summary.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import pickle
import signal
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import shared_memory

import numpy as np

from jaxvac.constants import NPIX_GLOBAL
from jaxvac.errors import JaxvacError
from jaxvac.io.lifetime import exit_with, shm_name, sweep_shared_memory
from jaxvac.io.records import META_DTYPE, Reject, Spectrum, empty_meta

__all__ = ["Batch", "BatchStream", "StreamError", "StreamSummary", "auto_chunk_size", "stream_batches", "shard_bounds"]

WORKER_DIED = "worker process died while reading this file (a crash in the FITS library, or out of memory)"


class StreamError(RuntimeError, JaxvacError):
    """The stream cannot go on (workers cannot start, or a worker failed outside the reader)."""


@dataclasses.dataclass(frozen=True)
class Batch:
    """``B`` rows of spectra on the global grid (B = batch_size), in input order.

    flux, ivar: float32 (B, NPIX_GLOBAL); good: bool (B, NPIX_GLOBAL); meta: (B,) META_DTYPE;
    valid: bool (B,), False on padding rows (flux = ivar = 0, good = False, meta missing values);
    index: int64 (B,), the row's position in the ``paths`` given to ``stream_batches``, -1 on
    padding rows. rejects: the files rejected since the previous batch (in input order: every
    reject whose index is below that of this batch's last valid row, and at the end all the rest),
    with reject_index: int64 (len(rejects),) their positions in ``paths``.
    """

    flux: np.ndarray
    ivar: np.ndarray
    good: np.ndarray
    meta: np.ndarray
    valid: np.ndarray
    index: np.ndarray
    rejects: tuple[Reject, ...] = ()
    reject_index: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def n_valid(self) -> int:
        return int(self.valid.sum())


@dataclasses.dataclass
class StreamSummary:
    """Counts for one stream; complete once iteration has finished.

    inputs: files in ``paths``; selected: files in this shard; skipped: of those, already
    processed; read: spectra yielded; rejected: files rejected; reasons: rejects per reason (the
    reason's text up to its first ':'), with up to ``examples`` example paths each; batches: batches
    yielded; elapsed_s: wall time from the first to the last batch.
    """

    inputs: int = 0
    selected: int = 0
    skipped: int = 0
    read: int = 0
    rejected: int = 0
    reasons: dict[str, int] = dataclasses.field(default_factory=dict)
    examples: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    batches: int = 0
    elapsed_s: float = 0.0
    transport: str = ""  # how chunks came back: "in-process", "shared memory" or "pickle"

    @property
    def to_read(self) -> int:
        return self.selected - self.skipped

    @property
    def files_per_s(self) -> float:
        return (self.read + self.rejected) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def add_reject(self, reject: Reject, n_examples: int = 3) -> None:
        key = reject.reason.split(":", 1)[0].strip()
        self.rejected += 1
        self.reasons[key] = self.reasons.get(key, 0) + 1
        ex = self.examples.setdefault(key, [])
        if len(ex) < n_examples:
            ex.append(reject.path)


def shard_bounds(n_files: int, shard: tuple[int, int]) -> tuple[int, int]:
    """[start, stop) of shard ``(i, n)`` of ``n_files``: the i-th of n contiguous blocks."""
    i, n = shard
    return i * n_files // n, (i + 1) * n_files // n


def stream_batches(
    paths: Sequence[str],
    *,
    batch_size: int = 1024,
    workers: int | None = None,
    shard: tuple[int, int] = (0, 1),
    skip: Iterable = (),
    chunk_size: int | None = None,
    prefetch: int | None = None,
    progress: bool | None = None,
    reader: Callable | None = None,
) -> BatchStream:
    """Read ``paths`` and iterate over fixed-size ``Batch`` objects in input order.

    paths: files to read, e.g. from ``jaxvac.io.inputs.resolve_inputs``; positions in this
        sequence are the batches' ``index``.
    batch_size: rows per batch (the last one is padded, ``valid`` False on padding).
    workers: reader processes; 0 reads in this process; None: one per usable CPU.
    shard: (i, n), take the i-th of n contiguous blocks of ``paths``.
    skip: paths or integer positions already processed (for resumption); not read.
    chunk_size: files per message to and from a worker; None: :func:`auto_chunk_size`.
    prefetch: chunks submitted and not yet consumed (bounds memory); None: 2 per worker.
    progress: draw a bar (files/s, rejects, ETA) on stderr when it is a terminal; False: never.
    reader: ``path -> Spectrum | Reject``, a module-level function when workers > 0 (it is sent
        to the workers by name); None: ``jaxvac.io.lamost.read_spectrum``.

    Returns a ``BatchStream``: iterate it once; its ``summary`` has the counts. Use it in a
    ``with`` block (or call ``close()``) to stop the workers when leaving the loop early.
    """
    return BatchStream(
        paths, batch_size=batch_size, workers=workers, shard=shard, skip=skip, chunk_size=chunk_size,
        prefetch=prefetch, progress=progress, reader=reader,
    )


def auto_chunk_size(n_files: int, workers: int) -> int:
    """Files per chunk when none is given: 128, fewer for a small shard so that each worker gets
    about four chunks, and at least 8.

    Each chunk costs the main process a message, a future and a slot hand-over: on the 2-core VM,
    going from 32 to 128 files per chunk cut the main process's CPU from 54 to 24 us a file and
    raised the stream's rate by 15% (bench_stream --chunk); beyond 128 little is gained.
    """
    return max(8, min(128, -(-n_files // (4 * max(workers, 1)))))


class BatchStream:
    """An iterable of ``Batch`` objects over a list of files; see ``stream_batches``."""

    def __init__(self, paths, *, batch_size, workers, shard, skip, chunk_size, prefetch, progress, reader):
        if isinstance(paths, (str, os.PathLike)):
            raise TypeError(f"paths must be a sequence of file paths, got the single path {os.fspath(paths)!r}; use resolve_inputs() to expand a directory, glob or list.")
        self.paths = paths if isinstance(paths, Sequence) else list(paths)
        _check_int("batch_size", batch_size, 1)
        if chunk_size is not None:
            _check_int("chunk_size", chunk_size, 1)
        if workers is None:
            workers = _usable_cpus()
        _check_int("workers", workers, 0)
        if prefetch is None:
            prefetch = 2 * max(workers, 1)
        _check_int("prefetch", prefetch, 1)
        shard_ok = (isinstance(shard, Sequence) and len(shard) == 2
                    and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in shard)
                    and 0 <= shard[0] < shard[1])
        if not shard_ok:
            raise ValueError(f"shard must be a pair (i, n) of integers with 0 <= i < n, got {shard!r}.")
        if reader is None:
            from jaxvac.io.lamost import read_spectrum as reader
        if workers > 0:
            try:
                pickle.dumps(reader)
            except Exception as e:
                raise ValueError(
                    f"reader {reader!r} cannot be sent to worker processes ({e}); make it a module-level "
                    "function, or use workers=0 to read in this process."
                ) from None
        self.batch_size = int(batch_size)
        self.workers = int(workers)
        self.prefetch = int(prefetch)
        self.shard = (int(shard[0]), int(shard[1]))
        self.progress = progress
        self.reader = reader
        start, stop = shard_bounds(len(self.paths), self.shard)
        self._index = _not_skipped(self.paths, start, stop, skip)
        self.chunk_size = int(chunk_size) if chunk_size is not None else auto_chunk_size(len(self._index), workers)
        self.summary = StreamSummary(inputs=len(self.paths), selected=stop - start, skipped=(stop - start) - len(self._index))
        self._started = False
        self._gen = None

    @property
    def n_chunks(self) -> int:
        return -(-len(self._index) // self.chunk_size)

    def __iter__(self) -> Iterator[Batch]:
        if self._started:
            raise RuntimeError("A BatchStream can be iterated once; call stream_batches() again to re-read.")
        self._started = True
        self._gen = self._batches()
        return self._gen

    def close(self) -> None:
        """Stop the workers (when leaving the loop before the end)."""
        if self._gen is not None:
            self._gen.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- assembly -------------------------------------------------------------------------
    def _batches(self) -> Iterator[Batch]:
        from jaxvac.display.progress import FileProgress, progress_wanted

        B = self.batch_size
        s = self.summary
        t0 = time.perf_counter()
        rows = _Rows(B)
        pending: list[tuple[int, Reject]] = []
        with FileProgress(len(self._index), enabled=progress_wanted(self.progress)) as bar:
            for chunk in self._chunks():
                bar.advance(chunk.n_files, len(chunk.rejects))
                for r in chunk.rejects:
                    s.add_reject(r)
                rej_i = np.asarray(chunk.reject_index, np.int64)
                taken_rej = 0
                pos, n = 0, len(chunk.index)
                while pos < n:
                    take = min(B - rows.n, n - pos)
                    rows.put(chunk, pos, take)
                    pos += take
                    if rows.n == B:
                        last = chunk.index[pos - 1]
                        upto = int(np.searchsorted(rej_i, last))
                        pending.extend(zip(rej_i[taken_rej:upto].tolist(), chunk.rejects[taken_rej:upto]))
                        taken_rej = upto
                        yield self._emit(rows, pending, t0)
                        rows, pending = _Rows(B), []
                pending.extend(zip(rej_i[taken_rej:].tolist(), chunk.rejects[taken_rej:]))
            if rows.n or pending:
                yield self._emit(rows, pending, t0)
        s.elapsed_s = time.perf_counter() - t0

    def _emit(self, rows: _Rows, pending: list, t0: float) -> Batch:
        s = self.summary
        s.read += rows.n
        s.batches += 1
        s.elapsed_s = time.perf_counter() - t0
        return rows.batch(tuple(r for _, r in pending), np.array([i for i, _ in pending], np.int64))

    # -- reading ----------------------------------------------------------------------------
    def _chunk(self, k: int) -> tuple[list[str], np.ndarray]:
        idx = self._index[k * self.chunk_size : (k + 1) * self.chunk_size]
        return [os.fspath(self.paths[i]) for i in idx.tolist()], idx

    def _chunks(self) -> Iterator[_Chunk]:
        if self.workers == 0:
            self.summary.transport = "in-process"
            for k in range(self.n_chunks):
                yield _read_chunk(self.reader, *self._chunk(k))
            return
        yield from self._pooled_chunks()

    def _pooled_chunks(self) -> Iterator[_Chunk]:
        n_chunks = self.n_chunks
        futures: dict[int, tuple] = {}  # chunk -> (future, shared-memory slot or None)
        pool = None
        consumed = submitted = 0
        held = None  # the slot of the chunk the caller is working on
        # In flight: at most `prefetch` chunks, plus the one handed over -> prefetch + 1 slots.
        slots = _Slots.create(self.prefetch + 1, self.chunk_size) if n_chunks else None
        self.summary.transport = "shared memory" if slots else "pickle"

        def fill():  # keep `prefetch` chunks submitted and not yet consumed
            nonlocal submitted
            while submitted < n_chunks and submitted - consumed < self.prefetch:
                paths, idx = self._chunk(submitted)
                slot = slots.take() if slots else None
                try:
                    if slot is None:
                        fut = pool.submit(_read_chunk, self.reader, paths, idx)
                    else:
                        fut = pool.submit(_read_chunk_into, self.reader, paths, idx, slot, self.chunk_size)
                except BrokenProcessPool:
                    if slot is not None:
                        slots.give(slot)
                    return  # the next result() reports it
                futures[submitted] = (fut, slot)
                submitted += 1

        try:
            pool = self._new_pool(self.workers)
            while consumed < n_chunks:
                if held is not None:  # the caller has finished with the previous chunk
                    slots.give(held)
                    held = None
                fill()
                fut, slot = futures.pop(consumed, (None, None))
                try:
                    if fut is None:
                        raise BrokenProcessPool("the pool broke before this chunk was submitted")
                    result = fut.result()
                except BrokenProcessPool:
                    # Every chunk in flight is lost: re-read them one file at a time so that the
                    # file that kills a worker is found and rejected, then start a fresh pool.
                    pool.shutdown(wait=True, cancel_futures=True)
                    pool = None
                    lost_end = max(submitted, consumed + 1)
                    for lost_slot in [slot] + [futures.pop(k, (None, None))[1] for k in range(consumed, lost_end)]:
                        if lost_slot is not None:
                            slots.give(lost_slot)
                    for result in self._read_isolated(range(consumed, lost_end)):
                        consumed += 1
                        yield result
                    submitted = lost_end
                    pool = self._new_pool(self.workers)
                    continue
                except Exception as e:
                    paths, _ = self._chunk(consumed)
                    if slot is not None:
                        slots.give(slot)
                    raise StreamError(
                        f"a worker failed outside the reader while reading {len(paths)} files from {paths[0]!r} "
                        f"to {paths[-1]!r}: {type(e).__name__}: {e}. Re-run with workers=0 to see the traceback."
                    ) from e
                if slot is not None:
                    result, held = slots.unpack(result, slot), slot
                consumed += 1
                fill()  # before handing the chunk over: the workers read while the caller computes
                yield result
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            if slots is not None:
                slots.close()  # after the workers have stopped writing

    def _read_isolated(self, chunks: Iterable[int]) -> Iterator[_Chunk]:
        """Read chunks one file at a time in a single-worker pool, restarted after each crash."""
        pool = self._new_pool(1, check=True)
        try:
            for k in chunks:
                paths, idx = self._chunk(k)
                parts = []
                for p, i in zip(paths, idx.tolist()):
                    one = np.array([i], np.int64)
                    try:
                        parts.append(pool.submit(_read_chunk, self.reader, [p], one).result())
                    except BrokenProcessPool:
                        pool.shutdown(wait=True, cancel_futures=True)
                        pool = self._new_pool(1, check=True)
                        parts.append(_Chunk.of_rejects([p], one, [WORKER_DIED]))
                yield _Chunk.concat(parts)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _new_pool(self, workers: int, check: bool = False) -> ProcessPoolExecutor:
        """A pool of ``workers`` processes; ``check``: first make sure one can start and import the reader."""
        if "forkserver" in multiprocessing.get_all_start_methods():
            method = "forkserver"
            ctx = multiprocessing.get_context(method)
            # Modules the fork server imports once, so that each worker forked from it starts in
            # milliseconds instead of importing them again. (No effect once the server runs.)
            ctx.set_forkserver_preload(["__main__", "numpy", __name__, getattr(self.reader, "__module__", None) or __name__])
        else:
            method = "spawn"
            ctx = multiprocessing.get_context(method)
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                                   initargs=(os.getpid(),))
        if check:
            try:
                pool.submit(_ping, self.reader).result()
            except BrokenProcessPool:
                pool.shutdown(wait=True, cancel_futures=True)
                raise StreamError(
                    f"worker processes ('{method}' start method) die before reading any file. Check that "
                    f"the reader {self.reader!r} can be imported in a fresh Python process and that a script "
                    "starting a stream does so under `if __name__ == \"__main__\":` (see the traceback "
                    "above), or use workers=0."
                ) from None
        return pool


# -- worker side (module level so it pickles by name) ------------------------------------------
@dataclasses.dataclass
class _Chunk:
    """What a worker sends back for a chunk: the spectra packed, and the rejects."""

    n_files: int
    index: np.ndarray  # int64 (n,), positions of the spectra
    flux: np.ndarray  # float32 (n, NPIX_GLOBAL)
    ivar: np.ndarray
    good: np.ndarray  # bool (n, NPIX_GLOBAL)
    meta: np.ndarray  # (n,) META_DTYPE
    reject_index: np.ndarray  # int64 (r,)
    rejects: list[Reject]

    @classmethod
    def of_rejects(cls, paths, index, reasons) -> _Chunk:
        z = np.zeros((0, NPIX_GLOBAL), np.float32)
        return cls(len(paths), np.zeros(0, np.int64), z, z.copy(), np.zeros((0, NPIX_GLOBAL), bool),
                   empty_meta(0), np.asarray(index, np.int64), [Reject(p, r) for p, r in zip(paths, reasons)])

    @classmethod
    def concat(cls, parts: list[_Chunk]) -> _Chunk:
        return cls(
            sum(c.n_files for c in parts),
            np.concatenate([c.index for c in parts]),
            np.concatenate([c.flux for c in parts]),
            np.concatenate([c.ivar for c in parts]),
            np.concatenate([c.good for c in parts]),
            np.concatenate([c.meta for c in parts]),
            np.concatenate([c.reject_index for c in parts]),
            [r for c in parts for r in c.rejects],
        )


class _Slots:
    """Shared-memory blocks that workers write chunks into, so that pixel arrays are not pickled.

    Pickling a chunk cost a worker ~100-150 us per spectrum (20-25 % of reading it) and the main
    process ~50 us; through a slot the worker copies its rows once and the main process copies
    them once into the batch. Each slot holds ``capacity`` rows laid out by ``_slot_views``.
    """

    def __init__(self, blocks: list, capacity: int):
        self.capacity = capacity
        self.blocks = {b.name: b for b in blocks}
        self.free = [b.name for b in blocks]

    @classmethod
    def create(cls, n: int, capacity: int) -> _Slots | None:
        """n slots, or None (pickled transport) when shared memory is missing or too small
        (a container's /dev/shm is 64 MB by default; a full one would kill workers with SIGBUS)."""
        size = _slot_bytes(capacity)
        try:
            st = os.statvfs("/dev/shm")
            if st.f_bavail * st.f_frsize < 2 * n * size:
                return None
        except OSError:
            pass  # no /dev/shm (not Linux): let SharedMemory decide
        sweep_shared_memory()  # segments of earlier runs that were killed before reclaiming them
        prefix = shm_name(uuid.uuid4().hex[:8])
        blocks = []
        try:
            for k in range(n):
                blocks.append(shared_memory.SharedMemory(name=f"{prefix}-{k}", create=True, size=size))
        except OSError:
            for b in blocks:
                b.close()
                b.unlink()
            return None
        return cls(blocks, capacity)

    def take(self) -> str:
        return self.free.pop()

    def give(self, name: str) -> None:
        self.free.append(name)

    def unpack(self, c: _Chunk, name: str) -> _Chunk:
        """The chunk with its arrays read from the slot (views: valid until the slot is given back)."""
        n = len(c.index)
        flux, ivar, good, meta = (a[:n] for a in _slot_views(self.blocks[name].buf, self.capacity))
        return dataclasses.replace(c, flux=flux, ivar=ivar, good=good, meta=meta)

    def close(self) -> None:
        for b in self.blocks.values():
            b.close()
            b.unlink()
        self.blocks, self.free = {}, []


def _slot_bytes(capacity: int) -> int:
    return capacity * (NPIX_GLOBAL * (4 + 4 + 1) + META_DTYPE.itemsize)


def _slot_views(buf, capacity: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """flux, ivar float32 (capacity, NPIX_GLOBAL), good bool (capacity, NPIX_GLOBAL), meta
    (capacity,) META_DTYPE, one after the other in ``buf``."""
    f4 = capacity * NPIX_GLOBAL * 4
    flux = np.ndarray((capacity, NPIX_GLOBAL), np.float32, buf, 0)
    ivar = np.ndarray((capacity, NPIX_GLOBAL), np.float32, buf, f4)
    good = np.ndarray((capacity, NPIX_GLOBAL), bool, buf, 2 * f4)
    meta = np.ndarray((capacity,), META_DTYPE, buf, 2 * f4 + capacity * NPIX_GLOBAL)
    return flux, ivar, good, meta


_ATTACHED: dict[str, shared_memory.SharedMemory] = {}  # slots this worker has opened, by name


def _read_chunk_into(reader: Callable, paths: list[str], index: np.ndarray, slot: str, capacity: int) -> _Chunk:
    """``_read_chunk``, with the spectra written into shared-memory ``slot`` instead of returned."""
    c = _read_chunk(reader, paths, index)
    shm = _ATTACHED.get(slot)
    if shm is None:
        shm = _ATTACHED[slot] = shared_memory.SharedMemory(name=slot)
    n = len(c.index)
    for dst, src in zip(_slot_views(shm.buf, capacity), (c.flux, c.ivar, c.good, c.meta)):
        dst[:n] = src
    return dataclasses.replace(c, flux=c.flux[:0], ivar=c.ivar[:0], good=c.good[:0], meta=c.meta[:0])


def _worker_init(parent: int) -> None:
    """Workers ignore Ctrl-C and SIGTERM (a batch system signals the whole process group): the
    main process gets them and stops the workers (a worker interrupted inside the pool's queues
    can leave the pool's shutdown waiting forever). They exit as soon as the main process
    ``parent`` is gone, however it ended (``jaxvac.io.lifetime``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    exit_with(parent)


def _ping(reader: Callable) -> bool:
    """A no-op task; receiving ``reader`` makes the worker import its module."""
    return callable(reader)


def _read_chunk(reader: Callable, paths: list[str], index: np.ndarray) -> _Chunk:
    """Read files with ``reader``; any exception or wrong return becomes a reject for that file."""
    spectra, good_i, rejects, reject_i = [], [], [], []
    for path, i in zip(paths, np.asarray(index, np.int64).tolist()):
        try:
            out = reader(path)
            if isinstance(out, Spectrum):
                meta = np.asarray(out.meta)
                if meta.dtype != META_DTYPE or meta.size != 1:
                    raise TypeError(f"meta must be one row of META_DTYPE, got dtype {meta.dtype} size {meta.size}")
                spectra.append((out, meta.reshape(())))
                good_i.append(i)
                continue
            if not isinstance(out, Reject):
                raise TypeError(f"reader returned {type(out).__name__}, not Spectrum or Reject")
        except Exception as e:  # a reader bug on one file must not end the run
            out = Reject(path, f"reader raised {type(e).__name__}: {e}")
        rejects.append(out)
        reject_i.append(i)
    n = len(spectra)
    flux = np.empty((n, NPIX_GLOBAL), np.float32)
    ivar = np.empty((n, NPIX_GLOBAL), np.float32)
    good = np.empty((n, NPIX_GLOBAL), bool)
    meta = np.empty(n, META_DTYPE)
    for r, (s, m) in enumerate(spectra):
        flux[r], ivar[r], good[r], meta[r] = s.flux, s.ivar, s.good, m
    return _Chunk(len(paths), np.array(good_i, np.int64), flux, ivar, good, meta,
                  np.array(reject_i, np.int64), rejects)


# -- main-process helpers ---------------------------------------------------------------------
class _Rows:
    """A batch being filled."""

    def __init__(self, B: int):
        self.n = 0
        self.flux = np.zeros((B, NPIX_GLOBAL), np.float32)
        self.ivar = np.zeros((B, NPIX_GLOBAL), np.float32)
        self.good = np.zeros((B, NPIX_GLOBAL), bool)
        self.meta = empty_meta(B)
        self.index = np.full(B, -1, np.int64)

    def put(self, c: _Chunk, pos: int, take: int) -> None:
        a, b = self.n, self.n + take
        self.flux[a:b] = c.flux[pos : pos + take]
        self.ivar[a:b] = c.ivar[pos : pos + take]
        self.good[a:b] = c.good[pos : pos + take]
        self.meta[a:b] = c.meta[pos : pos + take]
        self.index[a:b] = c.index[pos : pos + take]
        self.n = b

    def batch(self, rejects: tuple, reject_index: np.ndarray) -> Batch:
        valid = np.zeros(len(self.index), bool)
        valid[: self.n] = True
        return Batch(self.flux, self.ivar, self.good, self.meta, valid, self.index, rejects, reject_index)


def _not_skipped(paths: Sequence, start: int, stop: int, skip: Iterable) -> np.ndarray:
    """Positions start..stop-1 of ``paths`` minus those named in ``skip`` (paths or positions)."""
    skip_pos, skip_paths = set(), set()
    for s in skip:
        if isinstance(s, (int, np.integer)) and not isinstance(s, bool):
            skip_pos.add(int(s))
        elif isinstance(s, (str, os.PathLike)):
            skip_paths.add(os.path.abspath(os.fspath(s)))
        else:
            raise TypeError(f"skip must hold paths (str) or integer positions, got {type(s).__name__}: {s!r}.")
    if not skip_pos and not skip_paths:
        return np.arange(start, stop, dtype=np.int64)
    keep = [
        i for i in range(start, stop)
        if i not in skip_pos and not (skip_paths and os.path.abspath(os.fspath(paths[i])) in skip_paths)
    ]
    return np.array(keep, np.int64)


def _check_int(name: str, value, minimum: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
