import numpy as np
import pytest

from jaxvac.run.catalog import empty_catalog, rejects_table
from jaxvac.run.parts import SKIP_DTYPE, ManifestMismatch, PartStore, inputs_digest


def _part(store, idx_rows, idx_rej=(), idx_skip=()):
    rows = empty_catalog(len(idx_rows))
    rows["obsid"] = np.asarray(idx_rows) * 10
    rej = rejects_table([(f"f{i}", "truncated") for i in idx_rej])
    skip = np.array([(f"s{i}".encode(), 100 + i, b"class GALAXY") for i in idx_skip], dtype=SKIP_DTYPE)
    return store.write(rows, np.asarray(idx_rows), rej, np.asarray(idx_rej, int), skip, np.asarray(idx_skip, int))


def test_parts_merge_in_input_order_and_resume(tmp_path):
    ident = {"inputs": inputs_digest(["a", "b"]), "model": "m"}
    s = PartStore(tmp_path / "p", ident)
    _part(s, [4, 5], idx_rej=[6])
    _part(s, [0, 2], idx_skip=[1, 3])
    (tmp_path / "p" / ".part-p000-000009.npz.tmp-123").write_bytes(b"half")  # a killed write
    s2 = PartStore(tmp_path / "p", ident)
    assert s2.done_indices() == {0, 1, 2, 3, 4, 5, 6}
    assert not list((tmp_path / "p").glob(".*tmp*"))
    _part(s2, [7])
    rows, rej, skipped = s2.collect()
    np.testing.assert_array_equal(rows["obsid"], [0, 20, 40, 50, 70])
    assert rej["path"].tolist() == [b"f6"] and skipped["path"].tolist() == [b"s1", b"s3"]
    assert skipped["obsid"].tolist() == [101, 103] and skipped["reason"].tolist() == [b"class GALAXY"] * 2


def test_parts_of_older_versions_without_obsid_or_writer_still_merge(tmp_path):
    """A part written before skipped obsids and writer ids were recorded: obsid -1, no share count."""
    from jaxvac.run.parts import collect_parts, coverage

    s = PartStore(tmp_path / "p", {"i": 1})
    old = np.array([(b"s1", b"snrg <= 10")], dtype=[("path", "S512"), ("reason", "S64")])
    np.savez(tmp_path / "p" / "part-p000-000000.npz", rows=empty_catalog(1), row_index=np.array([0]),
             rejects=rejects_table([]), reject_index=np.zeros(0, np.int64), skipped=old, skip_index=np.array([1]),
             indices=np.array([0, 1]))
    assert s.done_indices() == {0, 1}
    _, _, skipped = collect_parts(tmp_path / "p")
    assert skipped.tolist() == [(b"s1", -1, b"snrg <= 10")]
    covered, writers = coverage(tmp_path / "p", 3)
    assert covered.tolist() == [True, True, False] and writers == set()


def test_other_run_refused_and_fresh(tmp_path):
    PartStore(tmp_path / "p", {"inputs": "x", "model": "m"})
    with pytest.raises(ManifestMismatch, match="differs in: model.*--fresh"):
        PartStore(tmp_path / "p", {"inputs": "x", "model": "other"})
    s = PartStore(tmp_path / "p", {"inputs": "x", "model": "other"}, fresh=True)
    assert s.done_indices() == set()


def test_duplicate_input_detected(tmp_path):
    s = PartStore(tmp_path / "p", {"i": 1})
    _part(s, [1])
    _part(s, [1])
    with pytest.raises(RuntimeError, match="appears in two parts"):  # PartsError, a RuntimeError and a JaxvacError
        s.collect()


def test_workers_of_one_run_keep_out_of_each_other(tmp_path):
    d = tmp_path / "p"
    a = PartStore(d, {"i": 1}, worker=0, n_workers=2)
    _part(a, [0, 1])
    other_tmp = d / ".part-p000-000001.npz.tmp-999"  # worker 0 is writing right now
    other_tmp.write_bytes(b"partial")
    b = PartStore(d, {"i": 1}, worker=1, n_workers=2, fresh=True)
    _part(b, [2])
    assert other_tmp.exists()  # worker 1 left worker 0's temporary alone
    assert b.done_indices() == {0, 1, 2}  # and its --fresh cleared only its own parts
    np.testing.assert_array_equal(b.collect()[0]["obsid"], [0, 10, 20])


def test_inputs_digest_is_sha256_of_nul_terminated_fs_paths():
    """The digest recorded by existing parts and stores: sha256 of each os.fsencode(path) + NUL."""
    import hashlib
    import os

    for paths in ([], ["a"], ["/x/spec-1.fits.gz", "rel/ü é.fits", "odd/\udcff.fits"]):
        h = hashlib.sha256()
        for p in paths:
            h.update(os.fsencode(p) + b"\0")
        assert inputs_digest(paths) == h.hexdigest()
    assert inputs_digest(["ab", "c"]) != inputs_digest(["a", "bc"])
