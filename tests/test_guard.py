"""The sparseness guard: the counting kernel against float64 counts, the radius rule against an
independent k-th-neighbour computation, and what it flags on known point clouds."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from jaxvac.config import load_config, section
from jaxvac.kernels.neighbours import neighbours_within, sparse_rows
from jaxvac.labels import LabelSchema
from jaxvac.train.guard import fit_guard, guard_arrays, kth_distances
from jaxvac.train.job import ModelConfig


def test_neighbours_within_counts_as_float64_does():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(300, 4)).astype(np.float32)
    q = rng.normal(size=(50, 4)).astype(np.float32) * 1.5
    q[3, 2] = np.nan
    for r in (0.3, 0.8, 1.7):
        got = np.asarray(neighbours_within(jnp.asarray(q), jnp.asarray(points), jnp.float32(r)))
        d = np.sqrt(((q[:, None, :].astype(np.float64) - points[None].astype(np.float64)) ** 2).sum(-1))
        want = (d <= r).sum(1)
        want[3] = 0  # a non-finite coordinate: no neighbour, so flagged by any k >= 1
        close = np.abs(d - r) < 1e-5  # a float32 distance on the radius may fall either side
        assert np.all(np.abs(got - want) <= close.sum(1)), r
        assert got.dtype == np.int32 and (got != want).sum() <= 1


def test_kth_distances_leave_each_point_out():
    z = np.array([[0.0], [1.0], [3.0], [7.0]])
    np.testing.assert_allclose(kth_distances(z, 1), [1, 1, 2, 4])
    np.testing.assert_allclose(kth_distances(z, 2, max_pairs=12), [3, 2, 3, 6])  # blocks of 3 rows


def _cfg(**over) -> ModelConfig:
    return dataclasses.replace(section(load_config("dr8"), "model", ModelConfig), **over)


def test_the_guard_flags_estimates_where_the_sets_training_stars_are_sparse():
    """Known clouds: the LGMWAS set's training stars are dwarfs (logg 4-5) and a giant branch
    without metal-poor giants; fresh stars like them are flagged at about 100 - percentile %,
    metal-poor giants and stars beyond every training star always; stars of another set do not
    place points (members)."""
    schema = LabelSchema.from_config(load_config("dr8"))
    rng = np.random.default_rng(1)
    names = list(schema.names)
    lab = {n: names.index(n) for n in ("Teff_PASTEL", "logg_PASTEL", "feh_PASTEL", "a_gg")}

    def stars(n, kind):
        y = np.full((n, len(names)), np.nan, np.float32)
        dwarf = kind == "dwarf"
        y[:, lab["Teff_PASTEL"]] = rng.normal(5600 if dwarf else 4700, 300, n)
        y[:, lab["logg_PASTEL"]] = rng.normal(4.4 if dwarf else 2.5, 0.2, n)
        y[:, lab["feh_PASTEL"]] = rng.normal(-0.3, 0.3, n) if kind != "metal-poor giant" else rng.normal(-2.2, 0.2, n)
        y[:, lab["a_gg"]] = rng.normal(5.0 if dwarf else 0.8, 0.4, n)
        return y

    train = np.vstack([stars(1500, "dwarf"), stars(500, "giant")])
    other = stars(300, "metal-poor giant")  # a PASTEL-set star, not an LGMWAS one: not a point of the guard
    estimates = np.vstack([train, other])
    members = np.zeros((len(estimates), len(schema.sets)), bool)
    members[: len(train), schema.sets.index("LGMWAS")] = True
    cfg = _cfg(guard_labels={"LGMWAS": ("Teff_PASTEL", "logg_PASTEL", "feh_PASTEL", "a_gg"),
                             "GALAH": ("Teff_PASTEL",), "APOGEE": ("logg_APOGEE", "no_such_label")},
               guard_percentile=99.0, guard_neighbours=5, guard_max_points=1024)
    meta, points, notes = fit_guard(estimates, members, schema, cfg, seed=0)
    assert sorted(meta) == ["LGMWAS"] and len(notes) == 2  # GALAH: not a set; APOGEE: lacks a label
    assert "GALAH is not a training set" in notes[0] and "no_such_label" in notes[1]
    g = meta["LGMWAS"]
    assert g["n_points"] == 1024 and g["n_members"] == 2000 and points["LGMWAS"]["points"].shape == (1024, 4)
    # the radius: the 99th percentile of the kept points' own k-th other-neighbour distances (independently)
    z = points["LGMWAS"]["points"].astype(np.float64)
    d = np.sort(np.sqrt(((z[:, None] - z[None]) ** 2).sum(-1)), axis=1)[:, 5]  # column 0 is the point itself
    assert g["radius"] == pytest.approx(np.percentile(d, 99), rel=1e-6)

    arrays = guard_arrays(meta, points)

    def flagged(y):
        return np.asarray(sparse_rows(jnp.asarray(y), arrays)["LGMWAS"])

    fresh = np.vstack([stars(3000, "dwarf"), stars(1000, "giant")])
    assert 0.002 <= flagged(fresh).mean() <= 0.04  # about 1 % of stars like the training ones
    assert flagged(stars(200, "metal-poor giant")).all()
    taken_for_dwarfs = stars(200, "metal-poor giant")
    taken_for_dwarfs[:, lab["a_gg"]] = 5.0  # the magnitude network's failure: a giant's logg with a dwarf's M_G
    assert flagged(taken_for_dwarfs).all()
    y = fresh[:4].copy()
    y[0, lab["a_gg"]] = np.nan  # an estimate missing: flagged
    assert flagged(y)[0]


def test_a_set_with_too_few_training_stars_gets_no_guard():
    schema = LabelSchema.from_config(load_config("dr8"))
    estimates = np.random.default_rng(0).normal(size=(30, len(schema.names))).astype(np.float32)
    members = np.ones((30, len(schema.sets)), bool)
    meta, _, notes = fit_guard(estimates, members, schema, _cfg(guard_neighbours=10), seed=0)
    assert meta == {} and all("fewer than 4 x guard_neighbours = 40" in n for n in notes) and len(notes) == 2
