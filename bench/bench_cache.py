"""Peak memory and rate of building the training spectra cache, 10,000 against 100,000 spectra.

Each build runs in a fresh Python process, which reports its own peak resident memory (VmHWM of
/proc/self/status; the stream's reader processes are apart, bounded by the stream's prefetch)
and the build's wall time. Methods, run for each size in the same invocation:

- ``streaming``: jaxvac.train.dataset.load_spectra (each batch written to the cache's .npy files).
- ``in_memory (before)``: the previous build, kept here as the baseline: the whole (N, 1974)
  float32 and bool matrices preallocated, filled batch by batch, saved as one .npz.
- ``open``: load_spectra on the finished cache (memory-mapped): the memory that opening costs.

The inputs are symbolic links to the real LAMOST files of ../shared/lamost, repeated under
distinct names (the cache key uses path, size and mtime, so each name is a new spectrum to it);
the page cache, not the disk, is measured.

    python bench/bench_cache.py [--quick] [--sizes 10000,100000] [--workers 2] [--repeat 2]

Writes bench/results/bench_cache.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import LAMOST, real_file_copies, write_results  # noqa: E402  (bench/ is on sys.path when a script here runs)


def _vm(field: str) -> float:
    """A /proc/self/status memory field (VmHWM, VmRSS) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _in_memory_build(paths: list[str], cache_dir: Path, workers: int, batch_size: int) -> None:
    """The cache build before issue 14 (jaxvac 'CACHE_FORMAT = 1'), for the baseline."""
    import numpy as np

    from jaxvac.io.atomic import atomic_path
    from jaxvac.io.stream import stream_batches
    from jaxvac.preprocess import normalize

    n = len(paths)
    norm = good = None
    status, ok = np.full(n, -1, np.int32), np.zeros(n, bool)
    reasons = np.full(n, "", dtype=object)
    snrg, rv, obsid = np.full(n, np.nan, np.float32), np.full(n, np.nan, np.float32), np.full(n, -1, np.int64)
    with stream_batches(paths, batch_size=batch_size, workers=workers, progress=False) as stream:
        for b in stream:
            for r, ri in zip(b.rejects, b.reject_index):
                reasons[ri] = r.reason
            v = b.valid
            if not v.any():
                continue
            nb, gb, _, sb = normalize(b.flux, b.ivar, b.good, b.meta["rv"].astype(np.float32))
            nb, gb, sb = np.asarray(nb), np.asarray(gb), np.asarray(sb)
            if norm is None:
                norm, good = np.ones((n, nb.shape[1]), np.float32), np.zeros((n, nb.shape[1]), bool)
            rows = b.index[v]
            norm[rows], good[rows], status[rows] = nb[v], gb[v], sb[v]
            ok[rows] = True
            snrg[rows], rv[rows], obsid[rows] = b.meta["snrg"][v], b.meta["rv"][v], b.meta["obsid"][v]
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache_dir / "norm-baseline.npz") as tmp:
        np.savez(tmp, paths=np.array(paths), norm=norm, good=good, status=status, ok=ok,
                 reasons=reasons.astype(str), snrg=snrg, rv=rv, obsid=obsid)


def _child(method: str, list_file: str, cache_dir: str, workers: int, batch_size: int) -> None:
    """One measurement in this fresh process; prints one JSON line."""
    import numpy as np

    from jaxvac.train.dataset import load_spectra

    paths = Path(list_file).read_text().splitlines()
    base = _vm("VmRSS")  # after the imports
    t = time.perf_counter()
    if method == "in_memory":
        _in_memory_build(paths, Path(cache_dir), workers, batch_size)
        n_ok = -1
    else:
        m = load_spectra(paths, cache_dir, workers=workers, batch_size=batch_size, progress=False)
        n_ok = int(np.count_nonzero(m.ok))
    dt = time.perf_counter() - t
    print(json.dumps({"seconds": dt, "peak_rss_mib": _vm("VmHWM"), "rss_after_imports_mib": base, "ok": n_ok}))


def _run_child(method: str, paths_file: Path, cache_dir: Path, workers: int, batch_size: int) -> dict:
    cmd = [sys.executable, __file__, "--child", method, str(paths_file), str(cache_dir),
           "--workers", str(workers), "--batch", str(batch_size)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000 and 20,000 spectra")
    ap.add_argument("--sizes", default=None, help="comma-separated spectrum counts (default 10000,100000)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--methods", default="streaming,in_memory", help="builds to measure, in this order per size")
    ap.add_argument("--repeat", type=int, default=2, help="rounds per size, the method order reversed each round")
    ap.add_argument("--child", nargs=3, metavar=("METHOD", "PATHS", "CACHE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return _child(*args.child, args.workers, args.batch)
    if not (LAMOST / "MANIFEST.tsv").is_file():
        raise SystemExit(f"real LAMOST files not found at {LAMOST}; this benchmark links to them.")

    sizes = [int(s) for s in (args.sizes or ("2000,20000" if args.quick else "10000,100000")).split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_cache_") as tmp:
        tmp = Path(tmp)
        for n in sizes:
            links = tmp / f"links{n}"
            links.mkdir()
            paths = real_file_copies(n, links, link=True)
            paths_file = tmp / f"paths{n}.txt"
            paths_file.write_text("\n".join(paths) + "\n")
            methods = args.methods.split(",")
            for rnd, method in ((r, m) for r in range(args.repeat) for m in (methods if r % 2 == 0 else methods[::-1])):
                cache = tmp / f"cache-{method}-{n}"
                r = _run_child(method, paths_file, cache, args.workers, args.batch)
                row = {"method": method if method != "in_memory" else "in_memory (before)", "spectra": n,
                       "round": rnd, "workers": args.workers, "batch": args.batch, "seconds": r["seconds"],
                       "spectra_per_s": n / r["seconds"], "peak_rss_mib": r["peak_rss_mib"],
                       "rss_after_imports_mib": r["rss_after_imports_mib"]}
                if method == "streaming":
                    o = _run_child("open", paths_file, cache, args.workers, args.batch)
                    row["open_seconds"] = o["seconds"]
                    row["open_peak_rss_mib"] = o["peak_rss_mib"]
                    row["open_rss_after_imports_mib"] = o["rss_after_imports_mib"]
                results.append(row)
                print(f"{row['method']:>20} N={n:>7}: {row['spectra_per_s']:7.0f} spectra/s, "
                      f"peak RSS {row['peak_rss_mib']:7.1f} MiB (after imports {row['rss_after_imports_mib']:.1f})"
                      + (f", open: peak {row['open_peak_rss_mib']:.1f} MiB in {row['open_seconds']:.2f} s"
                         if "open_seconds" in row else ""), flush=True)
                for p in cache.glob("*"):  # free the disk before the next build
                    if p.is_dir():
                        import shutil

                        shutil.rmtree(p)
                    else:
                        p.unlink()
    # per method and size: the highest peak RSS and the best rate over the rounds
    summary = {}
    for r in results:
        s = summary.setdefault(r["method"], {}).setdefault(str(r["spectra"]), {"peak_rss_mib": 0.0, "spectra_per_s": 0.0})
        s["peak_rss_mib"] = max(s["peak_rss_mib"], r["peak_rss_mib"])
        s["spectra_per_s"] = max(s["spectra_per_s"], r["spectra_per_s"])
    ratios = {m: by_n[str(max(sizes))]["peak_rss_mib"] / by_n[str(min(sizes))]["peak_rss_mib"]
              for m, by_n in summary.items() if len(sizes) > 1}
    load = os.getloadavg()[0]
    path = write_results("bench_cache", results, machine_note=f"1-min load average {load:.1f} at the end",
                         summary=summary, rss_ratio_largest_to_smallest=ratios)
    print(f"summary (max peak RSS, best rate): {json.dumps(summary)}")
    print(f"peak RSS ratio (largest / smallest N): {ratios}; wrote {path}")


if __name__ == "__main__":
    main()
