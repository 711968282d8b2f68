"""A plausible Galactic stellar population for a magnitude-limited LAMOST-like survey.

Not a Galaxy model: no star-formation history, no isochrones, no density law. Stars are drawn
component by component (thin disc, thick disc, halo; mixture weights rising with |b|), then an
evolutionary phase (main sequence incl. M dwarfs and A/B stars, subgiant, red giant branch, red
clump, horizontal branch), then Teff/logg/mass from simple relations of each phase, then the
chemistry:

* [Fe/H]: thin N(-0.1, 0.2); thick N(-0.55, 0.25); halo N(-1.5, 0.45) with 22 % drawn uniformly
  in [-4, -2] (the very metal-poor tail the VMP network needs).
* [alpha/M]: low-alpha sequence 0.0 -> 0.08 at [Fe/H] = -1 (thin), high-alpha plateau 0.3
  falling to 0.1 at solar (thick), 0.3-0.4 in the halo with 30 % lower-alpha accreted stars.
* [M/H] = [Fe/H] + log10(0.638 10^[alpha/M] + 0.362) (Salaris, Chieffi & Straniero 1993).
* [C/Fe], [N/Fe]: about solar on the main sequence; first dredge-up below logg 3.4 lowers C by
  0.15 + 0.1 (M - 1) and raises N by 0.15 + 0.25 (M - 1) (mass dependent, as APOGEE [C/N]-age
  relations use); extra mixing above the RGB bump (logg < 2.2) grows with [Fe/H] deficiency;
  15 % of stars with [Fe/H] < -2 are carbon-enhanced (CEMP, [C/Fe] + 0.7..2).

Positions: LAMOST-like footprint (-10 < Dec < 60 deg) in 2.5-deg-radius plan fields. Distances
follow from an apparent G drawn from a magnitude-limited distribution (9.5 < G < 17.8, number
rising as 10^(0.22 G)) with extinction E(B-V) = E_inf(b) (1 - exp(-d |sin b| / 0.125 kpc)).
"""

from __future__ import annotations

import numpy as np

COMPONENTS = ("thin", "thick", "halo")
PHASES = ("ms", "subgiant", "rgb", "rc", "hb")
DUST_SCALE_HEIGHT = 0.125  # kpc
G_RANGE = (9.5, 17.8)  # apparent Gaia G of LAMOST LRS targets (mag)
FIELD_RADIUS = 2.5  # deg, LAMOST field of view radius

# ICRS -> Galactic rotation (Hipparcos, ESA 1997, vol. 1, sec. 1.5.3).
_ICRS_TO_GAL = np.array([[-0.0548755604162154, -0.8734370902348850, -0.4838350155487132],
                         [0.4941094278755837, -0.4448296299600112, 0.7469822444972189],
                         [-0.8676661490190047, -0.1980763734312015, 0.4559837761750669]])


def icrs_to_galactic(ra, dec):
    """(l, b) in degrees from ICRS (ra, dec) in degrees."""
    ra, dec = np.radians(ra), np.radians(dec)
    v = np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
    g = np.einsum("ij,jn->in", _ICRS_TO_GAL, v, optimize=False)
    l = np.degrees(np.arctan2(g[1], g[0])) % 360.0
    b = np.degrees(np.arcsin(np.clip(g[2], -1.0, 1.0)))
    return l, b


def field_centres(rng, n_fields):
    """Plan field centres (ra, dec) deg, uniform on the sphere within -10 < Dec < 60."""
    s0, s1 = np.sin(np.radians(-10.0)), np.sin(np.radians(60.0))
    dec = np.degrees(np.arcsin(rng.uniform(s0, s1, n_fields)))
    ra = rng.uniform(0.0, 360.0, n_fields)
    return ra, dec


def positions_in_fields(rng, ra0, dec0):
    """Uniform positions within FIELD_RADIUS of each field centre (small-angle offsets)."""
    r = FIELD_RADIUS * np.sqrt(rng.random(ra0.size))
    phi = rng.uniform(0, 2 * np.pi, ra0.size)
    dec = np.clip(dec0 + r * np.sin(phi), -89.9, 89.9)
    ra = (ra0 + r * np.cos(phi) / np.cos(np.radians(dec))) % 360.0
    return ra, dec


def _normal_clipped(rng, mu, sd, lo, hi, n):
    return np.clip(rng.normal(mu, sd, n), lo, hi)


def draw_stars(rng, b_deg, halo_fraction=0.10):
    """Intrinsic parameters of one star per Galactic latitude given: dict of (n,) arrays.

    Keys: component, phase (indices into COMPONENTS, PHASES), mass (Msun), teff (K), logg,
    feh, afe ([alpha/M]), mh, cfe, nfe (dex). halo_fraction: mean halo share over the sky.
    """
    n = b_deg.size
    sb = np.abs(np.sin(np.radians(b_deg)))
    p_halo = np.clip(halo_fraction * (0.4 + 1.2 * sb), 0, 0.9)
    p_thick = 0.12 + 0.18 * sb
    u = rng.random(n)
    comp = np.where(u < p_halo, 2, np.where(u < p_halo + p_thick, 1, 0))

    # Evolutionary phase per component: ms, subgiant, rgb, rc, hb.
    phase_p = np.array([[0.60, 0.08, 0.18, 0.14, 0.0],
                        [0.55, 0.10, 0.25, 0.10, 0.0],
                        [0.45, 0.10, 0.35, 0.0, 0.10]])
    cum = np.cumsum(phase_p[comp], axis=1)
    phase = np.minimum((rng.random(n)[:, None] > cum).sum(axis=1), 4)

    feh = np.empty(n)
    for c, (mu, sd, lo, hi) in enumerate(((-0.1, 0.2, -1.0, 0.55), (-0.55, 0.25, -2.0, 0.3),
                                         (-1.5, 0.45, -3.0, -0.3))):
        sel = comp == c
        feh[sel] = _normal_clipped(rng, mu, sd, lo, hi, sel.sum())
    tail = (comp == 2) & (rng.random(n) < 0.22)
    feh[tail] = rng.uniform(-4.0, -2.0, tail.sum())

    afe = np.where(comp == 0, -0.08 * np.clip(feh, -1.0, 0.5),
                   np.where(comp == 1, 0.3 - 0.2 * np.clip((feh + 0.8) / 0.8, 0.0, 1.2), 0.33))
    accreted = (comp == 2) & (rng.random(n) < 0.3)
    afe = np.where(accreted, 0.12 + 0.05 * np.clip(feh + 1.5, -1, 1), afe)
    afe = afe + rng.normal(0.0, 0.025, n)

    teff, logg, mass = _hr_position(rng, comp, phase, feh)

    cfe = rng.normal(0.0, 0.05, n) + 0.08 * np.clip(-feh - 1.0, 0.0, 2.0)
    nfe = rng.normal(0.0, 0.07, n)
    fdu = _sigmoid((3.4 - logg) / 0.12) * (phase != 0)  # first dredge-up
    m = np.clip(mass, 0.7, 3.0)
    cfe = cfe - fdu * (0.15 + 0.10 * (m - 1.0))
    nfe = nfe + fdu * (0.15 + 0.25 * (m - 1.0))
    extra = np.clip(2.2 - logg, 0.0, 2.0) * np.clip(-0.5 - feh, 0.0, 2.0) * ((phase == 2) | (phase == 4))
    extra = extra + 0.6 * (phase == 4)
    cfe = cfe - 0.25 * extra
    nfe = nfe + 0.2 * extra
    cemp = (feh < -2.0) & (rng.random(n) < 0.15)
    cfe = np.where(cemp, cfe + rng.uniform(0.7, 2.0, n), cfe)
    mh = feh + np.log10(0.638 * 10**afe + 0.362)
    return dict(component=comp, phase=phase, mass=mass, teff=teff, logg=logg, feh=feh, afe=afe,
                mh=mh, cfe=cfe, nfe=nfe)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def main_sequence_logg(teff, feh):
    """ZAMS-like logg and mass from Teff: M = (Teff / 5772 K)^(1/0.55) 10^(0.15 [Fe/H]) Msun,
    R = M^0.8 Rsun, logg = 4.438 + log10(M) - 2 log10(R) (solar logg 4.438)."""
    mass = (teff / 5772.0) ** (1 / 0.55) * 10 ** (0.15 * feh)
    radius = mass**0.8
    return 4.438 + np.log10(mass) - 2 * np.log10(radius), mass


def _hr_position(rng, comp, phase, feh):
    n = comp.size
    teff = np.empty(n)
    logg = np.empty(n)
    mass = np.empty(n)
    old = comp > 0
    # Main sequence: F/G-rich magnitude-limited mix, K/M dwarfs, hot A/B stars (thin disc).
    ms = phase == 0
    u = rng.random(n)
    t_ms = np.where(u < 0.62, rng.normal(5900.0, 550.0, n),
                    np.where(u < 0.88, rng.uniform(3300.0, 5300.0, n), rng.uniform(6800.0, 11000.0, n)))
    t_ms = np.where(old, np.clip(t_ms, 3400.0, 6300.0 - 150 * np.clip(feh + 1, -2, 1)), np.clip(t_ms, 3300.0, 11000.0))
    lg, mms = main_sequence_logg(t_ms, feh)
    evo = rng.uniform(0.0, 0.35, n) * _sigmoid((t_ms - 5200.0) / 200.0)  # age: off the ZAMS
    teff[ms], logg[ms], mass[ms] = t_ms[ms], (lg - evo)[ms], mms[ms]
    # Subgiants: between the turn-off and the RGB base.
    sg = phase == 1
    f = rng.random(n)
    teff[sg] = (6100.0 - 1000.0 * f - 120.0 * np.clip(feh, -2, 0.5))[sg]
    logg[sg] = (4.0 - 0.6 * f + rng.normal(0, 0.05, n))[sg]
    # Red giant branch: Teff from logg and [Fe/H] (metal-poor giants are hotter).
    rgb = phase == 2
    g_rgb = rng.uniform(0.5, 3.6, n)
    teff[rgb] = (4700.0 + 300.0 * (g_rgb - 2.5) - 170.0 * np.clip(feh, -4, 0.5) + rng.normal(0, 50, n))[rgb]
    logg[rgb] = g_rgb[rgb]
    # Red clump (disc, [Fe/H] > -1) and horizontal branch (halo: red and blue HB).
    rc = phase == 3
    teff[rc] = (4750.0 - 250.0 * np.clip(feh, -1, 0.5) + rng.normal(0, 80, n))[rc]
    logg[rc] = rng.normal(2.45, 0.1, n)[rc]
    hb = phase == 4
    blue = rng.random(n) < 0.5
    teff[hb] = np.where(blue, rng.uniform(7500.0, 10000.0, n), rng.uniform(5400.0, 7000.0, n))[hb]
    logg[hb] = np.where(blue, rng.uniform(3.0, 3.6, n), rng.uniform(2.3, 2.9, n))[hb]
    # Masses of evolved stars: younger thin-disc giants are heavier.
    m_young = np.exp(rng.uniform(np.log(0.9), np.log(2.8), n))
    m_old = rng.uniform(0.78, 1.0, n)
    evolved = ~ms
    mass[evolved] = np.where(old, m_old, m_young)[evolved]
    mass[hb] = rng.uniform(0.55, 0.75, n)[hb]
    return teff, logg, mass


def place_stars(rng, b_deg, abs_g, g_app=None, *, r_g: float):
    """Distances and reddening for stars of absolute magnitude abs_g seen at latitude b.

    Apparent G is drawn from the magnitude-limited distribution unless given. Solves
    G = M_G + 5 log10(100 d) + R_G E(B-V)(d) by fixed-point iteration (d in kpc, clipped to
    [0.01, 60] kpc), with r_g = R_G = A_G / E(B-V) (configs/dr8.toml [photometry.r_band] a_gg,
    which the survey passes). Returns (g_app, d_kpc, ebv).
    """
    n = b_deg.size
    if g_app is None:
        lo, hi = G_RANGE
        k = 0.22 * np.log(10.0)
        u = rng.random(n)
        g_app = np.log(np.exp(k * lo) + u * (np.exp(k * hi) - np.exp(k * lo))) / k
    sb = np.maximum(np.abs(np.sin(np.radians(b_deg))), 0.02)
    e_inf = np.minimum(0.03 / sb, 1.5) * rng.lognormal(0.0, 0.3, n)
    ebv = np.zeros(n)
    for _ in range(8):
        d = np.clip(10 ** ((g_app - abs_g - r_g * ebv) / 5.0 - 2.0), 0.01, 60.0)
        ebv = e_inf * (1.0 - np.exp(-d * sb / DUST_SCALE_HEIGHT))
    g_app = abs_g + 5 * np.log10(100.0 * d) + r_g * ebv  # consistent after the clip
    return g_app, d, ebv
