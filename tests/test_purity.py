"""kernels/ holds only pure array functions (STYLE.md, habit 1): no I/O, no display, no jaxvac.

Every ``.py`` file of the installed ``jaxvac.kernels`` package (found through its ``__path__``,
so this checks what is installed, not a path in the repository) is parsed, and every import
statement anywhere in it (module level, inside functions, classes, ``if`` blocks, ``try``) is
checked against the modules a kernel must not use.
"""

from __future__ import annotations

import ast
from pathlib import Path

import jaxvac.kernels

# top-level module names a kernel must not import: file formats, checkpoints, plotting, the CLI
# and its display, file-system and serialisation modules, dynamic imports
FORBIDDEN = frozenset({
    "fitsio", "astropy", "orbax", "matplotlib", "click", "rich", "pyarrow",
    "os", "io", "pathlib", "shutil", "tempfile", "glob", "fnmatch", "pickle", "shelve", "joblib",
    "h5py", "netCDF4", "sqlite3", "subprocess", "socket", "urllib", "requests", "importlib",
})
PACKAGE = "jaxvac.kernels"
# and beyond the list: the only top-level modules a kernel imports ("jaxvac": jaxvac.kernels only)
ALLOWED = frozenset({"__future__", "functools", "math", "typing", "dataclasses", "jax", "numpy", "jaxvac"})
ONLY = {"ensemble.py": {"__future__", "jax"}}  # the fused network pass needs JAX alone


def kernel_files() -> list[Path]:
    return sorted(p for d in jaxvac.kernels.__path__ for p in Path(d).rglob("*.py"))


def _package_of(path: Path) -> list[str]:
    """['jaxvac', 'kernels', <subpackages>] of a file below a jaxvac.kernels path entry."""
    for d in jaxvac.kernels.__path__:
        try:
            rel = path.relative_to(d)
        except ValueError:
            continue
        return PACKAGE.split(".") + list(rel.parent.parts)
    raise AssertionError(f"{path} is not below jaxvac.kernels.__path__ {list(jaxvac.kernels.__path__)}")


def violations(source: str, package: list[str], name: str = "<source>") -> list[str]:
    """'file:line: why' for every forbidden import in ``source``, a module of ``package``."""
    out = []  # (line, message)
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                if node.level > len(package):
                    out.append((node.lineno, "relative import beyond the top-level package"))
                    continue
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from jaxvac import kernels` imports jaxvac itself first; name each imported object
            targets = [f"{mod}.{a.name}" if mod in ("jaxvac",) else mod for a in node.names]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("open", "__import__"):
            out.append((node.lineno, f"calls {node.func.id}()"))
            continue
        else:
            continue
        for target in targets:
            top = target.split(".")[0]
            if top in FORBIDDEN:
                out.append((node.lineno, f"imports {target}"))
            elif top == "jaxvac" and not (target == PACKAGE or target.startswith(PACKAGE + ".")):
                out.append((node.lineno, f"imports {target} (only jaxvac.kernels is allowed)"))
    return [f"{name}:{line}: {why}" for line, why in sorted(out, key=lambda v: v[0])]


def imported_modules(source: str, package: list[str]) -> set[str]:
    """Top-level names of every module ``source`` imports (relative imports: the package's)."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            out.add(package[0] if node.level else (node.module or "").split(".")[0])
    return out


def test_kernel_modules_import_only_the_allowed_modules():
    for p in kernel_files():
        imported = imported_modules(p.read_text(), _package_of(p))
        allowed = ONLY.get(p.name, ALLOWED)
        assert imported <= allowed, (
            f"{p} imports {sorted(imported - allowed)}; a kernel may import only {sorted(allowed)} "
            f"(tests/test_purity.py ALLOWED/ONLY): keep I/O, display and validation in jaxvac/."
        )


def test_every_kernel_module_is_pure():
    files = kernel_files()
    names = {p.name for p in files}
    # not vacuous: the scan sees the kernels the pipeline runs
    assert {"__init__.py", "continuum.py", "ensemble.py", "medfilt.py", "normalize.py", "restframe.py"} <= names, names
    found = [v for p in files for v in violations(p.read_text(), _package_of(p), str(p))]
    assert not found, "kernels/ must hold only pure array functions (STYLE.md, habit 1):\n" + "\n".join(found)


SAMPLE = """
import jax.numpy as jnp
from . import medfilt
from .layout import Layout
from jaxvac.kernels.continuum import fit_continuum
import numpy as np, os.path

def f(x):
    import fitsio
    from astropy.io import fits
    try:
        import orbax.checkpoint as ocp
    except ImportError:
        pass
    return x

class C:
    def g(self):
        from jaxvac.io import lamost
        from jaxvac import config
        from .. import preprocess
        from io import BytesIO
        from pathlib import Path
        import matplotlib.pyplot as plt, click, rich.console, pyarrow.parquet
        return open("x")
"""


def test_scanner_finds_every_kind_of_forbidden_import():
    """The scanner itself: imports at any depth, aliases, relative escapes, ``open()``."""
    found = violations(SAMPLE, ["jaxvac", "kernels"])
    whys = [v.split(": ", 1)[1] for v in found]
    assert whys == [
        "imports os.path",
        "imports fitsio",
        "imports astropy.io",
        "imports orbax.checkpoint",
        "imports jaxvac.io (only jaxvac.kernels is allowed)",
        "imports jaxvac.config (only jaxvac.kernels is allowed)",
        "imports jaxvac.preprocess (only jaxvac.kernels is allowed)",
        "imports io",
        "imports pathlib",
        "imports matplotlib.pyplot",
        "imports click",
        "imports rich.console",
        "imports pyarrow.parquet",
        "calls open()",
    ], found
    assert imported_modules(SAMPLE, ["jaxvac", "kernels"]) == {
        "jax", "jaxvac", "numpy", "os", "fitsio", "astropy", "orbax", "io", "pathlib", "matplotlib", "click", "rich",
        "pyarrow"}
