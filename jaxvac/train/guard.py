"""The sparseness guard of each training set: where a spectrum's estimates lie among the set's
training stars.

A set's networks are trusted where its training stars are dense. A kind of star rare in one
set's training set can be common in the survey: the magnitude set's (LGMWAS) nearby dwarfs leave
few giants and fewer metal-poor giants. A network then fails by magnitudes on such a star (a
metal-poor giant taken for a dwarf) while its flux looks ordinary (ood_score) and every estimate
lies inside its training range (flag bit 1). The guard places each spectrum by some of the
catalogue's own estimates (``[model] guard_labels``: the set's own and the same quantities from
another set's networks, e.g. logg from the PASTEL and the APOGEE networks with M_G for the
magnitude set) among the same estimates of the set's training stars, and counts the training
stars within a radius r. Fewer than k: the row's labels of that set get flag bit 2
(``jaxvac.run.rows.FLAG_SPARSE``). A spectrum is flagged where the set's training stars are
sparse, and where two networks disagree as they never do on those stars.

r is the ``guard_percentile``-th percentile of the training stars' own distances to their k-th
nearest other training star, in coordinates standardised by the training stars' mean and std:
about (100 - percentile) % of stars like the training stars are flagged. At most
``guard_max_points`` training stars are kept (a random subset: the test costs one distance per
kept star per spectrum). docs/errors.md "Where a set's training stars are sparse".
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_guard", "guard_arrays", "kth_distances"]


def kth_distances(z: np.ndarray, k: int, max_pairs: int = 1 << 22) -> np.ndarray:
    """(N,) float64: each row's Euclidean distance to its k-th nearest OTHER row of z (N, D), in
    blocks of rows of at most ``max_pairs`` distances (32 MB), whatever N and guard_max_points."""
    z = np.asarray(z, np.float64)
    out = np.empty(len(z))
    chunk = max(1, max_pairs // max(len(z), 1))
    for s in range(0, len(z), chunk):
        d2 = sum(np.square(z[s : s + chunk, j, None] - z[None, :, j]) for j in range(z.shape[1]))
        out[s : s + chunk] = np.sqrt(np.partition(d2, k, axis=1)[:, k])  # index 0 is the row itself
    return out


def fit_guard(estimates: np.ndarray, members: np.ndarray, schema, mcfg, seed: int) -> tuple[dict, dict, list[str]]:
    """The guard of every set ``[model] guard_labels`` names.

    estimates: (N, M) the trained networks' estimates of the training spectra, columns
    ``schema.names``. members: (N, S) bool, spectrum n is a training star of set s (columns
    ``schema.sets``; validation stars excluded). mcfg: ``ModelConfig`` (guard_labels,
    guard_neighbours k, guard_percentile, guard_max_points). seed: of the subset kept.

    Returns (metadata {set: {labels, cols, center, scale, radius, neighbours, percentile,
    n_points, n_members}}, params {set: {"points": float32 (n_points, D)}}, notes): a set the model
    lacks, or one of whose guard labels it lacks, gets a note and no guard; so does a set with
    fewer than 4 k training stars with every estimate finite.
    """
    meta, params, notes = {}, {}, []
    k = int(mcfg.guard_neighbours)
    for set_name, labels in mcfg.guard_labels.items():
        missing = [lab for lab in labels if lab not in schema.names]
        if set_name not in schema.sets or missing or not labels:
            why = (f"{set_name} is not a training set of this model" if set_name not in schema.sets
                   else f"the model lacks {missing}" if missing else "it names no label")
            notes.append(f"[model] guard_labels: no sparseness guard for {set_name}: {why}")
            continue
        cols = [schema.index(lab) for lab in labels]
        p = estimates[members[:, schema.sets.index(set_name)]][:, cols].astype(np.float64)
        p = p[np.all(np.isfinite(p), axis=1)]
        if len(p) < 4 * k:
            notes.append(f"[model] guard_labels: no sparseness guard for {set_name}: {len(p)} training stars with "
                         f"finite estimates of {list(labels)}, fewer than 4 x guard_neighbours = {4 * k}")
            continue
        n_members = len(p)
        if len(p) > mcfg.guard_max_points:
            p = p[np.sort(np.random.default_rng([seed, 12]).choice(len(p), int(mcfg.guard_max_points), replace=False))]
        center = p.mean(axis=0)
        scale = p.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        z = (p - center) / scale
        radius = float(np.percentile(kth_distances(z, k), mcfg.guard_percentile))
        meta[set_name] = {"labels": list(labels), "cols": cols, "center": center.tolist(), "scale": scale.tolist(),
                          "radius": radius, "neighbours": k, "percentile": float(mcfg.guard_percentile),
                          "n_points": len(z), "n_members": n_members}
        params[set_name] = {"points": z.astype(np.float32)}
    return meta, params, notes


def guard_arrays(meta: dict, params: dict) -> dict:
    """The argument of ``jaxvac.kernels.neighbours.sparse_rows`` from a checkpoint's ``guard``
    metadata and parameters ({set: {"points": float32 (n_points, D)}}, as :func:`fit_guard` returns)."""
    return {name: {"points": np.asarray(params[name]["points"], np.float32), "cols": np.asarray(g["cols"], np.int32),
                   "center": np.asarray(g["center"], np.float32), "scale": np.asarray(g["scale"], np.float32),
                   "radius": np.float32(g["radius"]), "neighbours": np.int32(g["neighbours"])}
            for name, g in meta.items()}
