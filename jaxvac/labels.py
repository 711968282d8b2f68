"""The labels the networks predict, as data: names, units, training sets, ranges; and feh_VMP.

A config lists them in ``[labels]`` (one list per training set) and ``[vmp]``; configs/dr8.toml
holds the paper's 23 labels in three sets (SPEC.md "Networks", Table 1 ranges) and its
very-metal-poor re-estimate. :class:`LabelSchema` is what one model predicts:
:meth:`LabelSchema.from_config` picks the sets that ``[train.catalogs]`` names (one network per
label of those sets, all in one fused stack; the VMP network only when its two input labels are
among them), a checkpoint stores it (:meth:`to_metadata`) and ``jaxvac run`` writes exactly its
columns (:meth:`from_metadata`). Names are catalogue column names; training catalogues use the
same names for their label columns and ``Err_<name>`` for their errors.

``PAPER`` is dr8.toml's schema; ``LABELS``, ``LABEL_NAMES``, ``TRAINING_SETS`` and ``VMP`` are
its parts, used where the paper's own labels are meant (the simulator, the published reference
catalogue layouts).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from jaxvac.errors import JaxvacError


class LabelError(ValueError, JaxvacError):
    """A label list that cannot be used; the message names the key and the fix."""


@dataclasses.dataclass(frozen=True)
class Label:
    name: str  # catalogue column
    unit: str  # FITS TUNIT ("dex" for logarithmic quantities)
    training_set: str  # the [train.catalogs] key whose catalogue holds its training stars
    lo: float  # effective range (Table 1 for the paper's labels); -inf/inf where none is given
    hi: float
    description: str


@dataclasses.dataclass(frozen=True)
class VmpRule:
    """The very-metal-poor re-estimate (SPEC.md "Networks"): its own network, trained on the stars
    of ``feh_label``'s set with feh_label <= ``train_feh_max``, input 3900-4400 A; applied where
    feh_label < ``feh_max`` and teff_label < ``teff_max``."""

    label: Label  # its catalogue column (feh_VMP)
    feh_label: str
    teff_label: str
    feh_max: float  # dex, candidate rule
    teff_max: float  # K, candidate rule
    train_feh_max: float  # dex, training stars


_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
# Catalogue columns that are not labels (jaxvac.run.catalog): a label may not take their names.
RESERVED = ("gaiaid", "obsid", "designation", "ra_obs", "dec_obs", "gl", "gb", "snrg", "rv", "EBV", "uqflag",
            "dist_phot", "X", "Y", "Z", "ood_score", "qflag", "path")


@dataclasses.dataclass(frozen=True)
class LabelSchema:
    """The labels of one model: ``labels`` in network (member) order, and the VMP rule or None."""

    labels: tuple[Label, ...]
    vmp: VmpRule | None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(lab.name for lab in self.labels)

    @property
    def sets(self) -> tuple[str, ...]:
        """Training sets in order of first appearance."""
        return tuple(dict.fromkeys(lab.training_set for lab in self.labels))

    @property
    def with_vmp(self) -> tuple[Label, ...]:
        """labels, then the VMP label if there is one."""
        return self.labels + ((self.vmp.label,) if self.vmp else ())

    @property
    def units(self) -> dict[str, str]:
        return {lab.name: lab.unit for lab in self.with_vmp}

    def index(self, name: str) -> int:
        return self.names.index(name)

    def of_set(self, set_name: str) -> list[int]:
        """Member indices of the labels of one training set."""
        return [k for k, lab in enumerate(self.labels) if lab.training_set == set_name]

    def ranges(self) -> list[list[float]]:
        """(M, 2) [lo, hi] of the labels (configured ranges; -inf/inf where none)."""
        return [[lab.lo, lab.hi] for lab in self.labels]

    def vmp_indices(self) -> tuple[int, int, float, float] | None:
        """(feh index, teff index, feh_max, teff_max) of the candidate rule, or None: hashable,
        the static argument of :func:`jaxvac.model.predict_standardized`."""
        v = self.vmp
        return None if v is None else (self.index(v.feh_label), self.index(v.teff_label), v.feh_max, v.teff_max)

    def to_metadata(self) -> dict:
        """The checkpoint's record (JSON-able; inf as the string "inf" by the checkpoint writer)."""
        meta = {"labels": list(self.names), "units": [lab.unit for lab in self.labels],
                "training_sets": [lab.training_set for lab in self.labels], "ranges": self.ranges(),
                "descriptions": [lab.description for lab in self.labels], "vmp": None}
        if self.vmp:
            v = self.vmp
            meta["vmp"] = {"name": v.label.name, "unit": v.label.unit, "range": [v.label.lo, v.label.hi],
                           "description": v.label.description, "feh_label": v.feh_label, "teff_label": v.teff_label,
                           "feh_max": v.feh_max, "teff_max": v.teff_max, "train_feh_max": v.train_feh_max}
        return meta

    @classmethod
    def from_metadata(cls, meta: Mapping) -> LabelSchema:
        """From a checkpoint's metadata. Checkpoints written before labels were data (always the
        paper's 23 and its VMP rule) lack descriptions and the rule's fields: the paper's fill them."""
        names = list(meta["labels"])
        n = len(names)
        desc = list(meta.get("descriptions") or [PAPER_DESCRIPTIONS.get(x, "") for x in names])
        labels = tuple(Label(names[k], str(meta["units"][k]), str(meta["training_sets"][k]),
                             _num(meta["ranges"][k][0]), _num(meta["ranges"][k][1]), str(desc[k])) for k in range(n))
        v = meta.get("vmp")
        rule = None
        if v:
            old = "feh_label" not in v  # format-2 checkpoints of the paper's fixed labels
            p = _PAPER_RULE_DEFAULTS
            rule = VmpRule(Label(v["name"], v["unit"], "", _num(v["range"][0]), _num(v["range"][1]),
                                 v.get("description", p["description"])),
                           feh_label=p["feh_label"] if old else v["feh_label"],
                           teff_label=p["teff_label"] if old else v["teff_label"],
                           feh_max=float(p["feh_max"] if old else v["feh_max"]),
                           teff_max=float(p["teff_max"] if old else v["teff_max"]),
                           train_feh_max=float(v.get("train_feh_max", p["train_feh_max"])))
            rule = dataclasses.replace(rule, label=dataclasses.replace(
                rule.label, training_set=labels[names.index(rule.feh_label)].training_set))
        return cls(labels=labels, vmp=rule)

    @classmethod
    def from_config(cls, cfg: Mapping, sets: tuple[str, ...] | None = None) -> LabelSchema:
        """The labels ``[labels]`` lists for ``sets`` (default: the keys of ``[train.catalogs]``, in
        their order), and the ``[vmp]`` rule when enabled and both its input labels are among them.
        Raises LabelError naming the key for a malformed entry, a duplicate or reserved name, or a
        set without a label list."""
        where = (cfg.get("_source") or ["<config>"])[-1]
        table = cfg.get("labels", {})
        if not isinstance(table, Mapping) or not table:
            raise LabelError(f"In {where}: [labels] is missing or empty; give one list per training set, e.g. "
                             f"[labels] PASTEL = [{{ name = \"Teff_PASTEL\", unit = \"K\" }}] (see dr8.toml).")
        if sets is None:
            sets = tuple((cfg.get("train") or {}).get("catalogs") or {})
        labels: list[Label] = []
        for s in sets:
            if s not in table:
                raise LabelError(f"In {where}: [train.catalogs] {s} has no label list; add [labels] {s} = "
                                 f"[{{ name = \"...\", unit = \"...\" }}, ...] (the sets listed are {sorted(table)}), "
                                 f"or remove {s} from [train.catalogs].")
            entries = table[s]
            if not isinstance(entries, list) or not entries:
                raise LabelError(f"In {where}: labels.{s} must be a non-empty list of tables "
                                 f"{{ name, unit, range?, description? }}, got {entries!r}.")
            for i, e in enumerate(entries):
                labels.append(_label(e, s, f"labels.{s}[{i}]", where))
        seen: set[str] = set()
        for lab in labels:
            if lab.name in seen:
                raise LabelError(f"In {where}: label {lab.name!r} is listed twice in [labels]; each network needs a "
                                 f"distinct column name (suffix the set, as Teff_PASTEL / logg_APOGEE).")
            seen.add(lab.name)
        if not labels:
            raise LabelError(f"In {where}: no labels to train: [train.catalogs] names no set; add one, e.g. "
                             f"[train.catalogs] PASTEL = \"catalogs/train_pastel.fits\".")
        return cls(labels=tuple(labels), vmp=_vmp(cfg.get("vmp", {}), labels, where))


def checkpoint_schema(metadata: Mapping | None) -> LabelSchema:
    """The labels of a checkpoint's metadata (``LabelSchema.from_metadata``); the paper's for
    metadata without a label list (a Predictor or record built by hand: tests, benchmarks)."""
    return LabelSchema.from_metadata(metadata) if metadata and "labels" in metadata else PAPER


def _num(v) -> float:
    return float(v)  # float("inf"), float("-inf") read the checkpoint's strings too


def _label(e, set_name: str, key: str, where: str) -> Label:
    if not isinstance(e, Mapping):
        raise LabelError(f"In {where}: {key} must be a table {{ name, unit, range?, description? }}, got {e!r}.")
    unknown = sorted(set(e) - {"name", "unit", "range", "description"})
    if unknown or "name" not in e or "unit" not in e:
        raise LabelError(f"In {where}: {key} {'has unknown key(s) ' + str(unknown) if unknown else 'lacks name or unit'}; "
                         f"write {{ name = \"Teff_GALAH\", unit = \"K\", range = [3000.0, 8000.0], "
                         f"description = \"...\" }} (range and description optional).")
    name, unit = e["name"], e["unit"]
    if not isinstance(name, str) or not name or not set(name) <= _NAME_OK or name[0].isdigit() or len(name) > 60:
        raise LabelError(f"In {where}: {key}.name must be a column name of letters, digits and _ (not first a "
                         f"digit, <= 60 characters), got {name!r}.")
    if name in RESERVED or name.startswith(("Err_", "flag_")):
        raise LabelError(f"In {where}: {key}.name {name!r} is a catalogue column of its own (or an Err_/flag_ "
                         f"prefix); rename the label, e.g. {name}_{set_name}.")
    if not isinstance(unit, str):
        raise LabelError(f"In {where}: {key}.unit must be a string such as \"K\", \"dex\", \"mag\" or \"\", got {unit!r}.")
    lo, hi = -math.inf, math.inf
    if "range" in e:
        r = e["range"]
        ok = isinstance(r, list) and len(r) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in r)
        if not ok or not r[0] < r[1]:
            raise LabelError(f"In {where}: {key}.range must be [lo, hi] with lo < hi in {unit or 'the label unit'}, got {r!r}.")
        lo, hi = float(r[0]), float(r[1])
    return Label(name, unit, set_name, lo, hi, str(e.get("description", "")))


def _vmp(v, labels: list[Label], where: str) -> VmpRule | None:
    if not isinstance(v, Mapping):
        raise LabelError(f"In {where}: [vmp] must be a table, got {v!r}.")
    keys = {"enabled", "name", "unit", "range", "description", "feh_label", "teff_label", "candidate_feh_max",
            "candidate_teff_max", "train_feh_max"}
    unknown = sorted(set(v) - keys)
    if unknown:
        raise LabelError(f"In {where}: unknown key(s) {unknown} in [vmp]; allowed keys are {sorted(keys)}.")
    if not v or not v.get("enabled", True):
        return None
    by_name = {lab.name: lab for lab in labels}
    if v.get("feh_label") not in by_name or v.get("teff_label") not in by_name:
        return None  # the VMP network trains only when its labels exist
    lab = _label({k: v[k] for k in ("name", "unit", "range", "description") if k in v},
                 by_name[v["feh_label"]].training_set, "vmp", where)
    if lab.name in by_name:
        raise LabelError(f"In {where}: [vmp] name {lab.name!r} is also a label of [labels]; give it its own name.")
    try:
        return VmpRule(lab, v["feh_label"], v["teff_label"], float(v["candidate_feh_max"]),
                       float(v["candidate_teff_max"]), float(v["train_feh_max"]))
    except (KeyError, TypeError, ValueError) as e:
        raise LabelError(f"In {where}: [vmp] needs numbers candidate_feh_max, candidate_teff_max and train_feh_max "
                         f"({type(e).__name__}: {e}); inherit them with base = \"dr8.toml\".") from None


def _paper() -> LabelSchema:
    from jaxvac.config import recipe

    return LabelSchema.from_config(recipe())


PAPER: LabelSchema = _paper()
LABELS: tuple[Label, ...] = PAPER.labels
LABEL_NAMES: tuple[str, ...] = PAPER.names
TRAINING_SETS: tuple[str, ...] = PAPER.sets
VMP: Label = PAPER.vmp.label
VMP_FEH_MAX = PAPER.vmp.feh_max  # dex, candidate rule on feh_PASTEL
VMP_TEFF_MAX = PAPER.vmp.teff_max  # K, candidate rule on Teff_PASTEL
VMP_TRAIN_FEH_MAX = PAPER.vmp.train_feh_max  # dex, training stars of the VMP net
PAPER_DESCRIPTIONS = {lab.name: lab.description for lab in PAPER.with_vmp}
_PAPER_RULE_DEFAULTS = {"feh_label": PAPER.vmp.feh_label, "teff_label": PAPER.vmp.teff_label, "feh_max": VMP_FEH_MAX,
                        "teff_max": VMP_TEFF_MAX, "train_feh_max": VMP_TRAIN_FEH_MAX, "description": VMP.description}

if len(LABELS) != 23:  # pragma: no cover - guards edits of dr8.toml [labels]
    raise RuntimeError(f"configs/dr8.toml [labels] must give the paper's 23 labels, got {len(LABELS)}")
