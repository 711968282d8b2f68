"""Files/s of the streaming loader (0, 1, 2, ... workers) against the reader alone in one process.

The input is copies of the real LAMOST files of ../shared/lamost in a temporary directory (so the
page cache, not the disk, is measured; the copies are deleted at the end). Each stream row times
the whole iteration, worker start-up included ("spectra_per_s"), and also the iteration after the
first batch ("steady_per_s"), so the start-up cost shows apart. Baseline: read_spectrum in a loop
in this process, run in the same process. Each method runs --repeat times, interleaved with the
others (the host's speed drifts); the fastest run is kept. "main us/f": CPU time of this process
per file (for the streams with workers: the bookkeeping that caps the stream on a many-core
machine). The largest worker count is also run with the pickled transport, used when shared
memory is unavailable.

    python bench/bench_stream.py [--quick] [--files N] [--workers 0,1,2]

Writes bench/results/bench_stream.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import real_file_copies, write_results  # noqa: E402  (bench/ is on sys.path when a script here runs)

REPO = Path(__file__).resolve().parents[1]
LAMOST = REPO.parent / "shared" / "lamost"


def _bench_reader(paths: list[str]) -> dict:
    from jaxvac.io.lamost import read_spectrum

    read_spectrum(paths[0])  # imports and caches warmed
    t, c = time.perf_counter(), time.process_time()
    n_ok = sum(not hasattr(read_spectrum(p), "reason") for p in paths)
    dt, cpu = time.perf_counter() - t, time.process_time() - c
    return {"method": "read_spectrum loop (baseline, 1 process)", "workers": 0, "batch": 1, "files": len(paths),
            "spectra": n_ok, "spectra_per_s": len(paths) / dt, "steady_per_s": len(paths) / dt, "startup_s": 0.0,
            "main_cpu_us_per_file": cpu / len(paths) * 1e6}


def _bench_stream(paths: list[str], workers: int, batch: int, chunk: int, pickled: bool = False) -> dict:
    import jaxvac.io.stream as stream

    create = stream._Slots.create
    if pickled:  # the fallback transport (as where /dev/shm is too small), for comparison
        stream._Slots.create = classmethod(lambda cls, n, capacity: None)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        st = stream.stream_batches(paths, batch_size=batch, workers=workers, chunk_size=chunk, progress=False)
        t_first, n_first = None, 0
        for b in st:
            if t_first is None:
                t_first, n_first = time.perf_counter(), b.n_valid + len(b.rejects)
        t_end, c_end = time.perf_counter(), time.process_time()
    finally:
        stream._Slots.create = create
    s = st.summary
    steady = (len(paths) - n_first) / (t_end - t_first) if t_end > t_first else float("nan")
    return {"method": f"stream_batches workers={workers} ({s.transport})", "workers": workers, "batch": batch,
            "chunk": st.chunk_size,
            "files": len(paths), "spectra": s.read, "spectra_per_s": len(paths) / (t_end - t0), "steady_per_s": steady,
            "startup_s": t_first - t0, "main_cpu_us_per_file": (c_end - c0) / len(paths) * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="600 files (under a minute on a 2-core machine)")
    ap.add_argument("--files", type=int, default=None, help="files to read (default 3000, quick 600)")
    ap.add_argument("--workers", default="0,1,2", help="comma-separated worker counts")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=None, help="files per chunk (default: the stream's own choice)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each method, interleaved; the fastest is kept")
    args = ap.parse_args()
    if not (LAMOST / "MANIFEST.tsv").is_file():
        raise SystemExit(f"real LAMOST files not found at {LAMOST}; this benchmark reads copies of them.")
    n_files = args.files or (600 if args.quick else 3000)
    with tempfile.TemporaryDirectory(prefix="bench_stream_") as tmp:
        paths = real_file_copies(n_files, Path(tmp))
        configs = [(int(x), False) for x in args.workers.split(",")]
        configs += [(w, True) for w, _ in configs if w == max(w for w, _ in configs) and w > 0]
        runs = [[] for _ in range(1 + len(configs))]
        for _ in range(args.repeat):  # interleaved, so a slow spell of the host hits every method
            runs[0].append(_bench_reader(paths))
            for k, (w, pickled) in enumerate(configs, start=1):
                runs[k].append(_bench_stream(paths, w, args.batch, args.chunk, pickled))
        rows = [max(r, key=lambda row: row["spectra_per_s"]) for r in runs]
    base = rows[0]["spectra_per_s"]
    print(f"{'method':48s} {'files':>6s} {'files/s':>9s} {'steady/s':>9s} {'start s':>8s} {'vs base':>8s} {'main us/f':>9s}")
    for r in rows:
        print(f"{r['method']:48s} {r['files']:6d} {r['spectra_per_s']:9.0f} {r['steady_per_s']:9.0f} "
              f"{r['startup_s']:8.2f} {r['spectra_per_s'] / base:7.2f}x {r['main_cpu_us_per_file']:9.0f}")
    out = write_results("bench_stream", rows)
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
