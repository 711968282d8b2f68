"""Stage 1, reading: LAMOST FITS files and tables in, arrays and metadata out.

    lamost       the LAMOST LRS reader (image and table layouts, .gz, DR1, rejects)
    fitsheader   the FITS header parser, BLOCK/CARD, and the byte-level helpers the reader uses
    inputs       which files a run reads (directory, glob, list, table)
    tables       the one table reader: FITS, CSV[.gz], Parquet -> columns
    records      the Spectrum / Reject records and the batch metadata dtype
    stream       worker processes -> ordered fixed-size batches (shards, skip/resume, progress)
    crossmatch   the user's photometry table (obsid -> Gaia id, Ks, E(B-V))
    spectra_index  one row per spectrum file from its header (`jaxvac index`), or from the LRS catalogue
    match        catalogue rows -> spectra: by obsid, or by sky position (vectorised, k-d trees)
    store        the packed spectra store: its format and the memory-mapped reader
    pack         the pack writer (`jaxvac pack`): FITS files -> store
    fitstable    the catalogue FITS table writer
    atomic       the one atomic write (temporary name, then rename)
    lifetime     worker processes and shared memory that end with the run
"""
