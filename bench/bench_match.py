"""Sky cross-match of a reference catalogue against a spectra index: which vectorised method?

10^5 catalogue rows against 10^6 index rows (default; --quick: 10^4 x 10^5), radius 3 arcsec.
Index positions are uniform over the LAMOST footprint (-10 < Dec < 60 deg); half the catalogue
rows lie within 0-4 arcsec of an index row (so about 3/8 of all rows match), the rest anywhere.

    jaxvac_sky_pairs    jaxvac.io.match.sky_pairs (match_sky's core): unit vectors, a scipy
                        cKDTree of the index (unbalanced, not compacted) and one of the rows,
                        query_ball_tree with the chord 2 sin(r/2)
    ckdtree_ball_point  one cKDTree of the index (scipy's defaults), query_ball_point per row
    ckdtree_sparse      two cKDTrees and sparse_distance_matrix(output_type="ndarray")
    astropy             astropy.coordinates.search_around_sky (SkyCoord, its own KD-tree)

Tree building is timed with the query (every method pays it per call). Each method runs
--repeat times, interleaved round by round; the minimum and median wall and process CPU times
are reported (CPU time is steadier on a shared machine; every method is single-threaded). All
must return the pairs astropy returns.

Usage: python bench/bench_match.py [--quick] [--repeat N]; writes bench/results/bench_match.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from _common import machine, write_results  # noqa: E402  (bench/ is on sys.path when a script here runs)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RADIUS = 3.0  # arcsec


def positions(n_cat: int, n_index: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    s0, s1 = np.sin(np.radians(-10.0)), np.sin(np.radians(60.0))
    ira = rng.uniform(0.0, 360.0, n_index)
    idec = np.degrees(np.arcsin(rng.uniform(s0, s1, n_index)))
    near = n_cat // 2
    pick = rng.integers(0, n_index, near)
    off = rng.uniform(0.0, 4.0, near) / 3600.0
    ang = rng.uniform(0.0, 2 * np.pi, near)
    cra = np.concatenate([ira[pick] + off * np.cos(ang) / np.cos(np.radians(idec[pick])),
                          rng.uniform(0, 360, n_cat - near)]) % 360.0
    cdec = np.concatenate([idec[pick] + off * np.sin(ang), np.degrees(np.arcsin(rng.uniform(s0, s1, n_cat - near)))])
    return cra, np.clip(cdec, -90, 90), ira, idec


def jaxvac_sky_pairs(cra, cdec, ira, idec):
    from jaxvac.io.match import sky_pairs

    return sky_pairs(cra, cdec, ira, idec, RADIUS)


def ckdtree_ball_point(cra, cdec, ira, idec):
    from scipy.spatial import cKDTree

    from jaxvac.io.match import _chord, unit_vectors

    found = cKDTree(unit_vectors(ira, idec)).query_ball_point(unit_vectors(cra, cdec), r=_chord(RADIUS))
    counts = np.fromiter((len(f) for f in found), np.int64, len(found))
    return np.repeat(np.arange(len(cra)), counts), np.fromiter((j for f in found for j in f), np.int64, int(counts.sum()))


def ckdtree_sparse(cra, cdec, ira, idec):
    from scipy.spatial import cKDTree

    from jaxvac.io.match import _chord, unit_vectors

    m = cKDTree(unit_vectors(cra, cdec)).sparse_distance_matrix(cKDTree(unit_vectors(ira, idec)), _chord(RADIUS),
                                                                 output_type="ndarray")
    return m["i"].astype(np.int64), m["j"].astype(np.int64)


def astropy_sas(cra, cdec, ira, idec):
    import astropy.units as u
    from astropy.coordinates import SkyCoord, search_around_sky

    a = SkyCoord(cra * u.deg, cdec * u.deg)
    b = SkyCoord(ira * u.deg, idec * u.deg)
    i, j, _, _ = search_around_sky(a, b, RADIUS * u.arcsec)
    return i.astype(np.int64), j.astype(np.int64)


METHODS = {"jaxvac_sky_pairs": jaxvac_sky_pairs, "ckdtree_ball_point": ckdtree_ball_point,
           "ckdtree_sparse": ckdtree_sparse, "astropy": astropy_sas}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10^4 x 10^5 instead of 10^5 x 10^6")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n_cat, n_index = (10**4, 10**5) if args.quick else (10**5, 10**6)
    pos = positions(n_cat, n_index)
    for f in METHODS.values():  # imports and first-call set-up outside the timing
        f(*(p[:100] for p in pos[:2]), *(p[:1000] for p in pos[2:]))
    walls: dict[str, list] = {name: [] for name in METHODS}
    cpus: dict[str, list] = {name: [] for name in METHODS}
    pairs = {}
    for _ in range(args.repeat):
        for name, f in METHODS.items():
            w0, c0 = time.perf_counter(), time.process_time()
            row, index = f(*pos)
            walls[name].append(time.perf_counter() - w0)
            cpus[name].append(time.process_time() - c0)
            o = np.lexsort((index, row))
            pairs[name] = (row[o], index[o])
    ref = pairs["astropy"]  # the independent implementation
    results = []
    for name in METHODS:
        same = all(np.array_equal(a, b) for a, b in zip(pairs[name], ref))
        w, c = min(walls[name]), min(cpus[name])
        results.append({"method": name, "rows": n_cat, "index_rows": n_index, "radius_arcsec": RADIUS,
                        "pairs": int(len(pairs[name][0])), "same_pairs": same, "wall_s_min": round(w, 3),
                        "wall_s_median": round(float(np.median(walls[name])), 3), "cpu_s_min": round(c, 3),
                        "cpu_s_median": round(float(np.median(cpus[name])), 3)})
        print(f"{name:19s} wall min {w:5.2f} s median {np.median(walls[name]):5.2f} s | CPU min {c:5.2f} s median "
              f"{np.median(cpus[name]):5.2f} s | {len(pairs[name][0]):,} pairs, same as astropy: {same}")
    path = write_results("bench_match", results, load_average=[round(x, 2) for x in os.getloadavg()])
    print(f"machine: {machine()}\nwrote {path}")


if __name__ == "__main__":
    main()
