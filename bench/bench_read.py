"""Files per second per process reading LAMOST spectra: fitsio, astropy and jaxvac's readers.

Copies of the real files in ../shared/lamost are written to a temporary directory as .fits and
.fits.gz, per layout (image: DR5-DR8 style, table: DR9+ COADD), then every method reads every copy.
Methods are run in turn on chunks of 50 files so that a noisy neighbour slows all of them alike.

    fitsio data+header   fitsio.FITS: the full primary header and the data HDU (the baseline)
    fitsio data only     the same without the header
    astropy              astropy.io.fits: header, then the data arrays copied out
    jaxvac fast          jaxvac.io.lamost.read_spectrum: checks, grid placement and metadata
    jaxvac fitsio engine read_spectrum(engine="fitsio"): the same output through fitsio
    jaxvac read_meta     the metadata from the headers alone

Usage: python bench/bench_read.py [--quick] [--copies N]
Writes bench/results/bench_read.json (with the decompressor jaxvac fast used, the load average
when the run started, and, for .fits.gz, jaxvac fast's us per file in each stage: read, inflate,
headers and structure, arrays and metadata; the ratios of one run are what to compare on a shared
machine). Threads are not measured: fitsio holds the GIL on Python 3.11 (MEASURED.md), so
processes are the unit of parallelism.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import LAMOST, cpu_name  # noqa: E402  (bench/ is on sys.path when a script here runs)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jaxvac.io.atomic import atomic_write  # noqa: E402

CHUNK = 50  # files per method turn


def fitsio_data_header(path):
    import fitsio

    with fitsio.FITS(path) as f:
        h = f[0].read_header()
        d = f[0].read() if f[0].has_data() else f[1].read()
    return h, d


def fitsio_data_only(path):
    import fitsio

    with fitsio.FITS(path) as f:
        return f[0].read() if f[0].has_data() else f[1].read()


def astropy_read(path):
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        h = hdul[0].header
        z = h.get("Z")
        if hdul[0].data is not None:
            d = hdul[0].data.copy()
        else:
            row = hdul[1].data
            d = [np.array(row[c]) for c in ("FLUX", "IVAR", "WAVELENGTH", "ANDMASK")]
    return z, d


def jaxvac_fast(path):
    from jaxvac.io.lamost import read_spectrum

    return read_spectrum(path)


def jaxvac_fitsio(path):
    from jaxvac.io.lamost import read_spectrum

    return read_spectrum(path, engine="fitsio")


def jaxvac_meta(path):
    from jaxvac.io.lamost import read_meta

    return read_meta(path)


METHODS = {
    "fitsio data+header": fitsio_data_header,
    "fitsio data only": fitsio_data_only,
    "astropy": astropy_read,
    "jaxvac fast": jaxvac_fast,
    "jaxvac fitsio engine": jaxvac_fitsio,
    "jaxvac read_meta": jaxvac_meta,
}
BASELINE = "fitsio data+header"


def sources() -> dict[str, list[tuple[str, bytes]]]:
    """{layout: [(name, plain FITS bytes)]} from ../shared/lamost (layout per MANIFEST.tsv)."""
    import csv

    with open(LAMOST / "MANIFEST.tsv") as f:
        layouts = {r["file"]: r["layout"].split(":")[0] for r in csv.DictReader(f, delimiter="\t")}
    out = {"image": [], "table": []}
    for name, layout in sorted(layouts.items()):
        raw = (LAMOST / name).read_bytes()
        out[layout].append((name, gzip.decompress(raw) if name.endswith(".gz") else raw))
    return out


def make_copies(tmp: Path, src: dict, copies: int) -> dict[tuple[str, str], list[str]]:
    """copies files per (layout, compression), cycling through the real files of that layout.

    .fits.gz copies of files that LAMOST distributes gzipped are the original bytes; the others
    are gzip level 6 (what LAMOST's archive uses)."""
    groups = {}
    for layout, files in src.items():
        for comp in ("plain", "gz"):
            paths = []
            for k in range(copies):
                name, raw = files[k % len(files)]
                orig = LAMOST / name
                if comp == "gz":
                    data = orig.read_bytes() if name.endswith(".gz") else gzip.compress(raw, 6)
                    p = tmp / f"{layout}-{k:05d}.fits.gz"
                else:
                    data = raw
                    p = tmp / f"{layout}-{k:05d}.fits"
                p.write_bytes(data)
                paths.append(str(p))
            groups[(layout, comp)] = paths
    return groups


def identical(paths: list[str]) -> bool:
    """The fast reader's arrays and metadata equal the fitsio engine's on these files."""
    from jaxvac.io.lamost import read_spectrum

    for p in paths:
        a, b = read_spectrum(p), read_spectrum(p, engine="fitsio")
        if type(a) is not type(b) or not all(
                getattr(a, f).tobytes() == getattr(b, f).tobytes()
                for f in ("flux", "ivar", "good")):
            return False
        if a.meta[["obsid"]].tobytes() != b.meta[["obsid"]].tobytes() or any(
                not (a.meta[f] == b.meta[f] or (a.meta[f] != a.meta[f] and b.meta[f] != b.meta[f]))
                for f in a.meta.dtype.names if f != "path"):
            return False
    return True


def run(paths: list[str], methods: dict) -> dict[str, tuple[float, float]]:
    """{method: (wall seconds, CPU seconds)} to read every path once, in chunks, methods in turn."""
    for fn in methods.values():  # warm-up: imports, caches
        for p in paths[:3]:
            fn(p)
    wall = dict.fromkeys(methods, 0.0)
    cpu = dict.fromkeys(methods, 0.0)
    for i in range(0, len(paths), CHUNK):
        chunk = paths[i:i + CHUNK]
        for name, fn in methods.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for p in chunk:
                fn(p)
            wall[name] += time.perf_counter() - t0
            cpu[name] += time.process_time() - c0
    return {name: (wall[name], cpu[name]) for name in methods}


STAGES = ("read", "inflate", "headers and structure", "arrays and metadata")


def stages(paths: list[str]) -> dict[str, float]:
    """us per file in each stage of jaxvac fast (read_spectrum's steps, called one by one), in
    chunks that alternate with the baseline (untimed) as in run(), so that caches are as cold."""
    from jaxvac.io import fitsheader as ff
    from jaxvac.io import lamost

    total = dict.fromkeys(STAGES, 0)
    for i in range(0, len(paths), CHUNK):
        chunk = paths[i:i + CHUNK]
        for p in chunk:
            METHODS[BASELINE](p)
        for p in chunk:
            t0 = time.perf_counter_ns()
            raw = ff.read_bytes(p)
            t1 = time.perf_counter_ns()
            buf = ff.gunzip(raw) if raw[:2] == b"\x1f\x8b" else raw
            t2 = time.perf_counter_ns()
            parsed = lamost._structure(buf)
            t3 = time.perf_counter_ns()
            lamost._assemble(p, parsed)
            t4 = time.perf_counter_ns()
            for name, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                total[name] += dt
    return {name: round(ns / len(paths) / 1e3, 1) for name, ns in total.items()}


def decompressor() -> str:
    """What inflates a whole .fits.gz in jaxvac's fast reader, with its version."""
    from jaxvac.io.fitsheader import DECOMPRESSOR

    if DECOMPRESSOR == "libdeflate":
        import deflate
        return f"libdeflate (PyPI deflate {deflate.__version__}; zlib-ng when it declines)"
    if DECOMPRESSOR == "zlib-ng":
        from zlib_ng import zlib_ng
        return f"zlib-ng {zlib_ng.ZLIBNG_VERSION}"
    return "zlib"


def machine() -> str:
    import fitsio

    try:
        from zlib_ng import zlib_ng
        zng = f"zlib-ng {zlib_ng.ZLIBNG_VERSION}"
    except ImportError:
        zng = "no zlib-ng"
    cpu = cpu_name()
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"numpy {np.__version__}, fitsio {fitsio.__version__}, {zng}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="150 copies per group (under a minute)")
    ap.add_argument("--copies", type=int, default=None,
                    help="files per (layout, compression) group (default 1000, --quick 150)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "bench_read.json"))
    args = ap.parse_args(argv)
    if not (LAMOST / "MANIFEST.tsv").is_file():
        print(f"bench_read: skipped, the real LAMOST files are not at {LAMOST} (../shared absent)")
        return 0
    copies = args.copies or (150 if args.quick else 1000)
    src = sources()
    results = []
    profile = {}  # layout -> {stage: us per file} of jaxvac fast on .fits.gz
    with tempfile.TemporaryDirectory(prefix="bench_read_") as tmp:
        groups = make_copies(Path(tmp), src, copies)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"{machine()}\njaxvac fast inflates .fits.gz with {decompressor()}\n{copies} copies "
              f"per group; files/s per process (wall clock; CPU time in brackets); load average "
              f"{load:.2f} at the start\n")
        print(f"{'layout':6s} {'comp':5s} {'method':22s} {'files/s':>9s} {'(cpu)':>9s} "
              f"{'x fitsio d+h':>12s} identical")
        for (layout, comp), paths in groups.items():
            same = identical(paths[:len(src[layout])])
            timing = run(paths, METHODS)
            base = len(paths) / timing[BASELINE][0]
            for name, (wall, cpu) in timing.items():
                rate = len(paths) / wall
                ident = same if name.startswith("jaxvac fast") else None
                results.append({"method": name, "layout": layout, "compression": comp,
                                "batch": len(paths), "spectra_per_s": round(rate, 1),
                                "cpu_spectra_per_s": round(len(paths) / cpu, 1),
                                "ratio_to_fitsio_data_header": round(rate / base, 2),
                                "identical_to_fitsio": ident})
                print(f"{layout:6s} {comp:5s} {name:22s} {rate:9.0f} {len(paths) / cpu:9.0f} "
                      f"{rate / base:12.2f} {'' if ident is None else ident}")
            if comp == "gz":
                profile[layout] = stages(paths)
                print("jaxvac fast, us per file: " + ", ".join(
                    f"{k} {v:.1f}" for k, v in profile[layout].items())
                    + f" (sum {sum(profile[layout].values()):.1f}; the timed rate: "
                    f"{1e6 * timing['jaxvac fast'][0] / len(paths):.1f})")
            print()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, json.dumps({"machine": machine(), "decompressor": decompressor(),
                                  "load_average_at_start": round(load, 2), "baseline": BASELINE,
                                  "copies_per_group": copies, "results": results,
                                  "jaxvac_fast_gz_us_per_file_by_stage": profile}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
