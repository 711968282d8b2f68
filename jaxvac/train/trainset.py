"""Training catalogues from reference catalogues in their published layouts (``jaxvac trainset``).

:func:`build_trainset` reads a reference catalogue (FITS, CSV or Parquet, through
:func:`jaxvac.io.tables.read_table`: only the columns it needs), maps its columns to jaxvac's
label names (:mod:`jaxvac.labels`), converts what needs converting, finds each star's LAMOST
spectra (by ``path``, by ``obsid`` or by sky position, :mod:`jaxvac.io.match`, against an index
from :mod:`jaxvac.io.spectra_index`) and writes the layout ``jaxvac train`` reads: ``obsid``,
``path``, ``snrg`` (of the matched spectrum), each label and ``Err_<label>``, the curation
columns, then ``ref_id`` (the star's name in the reference catalogue, when it has one),
``ref_row`` (its first row there) and, for sky matches, ``sep_arcsec``. It only maps, matches
and converts: the paper's cuts stay in ``[curation]``, which ``jaxvac train`` applies.

The formats (``apogee``, ``pastel``, ``gaia``, ``generic``), their column names and conversions,
and ``maps`` ({DEST: SRC}, the command's ``--map SRC=DEST``) are described in
:mod:`jaxvac.train.reference`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from jaxvac.config import section
from jaxvac.labels import LabelSchema
from jaxvac.train.reference import (CURATION_COLUMNS, FORMAT_NAMES, FORMATS, PhotometryConfig, ReferenceTable,
                                    TrainsetConfig, TrainsetError, convert)

__all__ = ["FORMATS", "PhotometryConfig", "TrainsetConfig", "TrainsetError", "TrainsetSummary", "build_trainset",
           "parse_maps"]

MATCH_KEYS = ("auto", "path", "obsid", "sky")
_UNITS = {"Teff_APOGEE": "K", "Err_Teff_APOGEE": "K", "dist": "kpc", "Err_dist": "kpc", "gb": "deg", "ebv": "mag",
          "sep_arcsec": "arcsec"}  # curation columns; the labels' units come from the config's [labels]


@dataclasses.dataclass
class TrainsetSummary:
    """What :func:`build_trainset` did."""

    out: Path
    fmt: str
    rows_in: int  # rows of the reference catalogue
    stars: int  # rows (stars) left after flags, grouping and conversions
    dropped: dict  # reason -> rows
    match: object  # jaxvac.io.match.Match, or None for path-keyed catalogues
    by: str
    rows_out: int
    labels: dict  # label -> rows with a value
    notes: list
    names: np.ndarray | None = None  # per star (row of the match): its name in messages

    def lines(self) -> list[str]:
        out = [f"read {self.rows_in:,} rows ({FORMAT_NAMES[self.fmt]} format): {self.stars:,} stars"]
        for why, n in self.dropped.items():
            out.append(f"  dropped {n:,}: {why}")
        if self.match is not None:
            out.append(f"matched by {self.by}: {self.match.summary(self.names)}")
        shown = ", ".join(f"{k} {v:,}" for k, v in self.labels.items())
        out.append(f"wrote {self.rows_out:,} rows to {self.out} (labels with values: {shown})")
        out.extend(f"note: {n}" for n in self.notes)
        return out


def parse_maps(items) -> dict[str, str]:
    """``["SRC=DEST", ...]`` -> {DEST: SRC}; a malformed item raises TrainsetError."""
    out = {}
    for item in items or ():
        src, sep, dest = str(item).partition("=")
        if not sep or not src.strip() or not dest.strip():
            raise TrainsetError(f"--map {item!r}: write it as SRC=DEST (a column of the reference catalogue = a jaxvac "
                                f"name such as Teff_PASTEL or Err_Teff_PASTEL).")
        out[dest.strip()] = src.strip()
    return out


# ----------------------------------------------------------------------------------------------


def build_trainset(catalogue, out, *, index=None, data_dir=None, fmt: str = "generic", maps: dict | None = None,
                   by: str = "auto", cfg: dict | None = None, relative_to=None) -> TrainsetSummary:
    """Write a training catalogue (``out``: *.fits or *.parquet) from a reference catalogue.

    catalogue: the reference table (FITS/CSV/Parquet). index: a spectra index (``jaxvac index``,
    :func:`jaxvac.io.spectra_index.read_index`), or the official LAMOST LRS catalogue together
    with ``data_dir`` (the folder of its files); needed unless the rows carry a path. fmt: one of
    FORMATS. maps: {DEST: SRC} (:mod:`jaxvac.train.reference`). by: "auto" (path, else obsid, else sky, as
    the columns allow), "path", "obsid" or "sky". cfg: a loaded config (``[match]``,
    ``[trainset]``, ``[photometry]``; None: dr8.toml's). relative_to: write paths relative to
    this folder (default: absolute).
    """
    from jaxvac.config import recipe
    from jaxvac.io.match import MatchConfig

    if fmt not in FORMATS:
        raise TrainsetError(f"unknown format {fmt!r}; choose one of {list(FORMATS)}.")
    if by not in MATCH_KEYS:
        raise TrainsetError(f"unknown match key {by!r}; choose one of {list(MATCH_KEYS)}.")
    out = Path(out)
    if out.suffix.lower() not in (".fits", ".fit", ".parquet"):
        raise TrainsetError(f"output {str(out)!r}: name it *.fits or *.parquet (the layouts jaxvac train reads).")
    if not out.parent.is_dir():
        raise TrainsetError(f"output {str(out)!r}: folder {str(out.parent)!r} does not exist; create it first.")
    cfg = cfg if cfg is not None else recipe()
    mcfg = section(cfg, "match", MatchConfig)
    tcfg = section(cfg, "trainset", TrainsetConfig)
    pcfg = section(cfg, "photometry", PhotometryConfig)
    maps = dict(maps or {})
    schema = LabelSchema.from_config(cfg, sets=tuple(cfg.get("labels", {})))  # every label the config lists
    units = _UNITS | {n: u for lab in schema.labels for n, u in ((lab.name, lab.unit), (f"Err_{lab.name}", lab.unit))}
    ref = ReferenceTable(catalogue, fmt, maps, labels=schema.names)
    rows_in = ref.n
    conv = convert(ref, tcfg, pcfg)
    cols, keep, notes = conv.cols, conv.keep, conv.notes
    cols["ref_row"] = keep
    n_stars = len(keep)
    key = _match_key(by, cols, fmt, catalogue)
    table, match = _attach_spectra(cols, key, index, data_dir, mcfg, catalogue, relative_to, notes, schema.names)
    rows_out = _write(out, table, units)
    labels = {name: int(np.count_nonzero(np.isfinite(table[name]))) for name in schema.names if name in table}
    ids = cols.get("ref_id", cols.get("id"))
    names = np.array([str(ids[i]) if ids is not None and str(ids[i]) else f"row {r}"
                      for i, r in enumerate(cols["ref_row"].tolist())], dtype=object)
    return TrainsetSummary(out, fmt, rows_in, n_stars, conv.dropped, match, key, rows_out, labels, notes, names)


# ----------------------------------------------------------------------------------------------
# Matching to spectra


def _match_key(by: str, cols: dict, fmt: str, catalogue) -> str:
    has = {"path": "path" in cols, "obsid": "obsid" in cols, "sky": "ra" in cols and "dec" in cols}
    if by == "auto":
        for k in ("path", "obsid", "sky"):
            if has[k]:
                return k
        raise TrainsetError(f"reference catalogue {str(catalogue)!r} gives no way to find spectra: map a path, an "
                            f"obsid or ra and dec (--map SRC=path, --map SRC=obsid, or --map RA=ra --map DEC=dec).")
    if not has[by]:
        need = {"path": "a path column (--map SRC=path)", "obsid": "an obsid column (--map SRC=obsid)",
                "sky": "ra and dec columns (--map SRC=ra --map SRC=dec)"}[by]
        raise TrainsetError(f"--by {by}: the reference catalogue {str(catalogue)!r} ({FORMAT_NAMES[fmt]} format) "
                            f"has no {need}.")
    return by


def _load_index(index, data_dir):
    from jaxvac.io.spectra_index import SpectraIndexError, lrs_catalogue_index, read_index
    from jaxvac.io.tables import TableError, column_names

    if index is None:
        return None
    if not isinstance(index, (str, os.PathLike)):
        return index  # a SpectraIndex already
    try:
        names = {n.lower() for n in column_names(index, hint="check the --index path")}
    except TableError as e:
        raise TrainsetError(str(e)) from None
    try:
        if "path" not in names and {"lmjd", "planid", "spid", "fiberid"} <= names:
            if data_dir is None:
                raise TrainsetError(f"--index {str(index)!r} is a LAMOST LRS catalogue (no path column): give the "
                                    f"folder of its spectra with --data DIR.")
            return lrs_catalogue_index(index, data_dir)
        return read_index(index)
    except SpectraIndexError as e:
        raise TrainsetError(str(e)) from None


def _attach_spectra(cols: dict, key: str, index, data_dir, mcfg, catalogue, relative_to, notes, label_names):
    """The output table: one row per (star, matched spectrum), with obsid, path and snrg first."""
    from jaxvac.io.match import as_ids, match_obsid, match_sky

    idx = _load_index(index, data_dir)
    n = len(cols["ref_row"])
    if key == "path":
        # Relative paths: below --data when given, else left for `jaxvac train` to take below its data_dir.
        paths = np.array([p if not p or os.path.isabs(p) or data_dir is None else os.path.join(os.fspath(data_dir), p)
                          for p in cols["path"]], dtype=object)
        obsid = as_ids(cols["obsid"]) if "obsid" in cols else np.full(n, -1, np.int64)
        snrg = np.full(n, np.nan)
        if idx is not None and len(idx):
            at = {os.path.normpath(p): i for i, p in enumerate(idx["path"]) if p}
            hit = np.array([at.get(os.path.normpath(os.path.abspath(p)), -1) if p else -1 for p in paths], np.int64)
            found = hit >= 0
            snrg[found] = idx["snrg"][hit[found]]
            obsid = np.where(found & (obsid < 0), idx["obsid"][np.maximum(hit, 0)], obsid)
            if (~found).any():
                notes.append(f"{int((~found).sum()):,} paths are not in the index: their snrg is unknown")
        rows = np.arange(n)
        table = _assemble(cols, rows, obsid, paths, snrg, None, relative_to, label_names)
        return table, None
    if idx is None:
        raise TrainsetError(f"matching by {key} needs a spectra index: give --index INDEX (from `jaxvac index DIR "
                            f"--out INDEX.fits`) or the official LRS catalogue with --index CAT --data DIR.")
    usable = np.array([bool(p) for p in idx["path"]], dtype=bool)
    tried = []
    if idx.class_known and mcfg.classes:
        usable &= np.isin(idx["class"].astype(str), list(mcfg.classes))
        tried.append(f"class {'/'.join(mcfg.classes)}")
    elif mcfg.classes:
        notes.append(f"the index has no class column: [match] classes {list(mcfg.classes)} not checked")
    if mcfg.require_rv and idx.rv_known:
        usable &= np.isfinite(idx["rv"])
        tried.append("a redshift in the header")
    elif mcfg.require_rv:
        notes.append("the index has no redshift (z or rv) column: [match] require_rv not checked")
    if idx.n_missing:
        notes.append(f"{idx.n_missing:,} rows of the LRS catalogue have no file under {data_dir} "
                     f"(e.g. {', '.join(idx.missing_examples)})")
    snrg_ok = np.isfinite(idx["snrg"]).any()
    repeats = mcfg.repeats if (snrg_ok or mcfg.repeats == "all") else "all"
    if repeats != mcfg.repeats:
        notes.append('the index has no snrg: repeats = "all" instead of "best"')
    if key == "obsid":
        m = match_obsid(cols["obsid"], idx["obsid"], repeats=repeats, snrg=idx["snrg"], usable=usable)
    else:
        m = match_sky(cols["ra"], cols["dec"], idx["ra"], idx["dec"], radius_arcsec=mcfg.radius_arcsec,
                      repeats=repeats, snrg=idx["snrg"], usable=usable)
    m = dataclasses.replace(m, tried=m.tried + (f" ({', '.join(tried)})" if tried else "") + f" of {idx.source}")
    if not len(m.row):
        raise TrainsetError(_no_match_message(cols, key, m, idx, usable, mcfg, catalogue))
    table = _assemble(cols, m.row, idx["obsid"][m.index], idx["path"][m.index], idx["snrg"][m.index],
                      m.sep_arcsec if key == "sky" else None, relative_to, label_names)
    return table, m


def _no_match_message(cols, key, m, idx, usable, mcfg, catalogue) -> str:
    head = (f"none of the {m.n_rows:,} rows of {str(catalogue)!r} found a spectrum: tried {m.tried}")
    if key == "sky":
        from scipy.spatial import cKDTree

        from jaxvac.io.match import separation_arcsec, unit_vectors

        ok = np.isfinite(cols["ra"]) & np.isfinite(cols["dec"])
        use = np.nonzero(usable & np.isfinite(idx["ra"]) & np.isfinite(idx["dec"]))[0]
        if ok.any() and len(use):
            tree = cKDTree(unit_vectors(idx["ra"][use], idx["dec"][use]))
            _, j = tree.query(unit_vectors(cols["ra"][ok], cols["dec"][ok]))
            sep = separation_arcsec(cols["ra"][ok], cols["dec"][ok], idx["ra"][use[j]], idx["dec"][use[j]])
            head += f"; the nearest usable spectrum lies a median {np.median(sep):.3g} arcsec from a row"
        return (head + f". Check that RA and Dec are degrees (ICRS) and that the index covers these stars (build it "
                       f"with `jaxvac index DIR --out INDEX.fits`), or raise [match] radius_arcsec.")
    examples = ", ".join(str(v) for v in _as_list(cols["obsid"])[:3])
    return head + (f" (e.g. obsid {examples} are not in it). Check that the index was built from the spectra "
                   f"these obsids name, or match by sky position (--by sky).")


def _as_list(a) -> list:
    return a.tolist() if hasattr(a, "tolist") else list(a)


def _assemble(cols, rows, obsid, paths, snrg, sep, relative_to, label_names) -> dict:
    """Ordered output columns for rows ``rows`` of ``cols`` (labels: those of ``label_names`` it has)."""
    if relative_to is not None:
        base = os.path.abspath(os.fspath(relative_to))
        paths = np.array([os.path.relpath(p, base) if p else p for p in paths], dtype=object)
    out = {"obsid": np.asarray(obsid, np.int64), "path": np.asarray(paths, dtype=object),
           "snrg": np.asarray(snrg, np.float64)}
    for label in label_names:
        for name in (label, f"Err_{label}"):
            if name in cols:
                out[name] = np.asarray(cols[name], np.float64)[rows]
    for name in CURATION_COLUMNS:
        if name in cols and name not in out:
            out[name] = np.asarray(cols[name], np.float64)[rows]
    if "ref_id" in cols:
        out["ref_id"] = np.asarray(cols["ref_id"], dtype=object)[rows]
    elif "id" in cols:
        out["ref_id"] = np.asarray(cols["id"], dtype=object)[rows]
    out["ref_row"] = np.asarray(cols["ref_row"], np.int64)[rows]
    if sep is not None:
        out["sep_arcsec"] = np.asarray(sep, np.float64)
    return out


# ----------------------------------------------------------------------------------------------
# Writing


def _write(out: Path, table: dict, units: dict) -> int:
    n = len(table["obsid"])
    if out.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        from jaxvac.io.atomic import atomic_path

        arrays = {k: (pa.array([str(x) for x in v], pa.string()) if v.dtype == object else pa.array(v))
                  for k, v in table.items()}
        t = pa.table(arrays)
        import json

        t = t.replace_schema_metadata({b"jaxvac.units": json.dumps({k: u for k, u in units.items() if k in table}).encode()})
        with atomic_path(out) as tmp:
            pq.write_table(t, tmp)
        return n
    from jaxvac.io.fitstable import write_tables

    fields, arrays = [], {}
    for k, v in table.items():
        if v.dtype == object:
            enc = [str(x).encode("utf-8") for x in v]
            v = np.array(enc, dtype=f"S{max([1] + [len(b) for b in enc])}")
        arrays[k] = v
        fields.append((k, v.dtype))
    rows = np.empty(n, fields)
    for k, v in arrays.items():
        rows[k] = v
    write_tables(out, [("TRAINSET", rows, {k: u for k, u in units.items() if k in table}, None)])
    return n
