"""Shared fixtures. The real LAMOST spectra live in ../shared/lamost beside the repository."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAMOST_DIR = REPO.parent / "shared" / "lamost"


@pytest.fixture(scope="session")
def lamost_dir() -> Path:
    """../shared/lamost, or skip: the 25 real spectra are not part of the repository."""
    if not (LAMOST_DIR / "MANIFEST.tsv").is_file():
        pytest.skip(f"real LAMOST spectra not found at {LAMOST_DIR} (../shared is absent)")
    return LAMOST_DIR
