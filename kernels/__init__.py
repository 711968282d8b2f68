"""Pure, jit-compiled array functions of jaxvac: no I/O, no file names, no globals."""

from .continuum import chebyshev_basis as chebyshev_basis
from .continuum import cholesky_factor as cholesky_factor
from .continuum import cholesky_substitute as cholesky_substitute
from .continuum import fit_continuum as fit_continuum
from .layout import Layout as Layout
from .medfilt import masked_median_filter as masked_median_filter
from .medfilt import selection_network as selection_network
from .normalize import STATUS_CONTINUUM_LOW as STATUS_CONTINUUM_LOW
from .normalize import STATUS_RV_INVALID as STATUS_RV_INVALID
from .normalize import normalize as normalize
from .normalize import preprocess as preprocess
from .normalize import status_bits as status_bits
from .normalize import status_few_good as status_few_good
from .normalize import status_ill_conditioned as status_ill_conditioned
from .restframe import resample_restframe as resample_restframe
from .restframe import restframe_shift as restframe_shift
from .standardize import bad_fraction as bad_fraction
from .standardize import standardize as standardize

__all__ = [
    "Layout",
    "STATUS_CONTINUUM_LOW",
    "STATUS_RV_INVALID",
    "bad_fraction",
    "chebyshev_basis",
    "cholesky_factor",
    "cholesky_substitute",
    "fit_continuum",
    "masked_median_filter",
    "normalize",
    "preprocess",
    "resample_restframe",
    "restframe_shift",
    "selection_network",
    "standardize",
    "status_bits",
    "status_few_good",
    "status_ill_conditioned",
]
