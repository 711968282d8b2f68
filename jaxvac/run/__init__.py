"""Stage 3, the catalogue run (`jaxvac run`, `jaxvac merge`): batches -> device step -> rows -> catalogue.

    loop           run_catalog: read, dispatch, post-process, write parts, merge
    device         the jitted device step (normalise, standardise, label nets + VMP net) on 1..n devices
    rows           catalogue rows from the device outputs; skip and reject reasons
    uncertainties  the label error model (Err_ columns) and the range flags (flag_ columns)
    astrometry     gl/gb, photometric distance, Galactocentric X/Y/Z, uqflag
    catalog        the catalogue's columns, units and its FITS/Parquet writer and reader
    parts          resumable parts of a run and its manifest
    output         who may write the catalogue: the output lock, the replace rule, clean-up
    merge          parts -> the catalogue with its provenance header
    distributed    jax.distributed set-up for multi-process runs
"""
