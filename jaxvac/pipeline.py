"""`jaxvac run`: the value-added catalogue from a set of spectra.

    files --(reader processes)--> batches --(host->device)--> normalise + 23 nets + VMP net
          --(device->host)--> errors, flags, rv, gl/gb, distance, X/Y/Z --> parts --> catalogue

Reading happens in worker processes (``jaxvac.io.stream``) while the device computes, and the
device work of batch k+1 is dispatched before the host finishes batch k (JAX's asynchronous
dispatch), so the device does not wait while the reader keeps up. Rows are written in parts
(``jaxvac.parts``): a rerun of the same command after a kill continues where it stopped, and the
merged catalogue equals that of an uninterrupted run. Several processes (``jax.distributed``) or
``--shard i/n`` jobs each read their share and write their own parts; one merge joins them.

Input can also be a packed store (``jaxvac.store``, written once by ``jaxvac pack``): batches then
come from memory-mapped shards of the window pixels, read ahead in a thread, and the device step
runs on the packed Layout; the catalogue is the same as from the FITS files.

Devices: ``parallel="sharding"`` (default) splits each batch over all local devices with a
NamedSharding; ``"pmap"`` does the same with jax.pmap; ``"none"`` uses one device.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import time
from collections import Counter
from pathlib import Path

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import jaxvac
from jaxvac.astrometry import AstrometryConfig, galactic, galactocentric, photometric_distance, unique_flag
from jaxvac.catalog import CATALOG_DTYPE, PARAMETERS, REJECT_DTYPE, empty_catalog, rejects_table, write_catalog
from jaxvac.config import load_config, section
from jaxvac.errors import ErrorModel, label_errors, range_flags, vmp_error
from jaxvac.labels import LABEL_NAMES
from jaxvac.parts import SKIP_DTYPE, PartStore, collect_parts, inputs_digest

PARALLEL_MODES = ("sharding", "pmap", "none")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Table ``[run]`` of a config.

    batch_size: spectra per device batch (rounded up to a multiple of the local device count).
    min_snrg: spectra with snrg <= this are skipped (SPEC.md: SNR > 10); 0 keeps all.
    classes: CLASS values that are processed; others are skipped and counted.
    part_batches: batches per resumable part (smaller: less work lost at a kill, more files).
    workers: reader processes; -1: one per usable CPU.
    """

    batch_size: int = 1024
    min_snrg: float = 10.0
    classes: tuple[str, ...] = ("STAR",)
    part_batches: int = 8
    workers: int = -1


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

    @property
    def spectra_per_s(self) -> float:
        return self.spectra_read / self.wall_s if self.wall_s > 0 else 0.0

    def lines(self) -> list[str]:
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


# ----------------------------------------------------------------------------- cross-match
_XM_ALIASES = {
    "obsid": ("obsid",),
    "gaiaid": ("gaia_source_id", "gaiaid", "source_id", "gaia_id"),
    "ks": ("ks", "kmag", "k", "ks_mag"),
    "e_ks": ("e_ks", "ks_err", "e_kmag", "err_ks"),
    "ebv": ("ebv", "e_bv", "e(b-v)"),
    "e_ebv": ("e_ebv", "ebv_err", "err_ebv"),
}


@dataclasses.dataclass(frozen=True)
class CrossMatch:
    """Photometry per OBSID, sorted by obsid for vectorised look-up."""

    obsid: np.ndarray
    gaiaid: np.ndarray
    ks: np.ndarray
    e_ks: np.ndarray
    ebv: np.ndarray
    e_ebv: np.ndarray

    @classmethod
    def read(cls, path: str | Path) -> CrossMatch:
        """Read a FITS or CSV table with obsid, a Gaia source id, Ks, e_Ks, E(B-V) (and e_E(B-V))."""
        from jaxvac.dataset import read_catalog

        cat = {k.lower(): v for k, v in read_catalog(path).items()}
        cols = {}
        for key, names in _XM_ALIASES.items():
            hit = next((n for n in names if n in cat), None)
            if hit is None and key in ("obsid", "ks"):
                raise ValueError(f"cross-match table {str(path)!r} has no {key} column (looked for {names}); "
                                 f"it has {sorted(cat)}.")
            cols[key] = cat[hit] if hit is not None else None
        n = len(cols["obsid"])
        f = lambda k: np.asarray(cols[k], np.float64) if cols[k] is not None else np.full(n, np.nan)  # noqa: E731
        gaia = np.asarray(cols["gaiaid"], np.int64) if cols["gaiaid"] is not None else np.full(n, -1, np.int64)
        obsid = np.asarray(cols["obsid"], np.int64)
        order = np.argsort(obsid, kind="stable")
        return cls(obsid[order], gaia[order], f("ks")[order], f("e_ks")[order], f("ebv")[order], f("e_ebv")[order])

    def lookup(self, obsid: np.ndarray) -> dict[str, np.ndarray]:
        """Columns for each obsid (missing: NaN, gaiaid -1)."""
        i = np.clip(np.searchsorted(self.obsid, obsid), 0, max(len(self.obsid) - 1, 0))
        hit = (len(self.obsid) > 0) & (self.obsid[i] == obsid) if len(self.obsid) else np.zeros(len(obsid), bool)
        pick = lambda a, fill: np.where(hit, a[i], fill) if len(a) else np.full(len(obsid), fill)  # noqa: E731
        return {"gaiaid": pick(self.gaiaid, -1), "ks": pick(self.ks, np.nan), "e_ks": pick(self.e_ks, np.nan),
                "ebv": pick(self.ebv, np.nan), "e_ebv": pick(self.e_ebv, np.nan)}


# ----------------------------------------------------------------------------- device step
@functools.lru_cache(maxsize=None)
def _device_fn(layout, parallel: str, devices: tuple):
    """The compiled per-batch device work: normalise, standardise, 23 nets and the VMP net.

    Cached, so runs in one process (a benchmark, a notebook) compile each batch shape once.
    """
    from jaxvac.model import predict_standardized
    from kernels.normalize import preprocess

    def step(params, x_mean, x_std, flux, ivar, good, rv):
        if good is None:  # a packed store: bad pixels have ivar = 0 (jaxvac.store)
            good = ivar > 0
        x, bad_fraction, status = preprocess(flux, ivar, good, rv, x_mean, x_std, layout=layout)
        y, vmp = predict_standardized(params, x)
        return y, vmp, bad_fraction, status

    return jax.pmap(step, devices=devices) if parallel == "pmap" else jax.jit(step)


class _Device:
    """Runs the device step on one device, a NamedSharding over all local devices, or pmap."""

    def __init__(self, predictor, parallel: str, batch_size: int, layout):
        if parallel not in PARALLEL_MODES:
            raise ValueError(f"parallel must be one of {PARALLEL_MODES}, got {parallel!r}.")
        devices = jax.local_devices() if parallel != "none" else jax.local_devices()[:1]
        self.n = len(devices)
        self.batch_size = -(-batch_size // self.n) * self.n
        self.parallel = parallel
        self.description = f"{self.n} x {devices[0].platform} ({parallel})"
        self._fn = _device_fn(layout, parallel, tuple(devices))
        if parallel == "pmap":
            # One copy per device along a leading axis, placed once (jax 0.10's pmap runs on
            # NamedSharding; device_put_replicated is gone).
            stacked = NamedSharding(Mesh(np.array(devices), ("d",)), PartitionSpec("d"))
            rep = lambda a: jax.device_put(np.stack([np.asarray(a)] * self.n), stacked)  # noqa: E731
            self.params = jax.tree.map(rep, predictor.params)
            self.stats = (rep(predictor.x_mean), rep(predictor.x_std))
        else:
            mesh = Mesh(np.array(devices), ("data",))
            self.data = NamedSharding(mesh, PartitionSpec("data"))
            repl = NamedSharding(mesh, PartitionSpec())
            self.params = jax.device_put(predictor.params, repl)
            self.stats = jax.device_put((predictor.x_mean, predictor.x_std), repl)

    def dispatch(self, flux, ivar, good, rv):
        """Start the device work of a batch; returns device arrays (not waited for).

        good: bool like flux, or None when bad pixels are those with ivar = 0 (a packed store).
        """
        if self.parallel == "pmap":
            split = lambda a: None if a is None else a.reshape(self.n, a.shape[0] // self.n, *a.shape[1:])  # noqa: E731
            return self._fn(self.params, *self.stats, split(flux), split(ivar), split(good), split(rv))
        put = lambda a: None if a is None else jax.device_put(a, self.data)  # noqa: E731
        return self._fn(self.params, *self.stats, put(flux), put(ivar), put(good), put(rv))

    def fetch(self, out):
        """Wait for a dispatched batch; host arrays with the batch axis first."""
        y, vmp, bad, status = (np.asarray(a) for a in out)
        if self.parallel == "pmap":
            y, vmp, bad, status = (a.reshape(-1, *a.shape[2:]) for a in (y, vmp, bad, status))
        return y, vmp, bad, status


# ----------------------------------------------------------------------------- host post-processing
def assemble_rows(meta: np.ndarray, y: np.ndarray, vmp: np.ndarray, *, ranges: np.ndarray, vmp_range,
                  errors: ErrorModel, crossmatch: CrossMatch | None, astrometry: AstrometryConfig) -> np.ndarray:
    """Catalogue rows from reader metadata (N,) META_DTYPE, labels y (N, 23) and feh_VMP (N,).

    ranges: (23, 2) training ranges from the checkpoint (flag = 1 outside or NaN).
    """
    n = len(meta)
    rows = empty_catalog(n)
    rows["obsid"] = meta["obsid"]
    try:  # LAMOST designations are ASCII; the slow per-element encoding only for odd ones
        rows["designation"] = meta["designation"].astype(CATALOG_DTYPE["designation"])
    except UnicodeEncodeError:
        rows["designation"] = np.char.encode(meta["designation"], "ascii", "replace")
    rows["ra_obs"], rows["dec_obs"] = meta["ra_obs"], meta["dec_obs"]
    ra = np.where(np.isfinite(meta["ra"]), meta["ra"], meta["ra_obs"])
    dec = np.where(np.isfinite(meta["dec"]), meta["dec"], meta["dec_obs"])
    rows["gl"], rows["gb"] = galactic(ra, dec)
    snrg = meta["snrg"].astype(np.float64)
    rows["snrg"], rows["rv"], rows["Err_rv"] = snrg, meta["rv"], meta["rv_err"]
    err = label_errors(y, snrg, errors)
    flags = range_flags(y, ranges)
    for k, name in enumerate(LABEL_NAMES):
        rows[name], rows[f"Err_{name}"], rows[f"flag_{name}"] = y[:, k], err[:, k], flags[:, k]
    rows["feh_VMP"] = vmp
    rows["Err_feh_VMP"] = vmp_error(vmp, snrg, errors)
    rows["flag_feh_VMP"] = range_flags(vmp, np.asarray(vmp_range, np.float64))
    if crossmatch is not None:
        xm = crossmatch.lookup(meta["obsid"])
        rows["gaiaid"], rows["EBV"] = xm["gaiaid"], xm["ebv"]
        k = LABEL_NAMES.index("a_ks")
        d, e_d = photometric_distance(xm["ks"], xm["e_ks"], y[:, k], err[:, k], xm["ebv"], xm["e_ebv"], astrometry.r_ks)
        rows["dist_phot"], rows["Err_dist_phot"] = d, e_d
        xyz, e_xyz = galactocentric(ra, dec, d, e_d, astrometry)
        for j, axis in enumerate("XYZ"):
            rows[axis], rows[f"Err_{axis}"] = xyz[:, j], e_xyz[:, j]
    rows["flag_dist_phot"] = (~np.isfinite(rows["dist_phot"])).astype(np.int8)
    return rows


def finalize(rows: np.ndarray) -> np.ndarray:
    """Whole-catalogue columns: uqflag per star (Gaia source id, else the LAMOST designation)."""
    star = np.where(rows["gaiaid"] >= 0, np.char.add(b"G", rows["gaiaid"].astype("S20")),
                    np.char.add(b"D", rows["designation"]))
    rows = rows.copy()
    rows["uqflag"] = unique_flag(star, rows["snrg"], rows["obsid"])
    return rows


def _skip_reasons(cls: np.ndarray, snrg: np.ndarray, classes: tuple[str, ...], min_snrg: float) -> np.ndarray:
    """Why each spectrum is skipped ("" when it is processed): its CLASS is not in ``classes``,
    or snrg <= min_snrg (or missing) when min_snrg > 0. Work is per distinct value, not per row."""
    out = np.full(len(cls), "", dtype="U64")
    names, inv = np.unique(cls, return_inverse=True)
    for k, c in enumerate(names):
        c = str(c).strip()
        if c not in classes:
            out[inv == k] = f"class {c or 'missing'}"
    if min_snrg > 0:
        snrg = np.asarray(snrg, np.float64)
        low = (out == "") & ~(snrg > min_snrg)
        out[low & np.isfinite(snrg)] = f"snrg <= {min_snrg:g}"
        out[low & ~np.isfinite(snrg)] = "snrg missing"
    return out


def _reject_reasons(status: np.ndarray, bits: dict[str, int]) -> np.ndarray:
    """A reject reason per spectrum when normalisation left it unusable (a window not fitted),
    else "". status: int (N,) OR of the kernel's status bits."""
    window = {name: bit for name, bit in bits.items() if "window" in name}
    mask = functools.reduce(lambda a, b: a | b, window.values(), 0)
    out = np.full(len(status), "", dtype="U200")
    hit = np.asarray(status) & mask
    for s in np.unique(hit[hit != 0]):
        out[hit == s] = "normalisation failed: " + ", ".join(name for name, bit in window.items() if s & bit)
    return out


def _file_digest(path: str | Path | None) -> str | None:
    if path is None:
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def parts_dir(out: str | Path) -> Path:
    """Where the resumable parts of catalogue ``out`` live: ``<out>.parts/``."""
    out = Path(out).resolve()
    return out.with_name(out.name + ".parts")


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


def run_catalog(model: str | Path, inputs, out: str | Path, *, crossmatch: str | Path | None = None,
                config: str | Path = "dr8.toml", batch_size: int | None = None, workers: int | None = None,
                parallel: str = "sharding", shard: tuple[int, int] = (0, 1), fresh: bool = False,
                fmt: str | None = None, progress: bool | None = None, min_snrg: float | None = None,
                classes: tuple[str, ...] | None = None, process: tuple[int, int] = (0, 1),
                barrier=None, on_bad_shard: str = "stop") -> RunSummary:
    """Make the catalogue ``out`` from spectra ``inputs`` with the trained networks ``model``.

    inputs: anything ``jaxvac.io.inputs.resolve_inputs`` takes (directory, glob, list, table),
        or a store directory written by ``jaxvac.store.pack`` (same catalogue, no FITS parsing).
    shard: (i, n) of a job array: this job does the i-th of n shares and does not merge
        (run ``jaxvac merge`` after all jobs); with n = 1 the run merges at the end.
    process: (process_id, num_processes) of a jax.distributed run; ``barrier(name)`` must block
        until every process reaches it; process 0 merges.
    on_bad_shard: for a store, "stop" at a shard whose checksum fails, or "skip" it (its inputs
        become rejects "bad shard: checksum mismatch").
    Returns the RunSummary (the merged catalogue's path in ``summary.catalogue``).
    """
    from jaxvac.checkpoint import load
    from jaxvac.io.inputs import resolve_inputs
    from jaxvac.io.stream import stream_batches
    from jaxvac.preprocess import LAYOUT as DR8_LAYOUT
    from jaxvac.store import open_store
    from kernels.normalize import status_bits

    t_start = time.perf_counter()
    cfg = load_config(config)
    rc = section(cfg, "run", RunConfig)
    errors = ErrorModel.from_config(cfg)
    astro = section(cfg, "astrometry", AstrometryConfig)
    batch_size = batch_size or rc.batch_size
    min_snrg = rc.min_snrg if min_snrg is None else min_snrg
    classes = tuple(classes or rc.classes)
    workers = (rc.workers if rc.workers >= 0 else None) if workers is None else workers

    predictor = load(model)
    meta = predictor.metadata
    if list(meta["labels"]) != list(LABEL_NAMES):
        raise ValueError(f"checkpoint {str(model)!r} predicts {meta['labels']}, not the 23 labels {list(LABEL_NAMES)}.")
    ranges = np.asarray(meta["ranges"], np.float64)  # the training ranges the networks were trained with
    vmp_range = meta["vmp"]["range"]
    xm = CrossMatch.read(crossmatch) if crossmatch else None

    packed = open_store(inputs)  # None unless inputs is a store directory
    paths = packed.paths if packed else resolve_inputs(inputs)
    layout = packed.layout if packed else DR8_LAYOUT
    identity = {
        "inputs": inputs_digest(paths), "n_inputs": len(paths), "model": str(Path(model).resolve()),
        "model_metadata": hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode()).hexdigest(),
        "config": [_file_digest(p) for p in cfg["_source"]], "config_files": [Path(p).name for p in cfg["_source"]],
        "crossmatch": _file_digest(crossmatch),
        "min_snrg": min_snrg, "classes": list(classes), "jaxvac": jaxvac.__version__,
    }
    pid, nproc = process
    si, sn = shard
    worker, n_workers = si * nproc + pid, sn * nproc
    store = PartStore(parts_dir(out), identity, worker=worker, n_workers=n_workers, fresh=fresh)
    if barrier is not None:
        barrier("jaxvac-parts-ready")
    done = store.done_indices()

    device = _Device(predictor, parallel, batch_size, layout)
    bits = status_bits(layout)
    summary = RunSummary(inputs=len(paths), devices=device.description)
    summary.already_done = len(done)

    pending_rows, pending_rej, pending_skip = [], [], []

    def flush():
        if not (pending_rows or pending_rej or pending_skip):
            return
        t = time.perf_counter()
        cat = lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt)  # noqa: E731
        rows = cat([r for r, _ in pending_rows], CATALOG_DTYPE)
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
        y, vmp, _, status = device.fetch(out)
        t_ready = time.perf_counter()
        summary.stage_s["device"] += t_ready - t
        t = t_ready
        if len(batch.rejects):
            pending_rej.append((rejects_table(list(batch.rejects)), np.asarray(batch.reject_index, np.int64)))
            for r in batch.rejects:
                summary.rejects[r.reason.split(":", 1)[0]] += 1
        v = batch.valid
        m = batch.meta
        reason = _skip_reasons(m["class"], m["snrg"], classes, min_snrg)
        failed = _reject_reasons(status, bits)
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
            sk["reason"] = reason[skip].astype(SKIP_DTYPE["reason"])
            pending_skip.append((sk, batch.index[skip]))
            for r, c in zip(*np.unique(reason[skip], return_counts=True)):
                summary.skipped[str(r)] += int(c)
        if keep.any():
            rows = assemble_rows(m[keep], y[keep], vmp[keep], ranges=ranges, vmp_range=vmp_range, errors=errors,
                                 crossmatch=xm, astrometry=astro)
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
                new = (batch, device.dispatch(batch.flux, batch.ivar, batch.good, rv), time.perf_counter())
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
        path, n_rows, _ = merge(out, fmt=fmt)
        summary.catalogue, summary.merged_rows = str(path), n_rows
        summary.stage_s["merge"] = time.perf_counter() - t
    summary.wall_s = time.perf_counter() - t_start
    return summary
