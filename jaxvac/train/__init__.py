"""Stage 2b, training (`jaxvac train`, `jaxvac calibrate-errors`): catalogues + spectra -> checkpoint.

    job         train_from_config: catalogues, curation, the fused fit, the VMP net, evaluation
    fit         the optimisation: stacked losses, per-network clipping, early stopping
    dataset     training catalogues, curation cuts, the normalised-spectra cache
    trainset    `jaxvac trainset`: a reference catalogue + the spectra index -> a training catalogue
    reference   the published layouts (APOGEE DR17 allStar, PASTEL, Gaia DR3 + photometry) -> labels
    evaluate    residual statistics and the accuracy tables
    guard       where each set's training stars are sparse (flag bit 2 of its labels)
    checkpoint  orbax checkpoints: weights, standardisation, labels, ranges, recipe
    calibrate   error-model coefficients from repeat observations (the maths)
    calibrate_job  `jaxvac calibrate-errors`: read the repeats, fit, write tables and the plot
"""
