"""One documented config object, loaded from ``configs/*.toml``.

A config file is TOML with one table per concern (``[errors]``, ``[train]``, ...). A file may
start with ``base = "dr8.toml"`` (a path relative to itself) to inherit every table of another
file and override only some keys. Each concern owns a frozen dataclass whose fields are its keys,
with defaults and a description in the docstring; ``section(cfg, "name", Dataclass)`` builds it
and refuses unknown keys, naming the file and the key, so a typo never passes silently.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file, the key and the fix."""


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a TOML config, following ``base = "..."`` chains. Returns the merged tables.

    The result carries ``_source``: the list of files read, base first, for error messages and
    for recording in checkpoints and catalogue headers.
    """
    path = Path(path)
    if not path.is_file() and (CONFIG_DIR / path).is_file():
        path = CONFIG_DIR / path
    if not path.is_file():
        raise ConfigError(f"Config file {str(path)!r} not found; give a path to a TOML file such as configs/dr8.toml.")
    try:
        with open(path, "rb") as f:
            cfg = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"Config file {str(path)!r} is not valid TOML: {e}.") from e
    sources = [str(path.resolve())]
    base = cfg.pop("base", None)
    if base is not None:
        parent = load_config(path.parent / base)
        sources = parent.pop("_source") + sources
        cfg = _merge(parent, cfg)
    cfg["_source"] = sources
    return cfg


def section(cfg: dict[str, Any], name: str, cls: type[T]) -> T:
    """Build dataclass ``cls`` from table ``[name]`` of ``cfg`` (missing table: all defaults).

    Unknown keys raise ConfigError naming the file(s), the table and the allowed keys. Lists
    become tuples so the result is hashable.
    """
    table = cfg.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"In {cfg.get('_source', ['<config>'])[-1]}: '{name}' must be a table ([{name}]), got {type(table).__name__}.")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - fields)
    if unknown:
        raise ConfigError(
            f"In {cfg.get('_source', ['<config>'])[-1]}: unknown key(s) {unknown} in [{name}]; "
            f"allowed keys are {sorted(fields)}."
        )
    kwargs = {k: _freeze(v) for k, v in table.items()}
    return cls(**kwargs)


def _freeze(v):
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return {k: _freeze(x) for k, x in v.items()}
    return v
