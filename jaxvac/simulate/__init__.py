"""A synthetic LAMOST LRS survey with known truth: spectra, headers, catalogues.

Public API::

    simulate_survey(out_dir, n, seed=0, *, progress=None, **options) -> SurveyInfo
    SurveyOptions, SurveyInfo

Modules: ``population`` (who the stars are), ``photometry`` (their absolute magnitudes),
``spectra`` (the parametric spectral model), ``objects`` (galaxies, QSOs, unknowns),
``fitswrite`` (LAMOST FITS bytes), ``render`` (a chunk of files), ``catalogs`` (training, test,
cross-match and truth tables), ``references`` (APOGEE allStar-, PASTEL- and Gaia-layout reference
catalogues), ``survey`` (the plan and the orchestration). docs/simulator.md
says what is and is not modelled.
"""

from jaxvac.simulate.survey import SurveyInfo, SurveyOptions, simulate_survey

__all__ = ["SurveyInfo", "SurveyOptions", "simulate_survey"]
