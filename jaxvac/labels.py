"""The 23 network labels and feh_VMP: names, units, training sets and effective ranges.

Names are the catalogue column names of SPEC.md ("The catalogue"); training catalogues use the
same names for their label columns and ``Err_<name>`` for their errors. Ranges are the effective
ranges of Table 1 of Wang et al. (2022) as restated in SPEC.md ("Networks"): a label outside its
range gets flag 1. A trained checkpoint stores the ranges it was trained with.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Label:
    name: str  # catalogue column
    unit: str  # FITS TUNIT
    training_set: str  # "PASTEL", "APOGEE" or "LGMWAS"
    lo: float  # effective range, inclusive-exclusive doesn't matter at float precision
    hi: float
    description: str


TRAINING_SETS = ("PASTEL", "APOGEE", "LGMWAS")

LABELS: tuple[Label, ...] = (
    Label("Teff_PASTEL", "K", "PASTEL", 3500.0, 10000.0, "effective temperature"),
    Label("logg_PASTEL", "dex", "PASTEL", 0.0, 5.0, "surface gravity, log10(g / cm s^-2)"),
    Label("feh_PASTEL", "dex", "PASTEL", -3.8, 0.5, "[Fe/H]"),
    Label("logg_APOGEE", "dex", "APOGEE", 0.0, 5.0, "surface gravity, log10(g / cm s^-2)"),
    Label("feh_APOGEE", "dex", "APOGEE", -2.3, 0.5, "[Fe/H]"),
    Label("MH_APOGEE", "dex", "APOGEE", -2.3, 0.5, "[M/H]"),
    Label("AFE_APOGEE", "dex", "APOGEE", -0.2, 0.4, "[alpha/M]"),
    Label("CFE_APOGEE", "dex", "APOGEE", -0.6, 0.4, "[C/Fe]"),
    Label("NFE_APOGEE", "dex", "APOGEE", -0.3, 0.6, "[N/Fe]"),
    Label("a_gg", "mag", "LGMWAS", -2.5, 7.5, "absolute magnitude, Gaia EDR3 G"),
    Label("a_bp", "mag", "LGMWAS", -2.0, 8.0, "absolute magnitude, Gaia EDR3 BP"),
    Label("a_rp", "mag", "LGMWAS", -2.5, 7.0, "absolute magnitude, Gaia EDR3 RP"),
    Label("a_j", "mag", "LGMWAS", -4.0, 6.0, "absolute magnitude, 2MASS J"),
    Label("a_h", "mag", "LGMWAS", -5.0, 5.0, "absolute magnitude, 2MASS H"),
    Label("a_ks", "mag", "LGMWAS", -5.0, 5.0, "absolute magnitude, 2MASS Ks"),
    Label("a_w1", "mag", "LGMWAS", -5.0, 5.0, "absolute magnitude, WISE W1"),
    Label("a_w2", "mag", "LGMWAS", -5.0, 5.0, "absolute magnitude, WISE W2"),
    Label("a_bap", "mag", "LGMWAS", -1.0, 8.0, "absolute magnitude, APASS B"),
    Label("a_vap", "mag", "LGMWAS", -2.0, 8.0, "absolute magnitude, APASS V"),
    Label("a_rap", "mag", "LGMWAS", -2.0, 8.0, "absolute magnitude, APASS r"),
    Label("a_gsd", "mag", "LGMWAS", -1.0, 8.0, "absolute magnitude, SDSS g"),
    Label("a_rsd", "mag", "LGMWAS", -2.0, 8.0, "absolute magnitude, SDSS r"),
    Label("a_isd", "mag", "LGMWAS", -2.0, 8.0, "absolute magnitude, SDSS i"),
)

LABEL_NAMES: tuple[str, ...] = tuple(l.name for l in LABELS)

# The very-metal-poor re-estimate (SPEC.md "Networks"): its own net, PASTEL stars with
# [Fe/H] <= -1.0, input 3900-4400 A; applied where feh_PASTEL < -1.5 and Teff_PASTEL < 6500 K.
VMP = Label("feh_VMP", "dex", "PASTEL", -3.8, -1.0, "[Fe/H] of very metal-poor candidates")
VMP_FEH_MAX = -1.5  # dex, candidate rule on feh_PASTEL
VMP_TEFF_MAX = 6500.0  # K, candidate rule on Teff_PASTEL
VMP_TRAIN_FEH_MAX = -1.0  # dex, training stars of the VMP net

if len(LABELS) != 23:  # pragma: no cover - guards edits of the table above
    raise RuntimeError(f"expected 23 labels, got {len(LABELS)}")
