"""Draw docs/img/simulated_spectra.png: simulated LAMOST spectra across Teff and [Fe/H].

Left: dwarfs from 3,600 to 9,500 K at [Fe/H] = 0; right: giants (4,800 K, logg 2.5) from
[Fe/H] = +0.3 to -4. Each spectrum is the simulator's model at S/N(g) = 100 with its noise,
divided by the model continuum, offset for clarity; the network windows are shaded.

Usage: python docs/make_sim_plot.py [--out docs/img/simulated_spectra.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def spectra_for(labels, rng):
    from jaxvac.simulate import spectra, survey

    t, g, f, a, c, n = (np.array(v, float) for v in zip(*labels))
    z = np.zeros(t.size)
    model, cont = spectra.stellar_model(t, g, f, a, c, n, z, z, np.zeros((t.size, 3)), z, z + 0.2)
    bands = survey._band_snr(np.full(t.size, 100.0), t, z).astype(float)
    flux, _ = spectra.observe(model, cont, bands, np.ones(t.size), rng)
    return flux / cont


def main(argv=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxvac.constants import WINDOWS, global_wavelength

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(REPO / "docs" / "img" / "simulated_spectra.png"))
    args = ap.parse_args(argv)
    rng = np.random.default_rng(2022)
    lam = global_wavelength()
    dwarfs = [(3600, 4.8, 0, 0, 0, 0), (4500, 4.65, 0, 0, 0, 0), (5500, 4.5, 0, 0, 0, 0),
              (6500, 4.25, 0, 0, 0, 0), (8000, 4.15, 0, 0, 0, 0), (9500, 4.1, 0, 0, 0, 0)]
    giants = [(4800, 2.5, f, float(np.clip(-0.3 * f, 0, 0.35)), 0.0 if f > -2 else 0.2, 0.3) for f in
              (0.3, -0.5, -1.0, -2.0, -3.0, -4.0)]
    fig, axes = plt.subplots(1, 2, figsize=(14, 7.5), sharey=True)
    for ax, labels, title, fmt in ((axes[0], dwarfs, "dwarfs, [Fe/H] = 0", "Teff {0:.0f} K, logg {1:.2f}"),
                                   (axes[1], giants, "giants, Teff 4,800 K, logg 2.5",
                                    "[Fe/H] {2:+.1f}, [a/M] {3:.2f}")):
        norm = spectra_for(labels, rng)
        for k, (lab, f) in enumerate(zip(labels, norm)):
            off = 1.1 * (len(labels) - 1 - k)
            ax.plot(lam, f + off, lw=0.45, color=plt.cm.plasma(k / len(labels)))
            ax.text(6200, off + 1.02, fmt.format(*lab), fontsize=8, ha="left", va="bottom")
        for lo, hi in WINDOWS:
            ax.axvspan(lo, hi, color="0.92", zorder=0)
        ax.set_title(f"simulated LAMOST LRS spectra (S/N 100): {title}", fontsize=10)
        ax.set_xlabel("vacuum wavelength (Angstrom)")
        ax.set_xlim(3650, 9150)
    axes[0].set_ylabel("flux / continuum + offset")
    axes[0].set_ylim(-0.1, 1.1 * 6 + 0.15)
    fig.text(0.5, 0.005, "shaded: the network windows 3,900-5,800 and 8,450-8,950 A; jaxvac.simulate "
             "(docs/simulator.md)", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=72)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
