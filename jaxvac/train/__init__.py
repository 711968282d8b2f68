"""Stage 2b, training (`jaxvac train`, `jaxvac calibrate-errors`): catalogues + spectra -> checkpoint.

    job         train_from_config: catalogues, curation, the fused fit, the VMP net, evaluation
    fit         the optimisation: stacked losses, per-network clipping, early stopping
    dataset     training catalogues, curation cuts, the normalised-spectra cache
    evaluate    residual statistics and the accuracy tables
    checkpoint  orbax checkpoints: weights, standardisation, labels, ranges, recipe
    calibrate   error-model coefficients from repeat observations
"""
