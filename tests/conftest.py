"""Shared fixtures. The real LAMOST spectra live in ../shared/lamost beside the repository.

Float64 reference tests: every test of the modules in ``FLOAT64_REFERENCE_MODULES`` (the kernel
tests against float64 NumPy references) and of any module marked ``float64_reference`` runs under
``jax.numpy_dtype_promotion("strict")``, module-scoped fixtures included, so an implicit
promotion (float32 + float64, int + float) in a kernel or in a test's inputs raises instead of
silently changing a dtype. Tests marked ``x64`` also run under ``jax.enable_x64(True)``, so they
can call a kernel with float64 inputs (or check that float32 stays float32 with x64 on). Both
are scoped: the rest of the suite keeps JAX's defaults (x64 off, standard promotion).

Compilations are counted with the fixture ``count_compilations`` (a ``jax.monitoring`` listener).
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import jax
import pytest
from jax import monitoring

REPO = Path(__file__).resolve().parents[1]
LAMOST_DIR = REPO.parent / "shared" / "lamost"

FLOAT64_REFERENCE_MODULES = frozenset(
    {"test_kernels_continuum", "test_kernels_medfilt", "test_kernels_normalize", "test_kernels_restframe",
     "test_ensemble"}
)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "float64_reference: the module compares kernels with float64 NumPy references; it runs "
        "under jax.numpy_dtype_promotion('strict') (tests/conftest.py)")
    config.addinivalue_line("markers", "x64: the test runs under jax.enable_x64(True) (tests/conftest.py)")


def _is_reference_module(node) -> bool:
    module = getattr(node, "module", None)
    name = getattr(module, "__name__", "").rpartition(".")[2]
    return name in FLOAT64_REFERENCE_MODULES or node.get_closest_marker("float64_reference") is not None


def pytest_collection_modifyitems(config, items):
    """Mark the tests of FLOAT64_REFERENCE_MODULES, so ``-m float64_reference`` selects them."""
    for item in items:
        if getattr(getattr(item, "module", None), "__name__", "").rpartition(".")[2] in FLOAT64_REFERENCE_MODULES:
            item.add_marker("float64_reference")


@pytest.fixture(scope="module", autouse=True)
def _strict_promotion_for_references(request):
    """Strict dtype promotion around a float64-reference module: its fixtures and its tests."""
    if not _is_reference_module(request.node):
        yield
        return
    with jax.numpy_dtype_promotion("strict"):
        yield


@pytest.fixture(autouse=True)
def _x64_if_marked(request):
    """jax.enable_x64(True) around one test marked ``x64`` (strict promotion stays on)."""
    if request.node.get_closest_marker("x64") is None:
        yield
        return
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="session")
def lamost_dir() -> Path:
    """../shared/lamost, or skip: the 25 real spectra are not part of the repository."""
    if not (LAMOST_DIR / "MANIFEST.tsv").is_file():
        pytest.skip(f"real LAMOST spectra not found at {LAMOST_DIR} (../shared is absent)")
    return LAMOST_DIR


BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"  # one per XLA compilation
TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"  # one per trace of a jitted function


@dataclasses.dataclass
class Compilations:
    """What JAX traced and compiled inside :func:`count_compilations`, by function name."""

    traces: list[str] = dataclasses.field(default_factory=list)
    compiles: list[str] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.traces or self.compiles)

    def clear(self) -> None:
        self.traces.clear()
        self.compiles.clear()


@contextlib.contextmanager
def count_compilations():
    """Record every jit trace and XLA backend compilation of this process while inside.

    Uses JAX's own ``jax.monitoring`` events (the ones ``jax.log_compiles`` logs), so it sees
    compilations of any jitted or pmapped function, nested ones included, without hooks in the
    code under test. A cache hit (same shapes, dtypes, shardings, static arguments) records
    nothing.
    """
    seen = Compilations()

    def listener(event: str, duration: float, **kwargs) -> None:
        if event == BACKEND_COMPILE_EVENT:
            seen.compiles.append(str(kwargs.get("fun_name")))
        elif event == TRACE_EVENT:
            seen.traces.append(str(kwargs.get("fun_name")))

    monitoring.register_event_duration_secs_listener(listener)
    try:
        yield seen
    finally:
        monitoring.unregister_event_duration_listener(listener)


@pytest.fixture(name="count_compilations")
def _count_compilations_fixture():
    """The :func:`count_compilations` context manager, for tests (conftest is not imported)."""
    return count_compilations
