"""jaxvac: the LAMOST LRS value-added catalogue (Wang et al. 2022 method) in JAX."""

__version__ = "0.1.0"
