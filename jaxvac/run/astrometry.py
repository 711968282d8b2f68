"""Galactic coordinates, spectro-photometric distances and Galactocentric positions.

Vectorised over catalogue rows (astropy on arrays, never a loop over rows). Inputs are NumPy
arrays of equal length N; NaN in means NaN out.

References:
    Wang et al. (2022), LAMOST DR8 VAC, Section 5 (distances from M_Ks).
    Yuan, Liu & Xiang (2013), MNRAS 430, 2188: R_Ks = 0.306 from star pairs.
    Astropy's Galactocentric frame (GRAVITY 2018 R0 = 8.122 kpc, z_sun = 20.8 pc).
"""

from __future__ import annotations

import dataclasses
import functools

import astropy.units as u
import numpy as np
from astropy.coordinates import Galactocentric, SkyCoord

from jaxvac.config import recipe_defaults


@dataclasses.dataclass(frozen=True)
@recipe_defaults("astrometry")
class AstrometryConfig:
    """Table ``[astrometry]`` of a config; the defaults are those of configs/dr8.toml [astrometry].

    r_ks: A_Ks / E(B-V) (Yuan, Liu & Xiang 2013 star-pair calibration: 0.306).
    ks_label: the label that is M_Ks, the absolute Ks magnitude dist_phot rests on ("a_ks"); a
        model that does not predict it gets no dist_phot, Err_dist_phot, flag_dist_phot, X, Y, Z
        or Err_X/Y/Z columns (jaxvac/run/catalog.py).
    galcen_distance_kpc: distance of the Sun from the Galactic centre, kpc.
    z_sun_pc: height of the Sun above the Galactic mid-plane, pc.
    roll_deg: roll of the Galactocentric frame about its X axis, deg.
    dist_max_kpc: flag_dist_phot = 1 beyond this distance, kpc (jaxvac/run/rows.py distance_flag).
    dist_max_frac_err: flag_dist_phot = 1 where Err_dist_phot / dist_phot exceeds this.
    """

    r_ks: float
    ks_label: str
    galcen_distance_kpc: float
    z_sun_pc: float
    roll_deg: float
    dist_max_kpc: float
    dist_max_frac_err: float

    def frame_key(self) -> tuple[float, float, float]:
        """(galcen_distance_kpc, z_sun_pc, roll_deg): what the Galactocentric frame depends on."""
        return (self.galcen_distance_kpc, self.z_sun_pc, self.roll_deg)

    def frame(self) -> Galactocentric:
        return Galactocentric(
            galcen_distance=self.galcen_distance_kpc * u.kpc,
            z_sun=self.z_sun_pc * u.pc,
            roll=self.roll_deg * u.deg,
        )


def _unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """ICRS unit vectors (N, 3) from ra, dec in deg."""
    a, d = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)], axis=-1)


@functools.lru_cache(maxsize=8)
def _affine(frame_key: tuple | None) -> tuple[np.ndarray, np.ndarray]:
    """(A (3, 3), t (3,)) with r_frame = A @ r_icrs + t, read off astropy once per frame.

    Both ICRS -> Galactic (a rotation, t = 0) and ICRS -> Galactocentric (a rotation and a
    translation) are exactly affine in position, so every row then costs one small matmul; the
    tests compare with astropy row by row.
    """
    basis = np.vstack([np.zeros(3), np.eye(3)]) * u.kpc
    icrs = SkyCoord(x=basis[:, 0], y=basis[:, 1], z=basis[:, 2], representation_type="cartesian", frame="icrs")
    if frame_key is None:
        out = icrs.galactic.cartesian.xyz.to_value(u.kpc).T
    else:
        r0, z_sun, roll = frame_key
        frame = Galactocentric(galcen_distance=r0 * u.kpc, z_sun=z_sun * u.pc, roll=roll * u.deg)
        out = icrs.transform_to(frame).cartesian.xyz.to_value(u.kpc).T
    t = out[0]
    return (out[1:] - t).T, t


def galactic(ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ICRS (ra, dec) in deg -> Galactic (l, b) in deg, each (N,) float64; NaN in, NaN out."""
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    a, _ = _affine(None)
    v = _unit_vectors(ra, dec) @ a.T
    gl = np.degrees(np.arctan2(v[..., 1], v[..., 0])) % 360.0
    gb = np.degrees(np.arcsin(np.clip(v[..., 2], -1.0, 1.0)))
    return gl, gb


def photometric_distance(
    ks: np.ndarray,
    e_ks: np.ndarray,
    m_ks: np.ndarray,
    e_m_ks: np.ndarray,
    ebv: np.ndarray,
    e_ebv: np.ndarray,
    r_ks: float = 0.306,
) -> tuple[np.ndarray, np.ndarray]:
    """Spectro-photometric distance and its error, kpc, each (N,) float64.

    .. math::
        \\mu = K_s - M_{K_s} - R_{K_s} E(B-V), \\qquad d = 10^{\\mu/5 + 1}\\,\\mathrm{pc},

        \\sigma_\\mu^2 = \\sigma_{K_s}^2 + \\sigma_{M_{K_s}}^2 + (R_{K_s}\\sigma_{E(B-V)})^2,
        \\qquad \\sigma_d = d \\ln(10)\\,\\sigma_\\mu / 5.

    Errors are first-order (linear) propagation, as in the paper; missing errors (NaN) give a
    NaN error but keep the distance.
    """
    f = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
    ks, e_ks, m_ks, e_m_ks, ebv, e_ebv = map(f, (ks, e_ks, m_ks, e_m_ks, ebv, e_ebv))
    mu = ks - m_ks - r_ks * ebv
    d_kpc = 10.0 ** (mu / 5.0 + 1.0) / 1000.0
    sigma_mu = np.sqrt(e_ks**2 + e_m_ks**2 + (r_ks * e_ebv) ** 2)
    return d_kpc, d_kpc * np.log(10.0) / 5.0 * sigma_mu


def galactocentric(
    ra: np.ndarray,
    dec: np.ndarray,
    d_kpc: np.ndarray,
    e_d_kpc: np.ndarray,
    config: AstrometryConfig = AstrometryConfig(),
) -> tuple[np.ndarray, np.ndarray]:
    """Galactocentric X, Y, Z and their errors, kpc, each (N, 3) float64.

    Right-handed frame: X from the Sun's projection through the Galactic centre (pointing away
    from the Sun; the Sun is at X ~ -R0), Y along Galactic rotation (l = 90 deg), Z to the north
    Galactic pole. The position is affine in the distance along the line of sight,
    r(d) = r(0) + d * u, so the only uncertain input, d, propagates exactly: sigma_XYZ = |u| sigma_d.
    """
    d = np.asarray(d_kpc, dtype=np.float64)
    e_d = np.asarray(e_d_kpc, dtype=np.float64)
    a, t = _affine(config.frame_key())
    los = _unit_vectors(np.asarray(ra, np.float64), np.asarray(dec, np.float64)) @ a.T  # unit line of sight
    xyz = t + d[..., None] * los
    return xyz, np.abs(los) * e_d[..., None]


def unique_flag(star_id: np.ndarray, snrg: np.ndarray, obsid: np.ndarray) -> np.ndarray:
    """uqflag: 1 for the highest-snrg spectrum of each star, else 0; (N,) int8.

    star_id: (N,) any sortable dtype (Gaia source id, or the LAMOST designation when the
    cross-match has none). Ties in snrg go to the lowest obsid; NaN snrg ranks last, so every star
    gets exactly one row with uqflag = 1.
    """
    star_id = np.asarray(star_id)
    s = np.nan_to_num(np.asarray(snrg, dtype=np.float64), nan=-np.inf)
    order = np.lexsort((np.asarray(obsid), -s, star_id))
    first = np.ones(len(order), dtype=bool)
    first[1:] = star_id[order][1:] != star_id[order][:-1]
    flag = np.zeros(len(order), dtype=np.int8)
    flag[order[first]] = 1
    return flag
