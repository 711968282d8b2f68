"""`jaxvac run`: the value-added catalogue from a set of spectra.

    files --(reader processes)--> batches --(host->device)--> normalise + M nets (+ VMP net)
          --(device->host)--> errors, flags, rv, gl/gb, distance, X/Y/Z --> parts --> catalogue

Reading happens in worker processes (``jaxvac.io.stream``) while the device computes, and the
device work of batch k+1 is dispatched before the host finishes batch k (JAX's asynchronous
dispatch), so the device does not wait while the reader keeps up. Rows are written in parts
(``jaxvac.run.parts``): a rerun of the same command after a kill continues where it stopped, and the
merged catalogue equals that of an uninterrupted run. Several processes (``jax.distributed``) or
``--shard i/n`` jobs each read their share and write their own parts; one merge joins them.

Input can also be a packed store (``jaxvac.io.store``, written once by ``jaxvac pack``): batches then
come from memory-mapped shards of the window pixels, read ahead in a thread, and the device step
runs on the packed Layout; the catalogue is the same as from the FITS files.

Output safety (``jaxvac.run.output``, docs/running.md): the run holds the output's lock while it
writes, refuses to replace a catalogue it did not write (unless ``fresh`` or ``overwrite``), and
removes the parts after a successful merge (unless ``keep_parts``). Every input ends as a row, a
reject or a skipped entry, all three in the catalogue.

Columns: the catalogue has the checkpoint's labels (``LabelSchema.from_metadata``; the paper's 23 and
feh_VMP for dr8.toml), each with Err_ and flag_, and the distance and position columns when the model
predicts ``[astrometry] ks_label`` (``jaxvac.run.catalog.catalog_columns``).

Devices: ``parallel="sharding"`` (default) splits each batch over all local devices with a
NamedSharding; ``"pmap"`` does the same with jax.pmap; ``"none"`` uses one device.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

import jaxvac
from jaxvac.run.astrometry import AstrometryConfig
from jaxvac.io.crossmatch import CrossMatch
from jaxvac.run.catalog import REJECT_DTYPE, catalog_dtype, catalog_units, read_header, rejects_table
from jaxvac.config import load_config, recipe_defaults, section
from jaxvac.run.device import Device
from jaxvac.run.merge import merge, provenance_diff
from jaxvac.run.output import OutputError, acquire, sweep_output
from jaxvac.run.rows import assemble_rows, reject_reasons, skip_reasons
from jaxvac.run.uncertainties import checkpoint_schema, run_error_model, run_ranges
from jaxvac.run.parts import SKIP_DTYPE, PartStore, inputs_digest, parts_dir


@dataclasses.dataclass(frozen=True)
@recipe_defaults("run")
class RunConfig:
    """Table ``[run]`` of a config; the defaults are those of configs/dr8.toml [run].

    batch_size: spectra per device batch (rounded up to a multiple of the local device count).
    min_snrg: spectra with snrg <= this are skipped (SPEC.md: SNR > 10); 0 keeps all.
    classes: CLASS values that are processed; others are skipped and counted.
    part_batches: batches per resumable part (smaller: less work lost at a kill, more files).
    workers: reader processes; -1: one per usable CPU.
    """

    batch_size: int
    min_snrg: float
    classes: tuple[str, ...]
    part_batches: int
    workers: int


@dataclasses.dataclass
class RunSummary:
    """What a run did: counts, reasons, time per stage and rates."""

    inputs: int = 0
    already_done: int = 0
    spectra_read: int = 0
    rows_out: int = 0
    rejects: Counter = dataclasses.field(default_factory=Counter)
    skipped: Counter = dataclasses.field(default_factory=Counter)
    stage_s: dict = dataclasses.field(default_factory=lambda: {
        "setup": 0.0, "read": 0.0, "dispatch+compile": 0.0, "device": 0.0, "post": 0.0, "write": 0.0, "merge": 0.0})
    wall_s: float = 0.0
    device_idle_fraction: float = float("nan")
    catalogue: str | None = None
    merged_rows: int = 0
    devices: str = ""
    notes: list = dataclasses.field(default_factory=list)  # for the user: locks taken over, replaced outputs
    already_complete: bool = False  # the catalogue was made by this very run before: nothing done

    @property
    def spectra_per_s(self) -> float:
        return self.spectra_read / self.wall_s if self.wall_s > 0 else 0.0

    def lines(self) -> list[str]:
        if self.already_complete:
            return [f"catalogue: {self.catalogue} ({self.merged_rows} rows) is already complete: same model, inputs "
                    f"and config; nothing to do (--fresh computes it again)"]
        out = [f"inputs: {self.inputs} files ({self.already_done} already done in earlier parts)",
               f"spectra read: {self.spectra_read}; rows out: {self.rows_out}",
               f"rejects: {sum(self.rejects.values())}" + "".join(f"\n  {n:6d}  {r}" for r, n in self.rejects.most_common()),
               f"skipped: {sum(self.skipped.values())}" + "".join(f"\n  {n:6d}  {r}" for r, n in self.skipped.most_common()),
               "time per stage: " + ", ".join(f"{k} {v:.2f} s" for k, v in self.stage_s.items()),
               f"wall: {self.wall_s:.2f} s; {self.spectra_per_s:.1f} spectra/s; device idle <= "
               f"{self.device_idle_fraction:.0%} ({self.devices})"]
        if self.catalogue:
            out.append(f"catalogue: {self.catalogue} ({self.merged_rows} rows)")
        return out


def _file_digest(path: str | Path | None) -> str | None:
    if path is None:
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run_catalog(model: str | Path, inputs, out: str | Path, *, crossmatch: str | Path | None = None,
                config: str | Path = "dr8.toml", batch_size: int | None = None, workers: int | None = None,
                parallel: str = "sharding", shard: tuple[int, int] = (0, 1), fresh: bool = False,
                fmt: str | None = None, progress: bool | None = None, min_snrg: float | None = None,
                classes: tuple[str, ...] | None = None, process: tuple[int, int] = (0, 1),
                barrier=None, on_bad_shard: str = "stop", overwrite: bool = False, keep_parts: bool = False,
                force_lock: bool = False) -> RunSummary:
    """Make the catalogue ``out`` from spectra ``inputs`` with the trained networks ``model``.

    inputs: anything ``jaxvac.io.inputs.resolve_inputs`` takes (directory, glob, list, table),
        or a store directory written by ``jaxvac.io.store.pack`` (same catalogue, no FITS parsing).
    shard: (i, n) of a job array: this job does the i-th of n shares and does not merge
        (run ``jaxvac merge`` after all jobs); with n = 1 the run merges at the end.
    process: (process_id, num_processes) of a jax.distributed run; ``barrier(name)`` must block
        until every process reaches it; process 0 merges.
    on_bad_shard: for a store, "stop" at a shard whose checksum fails, or "skip" it (its inputs
        become rejects "bad shard: checksum mismatch").
    fresh: discard the parts of earlier runs of ``out`` and start over (``out``, if it exists, is
        replaced at the end). overwrite: replace an existing ``out`` that no parts here record (a
        catalogue of another run), resuming from parts that match this run. Without either, such
        an ``out`` is refused with OutputError -- unless its header shows this very run made it:
        then nothing is done (the summary's ``catalogue`` names it).
    keep_parts: keep ``out.parts/`` after the merge (default: removed once the catalogue is written).
    force_lock: take over the output's lock when held by a run on another host (jaxvac.run.output).
    Returns the RunSummary (the merged catalogue's path in ``summary.catalogue``).
    """
    from jaxvac.train.checkpoint import load
    from jaxvac.io.inputs import resolve_inputs
    from jaxvac.io.stream import stream_batches
    from jaxvac.preprocess import LAYOUT as DR8_LAYOUT
    from jaxvac.io.store import open_store
    from jaxvac.kernels.normalize import STATUS_INPUT_MASKED, status_bits

    t_start = time.perf_counter()
    cfg = load_config(config)
    rc = section(cfg, "run", RunConfig)
    astro = section(cfg, "astrometry", AstrometryConfig)
    batch_size = batch_size or rc.batch_size
    min_snrg = rc.min_snrg if min_snrg is None else min_snrg
    classes = tuple(classes or rc.classes)
    workers = (rc.workers if rc.workers >= 0 else None) if workers is None else workers

    predictor = load(model)
    meta = predictor.metadata
    schema = checkpoint_schema(meta)  # the checkpoint's labels: the catalogue's label columns
    dtype = catalog_dtype(schema, astro.ks_label)
    units = catalog_units(dtype, schema.units)
    # Err_ and flag ranges: the checkpoint's own (fitted on held-out stars, training ranges) or the
    # config's Table 2 / Table 1, as [errors] source says (jaxvac.run.uncertainties; docs/errors.md)
    errors, errmodel = run_error_model(cfg, meta, where=f"checkpoint {str(model)!r}")
    ranges, vmp_range, _ = run_ranges(cfg, meta)
    ood_threshold = float((meta.get("ood") or {}).get("threshold", "nan"))  # ood_score above it: qflag bit 1
    xm = CrossMatch.read(crossmatch) if crossmatch else None

    packed = open_store(inputs)  # None unless inputs is a store directory
    paths = packed.paths if packed else resolve_inputs(inputs)
    layout = packed.layout if packed else DR8_LAYOUT
    identity = {
        "inputs": inputs_digest(paths), "n_inputs": len(paths), "model": str(Path(model).resolve()),
        "model_metadata": hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode()).hexdigest(),
        "config": [_file_digest(p) for p in cfg["_source"]], "config_files": [Path(p).name for p in cfg["_source"]],
        "crossmatch": _file_digest(crossmatch),
        "min_snrg": min_snrg, "classes": list(classes), "jaxvac": jaxvac.__version__, "error_model": errmodel,
    }
    pid, nproc = process
    si, sn = shard
    worker, n_workers = si * nproc + pid, sn * nproc
    summary = RunSummary(inputs=len(paths))
    pdir = parts_dir(out)
    with acquire(pdir, None if n_workers == 1 else worker, force=force_lock, out=out) as lock:
        summary.notes += lock.notes
        sweep_output(out)
        if Path(out).exists() and not (pdir / "manifest.json").is_file() and not fresh:
            diff = provenance_diff(out, identity)
            if diff == []:
                summary.already_complete, summary.catalogue = True, str(out)
                summary.merged_rows = int(read_header(out).get("NROWS", -1))
                summary.wall_s = time.perf_counter() - t_start
                return summary
            if not overwrite:
                made = (f"its header differs from this run in {', '.join(diff)}" if diff else
                        "it is not a catalogue jaxvac can read")
                raise OutputError(
                    f"{str(out)!r} exists and {str(pdir)!r} holds no record of the run that wrote it ({made}); "
                    f"rerun with --overwrite to replace it (keeping parts that match this run) or --fresh to start "
                    f"over, or choose another --out.")
            summary.notes.append(f"{out} will be replaced (--overwrite): no parts here recorded writing it")
        store = PartStore(parts_dir(out), identity, worker=worker, n_workers=n_workers, fresh=fresh, dtype=dtype,
                          units=units)
        if barrier is not None:
            barrier("jaxvac-parts-ready")
        done = store.done_indices()

        device = Device(predictor, parallel, batch_size, layout)
        bits = status_bits(layout)
        summary.devices = device.description
        summary.already_done = len(done)

        pending_rows, pending_rej, pending_skip = [], [], []

        def flush():
            if not (pending_rows or pending_rej or pending_skip):
                return
            t = time.perf_counter()
            cat = lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt)  # noqa: E731
            rows = cat([r for r, _ in pending_rows], dtype)
            ri = cat([i for _, i in pending_rows], np.int64)
            rej = cat([r for r, _ in pending_rej], REJECT_DTYPE)
            ji = cat([i for _, i in pending_rej], np.int64)
            sk = cat([r for r, _ in pending_skip], SKIP_DTYPE)
            sj = cat([i for _, i in pending_skip], np.int64)
            store.write(rows, ri, rej, ji, sk, sj)
            pending_rows.clear(), pending_rej.clear(), pending_skip.clear()
            summary.stage_s["write"] += time.perf_counter() - t

        def post(batch, out):
            t = time.perf_counter()
            y, vmp, _, status, extra = device.fetch(out)  # extra: ood, sparse when the checkpoint has them
            t_ready = time.perf_counter()
            summary.stage_s["device"] += t_ready - t
            t = t_ready
            if len(batch.rejects):
                pending_rej.append((rejects_table(list(batch.rejects)), np.asarray(batch.reject_index, np.int64)))
                for r in batch.rejects:
                    summary.rejects[r.reason.split(":", 1)[0]] += 1
            v = batch.valid
            m = batch.meta
            reason = skip_reasons(m["class"], m["snrg"], classes, min_snrg)
            failed = reject_reasons(status, bits)
            keep = v & (reason == "") & (failed == "")
            unusable = v & (reason == "") & (failed != "")
            skip = v & (reason != "")
            summary.spectra_read += int(v.sum())
            if unusable.any():
                rej = rejects_table([(p, f) for p, f in zip(m["path"][unusable], failed[unusable])])
                pending_rej.append((rej, batch.index[unusable]))
                summary.rejects["normalisation failed"] += int(unusable.sum())
            if skip.any():
                sk = np.zeros(int(skip.sum()), SKIP_DTYPE)
                sk["path"] = np.char.encode(m["path"][skip], "utf-8")
                sk["obsid"] = m["obsid"][skip]
                sk["reason"] = reason[skip].astype(SKIP_DTYPE["reason"])
                pending_skip.append((sk, batch.index[skip]))
                for r, c in zip(*np.unique(reason[skip], return_counts=True)):
                    summary.skipped[str(r)] += int(c)
            if keep.any():
                rows = assemble_rows(m[keep], y[keep], vmp[keep], ranges=ranges, vmp_range=vmp_range, errors=errors,
                                     crossmatch=xm, astrometry=astro,
                                     ood=extra["ood"][keep] if "ood" in extra else None,
                                     sparse={k: v[keep] for k, v in extra.get("sparse", {}).items()},
                                     ood_threshold=ood_threshold, masked=(status[keep] & STATUS_INPUT_MASKED) != 0,
                                     schema=schema, dtype=dtype)
                pending_rows.append((rows, batch.index[keep]))
                summary.rows_out += len(rows)
            summary.stage_s["post"] += time.perf_counter() - t
            return t_ready

        summary.stage_s["setup"] = time.perf_counter() - t_start
        busy, last_ready = 0.0, float("-inf")  # device busy time: union of [dispatch, result ready]
        n_batches = 0
        if packed:
            source = packed.batches(batch_size=device.batch_size, shard=(worker, n_workers), skip=done,
                                    on_bad_shard=on_bad_shard, progress=progress)
        else:
            source = stream_batches(paths, batch_size=device.batch_size, workers=workers, shard=(worker, n_workers),
                                    skip=done, progress=progress)
        with source as stream:
            it = iter(stream)
            in_flight = None  # (batch, device outputs, dispatch time)
            t_loop = time.perf_counter()
            while True:
                t = time.perf_counter()
                batch = next(it, None)
                summary.stage_s["read"] += time.perf_counter() - t
                if batch is not None:
                    t = time.perf_counter()
                    rv = batch.meta["rv"].astype(np.float32)  # NaN (unknown) is flagged by the kernel
                    snrg = batch.meta["snrg"].astype(np.float32)  # for the ood_score
                    new = (batch, device.dispatch(batch.flux, batch.ivar, batch.good, rv, snrg), time.perf_counter())
                    summary.stage_s["dispatch+compile"] += new[2] - t
                if in_flight is not None:
                    b, o, t_disp = in_flight
                    t_ready = post(b, o)
                    busy += t_ready - max(t_disp, last_ready)
                    last_ready = t_ready
                    n_batches += 1
                    if n_batches % rc.part_batches == 0:
                        flush()
                if batch is None:
                    break
                in_flight = new
            flush()
            loop_s = time.perf_counter() - t_loop
        summary.device_idle_fraction = max(0.0, 1.0 - busy / loop_s) if loop_s > 0 else float("nan")
        if barrier is not None:
            barrier("jaxvac-parts-written")
        if pid == 0 and sn == 1:
            t = time.perf_counter()
            merged = merge(out, fmt=fmt, keep_parts=keep_parts, locked=True, dtype=dtype, units=units)
            summary.catalogue, summary.merged_rows = str(merged.path), merged.rows
            summary.notes += merged.notes
            summary.stage_s["merge"] = time.perf_counter() - t
        summary.wall_s = time.perf_counter() - t_start
    return summary
