import numpy as np

from jaxvac.constants import LOG_LAMBDA0, LOG_STEP, NPIX_GLOBAL, WINDOWS, global_wavelength, window_pixels


def test_global_grid_ends():
    wl = global_wavelength()
    assert wl.shape == (NPIX_GLOBAL,)
    np.testing.assert_allclose(wl[0], 10**3.5682, rtol=1e-12)
    np.testing.assert_allclose(wl[-1], 10 ** (LOG_LAMBDA0 + LOG_STEP * 3908), rtol=1e-12)


def test_window_pixels_cover_exactly_the_windows():
    wl = global_wavelength()
    sizes = []
    for lo, hi in WINDOWS:
        j0, j1 = window_pixels(lo, hi)
        inside = np.flatnonzero((wl >= lo) & (wl <= hi))
        assert (j0, j1) == (inside[0], inside[-1] + 1)
        sizes.append(j1 - j0)
    assert sizes == [1724, 250]


def test_network_input_sizes_follow_the_windows():
    from jaxvac.constants import VMP_WINDOW
    from jaxvac.model import N_INPUT, N_VMP_INPUT

    assert N_INPUT == sum(j1 - j0 for j0, j1 in (window_pixels(lo, hi) for lo, hi in WINDOWS)) == 1974
    j0, j1 = window_pixels(*VMP_WINDOW)
    assert (j0, N_VMP_INPUT) == (window_pixels(*WINDOWS[0])[0], j1 - j0) == (229, 524)
