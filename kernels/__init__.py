"""Pure, jit-compiled array functions of jaxvac: no I/O, no file names, no globals."""

from kernels.continuum import chebyshev_basis as chebyshev_basis
from kernels.continuum import cholesky_factor as cholesky_factor
from kernels.continuum import cholesky_substitute as cholesky_substitute
from kernels.continuum import fit_continuum as fit_continuum
from kernels.layout import Layout as Layout
from kernels.medfilt import masked_median_filter as masked_median_filter
from kernels.medfilt import selection_network as selection_network
from kernels.normalize import STATUS_CONTINUUM_LOW as STATUS_CONTINUUM_LOW
from kernels.normalize import STATUS_RV_INVALID as STATUS_RV_INVALID
from kernels.normalize import normalize as normalize
from kernels.normalize import preprocess as preprocess
from kernels.normalize import status_bits as status_bits
from kernels.normalize import status_few_good as status_few_good
from kernels.normalize import status_ill_conditioned as status_ill_conditioned
from kernels.restframe import resample_restframe as resample_restframe
from kernels.restframe import restframe_shift as restframe_shift
from kernels.standardize import bad_fraction as bad_fraction
from kernels.standardize import standardize as standardize

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
