"""One documented config object, loaded from TOML files; the recipe's numbers live in ``dr8.toml``.

A config file is TOML with one table per concern (``[errors]``, ``[train]``, ...).

How a config is found (``load_config(name_or_path)``, ``--config``):

1. a file at that path (relative to the working directory) wins;
2. else a bare name (no folder) is looked up among the built-in configs, the ``*.toml`` files
   of the package ``jaxvac.configs`` (read through ``importlib.resources``, so it works from a
   wheel): ``dr8`` or ``dr8.toml`` (the paper's recipe), ``demo`` or ``demo.toml``;
3. else ConfigError, naming what was looked for, where, and the built-in names.

A file may start with ``base = "..."`` to inherit every table of another config and override
only some keys (tables merge key by key; any other value, a list included, is replaced whole,
and so is the table ``[train.catalogs]``, whose keys are the training sets to train).
``base`` is looked up next to the file first, then among the built-in configs, so a copied
config with ``base = "dr8.toml"`` works from any folder. The loaded dict carries ``_source``:
the real paths of the files read, base first (recorded in checkpoints and catalogue headers).

Each concern owns a frozen dataclass whose fields are its keys, described in its docstring.
``section(cfg, "name", Dataclass)`` builds it from table ``[name]``: unknown keys and values of
the wrong type (checked against the field annotations) raise ConfigError naming the file and
``name.key``. A key the table lacks takes the field's default; the recipe dataclasses declare no
numbers of their own: ``@recipe_defaults("name")`` sets their defaults from table ``[name]`` of
the built-in dr8.toml when the class is defined, so each number of the recipe is written once.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib.resources
import json
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from jaxvac.errors import JaxvacError

T = TypeVar("T")

BUILTIN_PACKAGE = "jaxvac.configs"
RECIPE = "dr8.toml"  # the built-in config that holds every default


class ConfigError(ValueError, JaxvacError):
    """A config file that cannot be used; the message names the file, the key and the fix."""


# ----------------------------------------------------------------------------------------------
# Finding and reading config files


def builtin_dir() -> Path:
    """The folder of the built-in configs (the installed package ``jaxvac.configs``)."""
    d = importlib.resources.files(BUILTIN_PACKAGE)
    if not isinstance(d, Path):  # e.g. a zipped install: the configs must be real files for _source
        d = Path(str(d))
    return d


def builtin_names() -> list[str]:
    """Names of the built-in configs, without ``.toml``: ['demo', 'dr8']."""
    return sorted(p.stem for p in builtin_dir().glob("*.toml"))


def builtin_path(name: str) -> Path | None:
    """The built-in config called ``name`` ('dr8' or 'dr8.toml'), or None (also for any name with a folder)."""
    p = Path(name)
    if not name or p.name != name or p.is_absolute():
        return None
    stem = name[: -len(".toml")] if name.endswith(".toml") else name
    f = builtin_dir() / f"{stem}.toml"
    return f if f.is_file() else None


def _locate(name: str | Path, near: Path | None) -> Path | None:
    """A file at ``name`` (relative to ``near`` when given, else to the working directory), else
    the built-in config of that name, else None."""
    p = Path(name).expanduser()
    if near is not None and not p.is_absolute():
        p = near / p
    if p.is_file():
        return p
    return builtin_path(str(name))


def _not_builtin(name: str | Path) -> str:
    if Path(name).name != str(name):
        return "a name with a folder is not looked up among the built-in configs"
    return f"no built-in config of that name in {BUILTIN_PACKAGE} ({builtin_dir()})"


# Tables a derived config replaces whole instead of merging: the keys of [train.catalogs] are the
# training sets to train (jaxvac.labels), so a config naming one set trains that set only.
REPLACED_WHOLE = (("train", "catalogs"),)


def _merge(base: dict, over: dict, at: tuple[str, ...] = ()) -> dict:
    out = dict(base)
    for k, v in over.items():
        path = (*at, k)
        merge = isinstance(v, dict) and isinstance(out.get(k), dict) and path not in REPLACED_WHOLE
        out[k] = _merge(out[k], v, path) if merge else v
    return out


def _origins(table: dict, file: str, prefix: str = "") -> dict[str, str]:
    """'table.key.subkey' -> file, for every table key (at any depth) the file sets."""
    out = {}
    for k, v in table.items():
        dotted = f"{prefix}{k}"
        out[dotted] = file
        if isinstance(v, dict):
            out.update(_origins(v, file, dotted + "."))
    return out


def load_config(path: str | Path, *, _chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a config (a path, or a built-in name such as "dr8"), following ``base`` chains.

    Returns the merged tables, plus ``_source``: the real paths of the files read, base first
    (for error messages and for checkpoints and catalogue headers), and ``_origin``: which file
    set each ``table.key``.
    """
    found = _locate(path, None) if not _chain else Path(path)
    if found is None:
        raise ConfigError(
            f"Config {str(path)!r} not found: no file {str(Path(path).expanduser().absolute())!r} and "
            f"{_not_builtin(path)}; give a path to a TOML file or one of the built-in names {builtin_names()}."
        )
    path = found.resolve()
    if str(path) in _chain:
        loop = " -> ".join([*_chain, str(path)])
        raise ConfigError(f"In {_chain[-1]}: the base chain loops ({loop}); remove one of the base = lines.")
    try:
        with open(path, "rb") as f:
            cfg = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"Config file {str(path)!r} is not valid TOML: {e}.") from e
    origin = _origins({k: v for k, v in cfg.items() if isinstance(v, dict)}, str(path))
    sources = [str(path)]
    base = cfg.pop("base", None)
    if base is not None:
        if not isinstance(base, str) or not base:
            raise ConfigError(f"In {path}: base must be a file name or path in quotes, such as base = \"dr8.toml\"; got {base!r}.")
        where = _locate(base, path.parent)
        if where is None:
            raise ConfigError(
                f"In {path}: base = {base!r} not found: no file {str((path.parent / Path(base).expanduser()).absolute())!r} "
                f"and {_not_builtin(base)}; give a path relative to {path.parent} or one of the built-in names "
                f"{builtin_names()}."
            )
        parent = load_config(where, _chain=(*_chain, str(path)))
        sources = parent.pop("_source") + sources
        origin = {**parent.pop("_origin"), **origin}
        cfg = _merge(parent, cfg)
    cfg["_source"] = sources
    cfg["_origin"] = origin
    return cfg


# ----------------------------------------------------------------------------------------------
# Defaults from the recipe


@functools.lru_cache(maxsize=1)
def recipe() -> dict[str, Any]:
    """The built-in dr8.toml, loaded once (do not modify the returned dict)."""
    return load_config(RECIPE)


def recipe_defaults(table: str):
    """Class decorator, placed under ``@dataclasses.dataclass``: every field's default is the
    value of that key in table ``[table]`` of the built-in dr8.toml (lists as tuples, tables as
    fresh dicts). A field must not also have a default of its own: the number lives in dr8.toml.
    """

    def deco(cls):
        if "__dataclass_fields__" in cls.__dict__:
            raise TypeError(f"@recipe_defaults({table!r}) must sit under @dataclasses.dataclass on {cls.__qualname__}.")
        values = recipe().get(table, {})
        for name in cls.__dict__.get("__annotations__", {}):
            if name in cls.__dict__:
                raise TypeError(
                    f"{cls.__module__}.{cls.__qualname__}.{name} has a default in the class and the recipe "
                    f"keeps its defaults in {RECIPE} [{table}]; delete the one in the class."
                )
            if name not in values:
                raise TypeError(
                    f"{cls.__module__}.{cls.__qualname__}.{name} has no value in {recipe()['_source'][-1]} "
                    f"[{table}]; add {table}.{name} there (with its unit and source)."
                )
            v = _freeze(values[name])
            if isinstance(v, dict):
                setattr(cls, name, dataclasses.field(default_factory=functools.partial(copy.deepcopy, v)))
            else:
                setattr(cls, name, v)
        cls.__recipe_table__ = table
        return cls

    return deco


# ----------------------------------------------------------------------------------------------
# Building a section


def section(cfg: Mapping[str, Any], name: str, cls: type[T]) -> T:
    """Build dataclass ``cls`` from table ``[name]`` of ``cfg``.

    Keys the table lacks (or the whole table) take the dataclass defaults, which for the recipe
    dataclasses are the values of the built-in dr8.toml (``recipe_defaults``); a key the table
    gives replaces the default whole (override inside a nested table with ``base``). Unknown keys
    and values whose type does not match the field annotation (int, float (an int is accepted),
    str, bool, tuple[...] and dict/Mapping[...] of those, X | None) raise ConfigError naming the
    file that set them, ``name.key``, the expected type and the value received. Lists become
    tuples so the result is hashable.
    """
    table = cfg.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"In {_where(cfg, name)}: '{name}' must be a table ([{name}]), got {type(table).__name__} {table!r}.")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - fields)
    if unknown:
        raise ConfigError(
            f"In {_where(cfg, f'{name}.{unknown[0]}')}: unknown key(s) {unknown} in [{name}]; "
            f"allowed keys are {sorted(fields)}."
        )
    hints = typing.get_type_hints(cls)
    for key, value in table.items():
        bad = _mismatch(value, hints.get(key, Any))
        if bad is not None:
            sub, expected, got = bad
            dotted = f"{name}.{key}{sub}"
            raise ConfigError(
                f"In {_where(cfg, dotted)}: {dotted} must be {expected}, got {_show(got)} "
                f"({_kind(got)}); {_fix(cls, key, sub)}"
            )
    try:
        return cls(**{k: _freeze(v) for k, v in table.items()})
    except ConfigError as e:  # a dataclass's own checks (__post_init__): add the file
        msg = str(e)
        raise ConfigError(msg if msg.startswith("In ") else f"In {_where(cfg, name)}: {msg}") from None


def _where(cfg: Mapping[str, Any], dotted: str) -> str:
    """The file that set ``dotted`` (table.key...), else the config's last file."""
    origin = cfg.get("_origin") or {}
    parts = dotted.replace("[", ".[").split(".")
    for n in range(len(parts), 0, -1):
        hit = origin.get(".".join(parts[:n]))
        if hit:
            return hit
    return (cfg.get("_source") or ["<config>"])[-1]


_NAMES = {bool: ("true or false", "true/false values"), int: ("an integer", "integers"),
          float: ("a number", "numbers"), str: ("a string in quotes", "strings")}


def _describe(tp, plural: bool = False) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp in _NAMES:
        return _NAMES[tp][plural]
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a, plural) for a in args if a is not type(None))
    if tp is tuple or tp is list or origin in (tuple, list):
        if args and (len(args) != 2 or args[1] is not Ellipsis):
            return f"lists of {len(args)}" if plural else f"a list of {len(args)} ({', '.join(_describe(a) for a in args)})"
        inner = f" of {_describe(args[0], True)}" if args else ""
        return f"lists{inner}" if plural else f"a list{inner} [...]"
    if tp is dict or tp is Mapping or origin in (dict, Mapping):
        inner = f" of {_describe(args[1], True)}" if len(args) == 2 and args[1] is not Any else ""
        return f"tables{inner}" if plural else f"a table{inner} {{...}}"
    return getattr(tp, "__name__", str(tp))


def _mismatch(value, tp) -> tuple[str, str, Any] | None:
    """None if ``value`` (from TOML) fits annotation ``tp``; else (where inside value, expected, bad part)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return None
    if origin in (typing.Union, types.UnionType):
        arms = [a for a in args if a is not type(None)]
        results = [_mismatch(value, a) for a in arms]
        if any(r is None for r in results):
            return None
        deeper = [r for r in results if r[0]]  # the value had the right shape but a bad element
        return deeper[0] if len(deeper) == 1 else ("", _describe(tp), value)
    if tp is bool:
        return None if isinstance(value, bool) else ("", _describe(tp), value)
    if tp is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else ("", _describe(tp), value)
    if tp is float:
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else ("", _describe(tp), value)
    if tp is str:
        return None if isinstance(value, str) else ("", _describe(tp), value)
    if tp is tuple or tp is list or origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return ("", _describe(tp), value)
        if not args:
            return None
        if len(args) == 2 and args[1] is Ellipsis:
            elems = [args[0]] * len(value)
        elif len(args) != len(value):
            return ("", _describe(tp), value)
        else:
            elems = list(args)
        for i, (v, a) in enumerate(zip(value, elems)):
            bad = _mismatch(v, a)
            if bad is not None:
                return (f"[{i}]{bad[0]}", bad[1], bad[2])
        return None
    if tp is dict or tp is Mapping or origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            return ("", _describe(tp), value)
        if len(args) == 2:
            for k, v in value.items():
                bad = _mismatch(v, args[1])
                if bad is not None:
                    return (f".{k}{bad[0]}", bad[1], bad[2])
        return None
    return None  # an annotation we do not check (a class of its own): its constructor checks


def _kind(v) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", tuple: "a list", dict: "a table"}.get(type(v), type(v).__name__)


def _show(v) -> str:
    try:
        return _toml(v)
    except TypeError:
        return repr(v)


def _toml(v) -> str:
    """A TOML literal for a default (a number, string, bool, list, table)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v).__name__)


def _fix(cls, key: str, sub: str) -> str:
    """What to write instead: the default when it is short, else a pointer to the recipe."""
    table = getattr(cls, "__recipe_table__", None)
    f = next(f for f in dataclasses.fields(cls) if f.name == key)
    default = f.default if f.default is not dataclasses.MISSING else None
    if not sub and default is not None:
        try:
            text = _toml(default)
        except TypeError:
            text = ""
        if text and len(text) <= 60:
            return f"write it like {key} = {text}" + (f" (the value in {RECIPE})." if table else ".")
    return f"see [{table}] of the built-in {RECIPE} for the form." if table else "fix the value in that file."


def _freeze(v):
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return {k: _freeze(x) for k, x in v.items()}
    return v
