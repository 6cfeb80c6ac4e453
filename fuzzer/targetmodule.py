"""Loading a target's own Python module (``target.module``) and ``module:attr`` references.

Why its own file and why so strict: a target module is code, so it is only
ever loaded from a path inside the target's own directory, named by the
user's own target.toml, and never from a bundle or a campaign snapshot
(those are data from other machines: see ``load_config(load_module=False)``).
It is loaded by path with importlib (no ``sys.path`` changes), once per
process, and may supply:

- ``CODECS = {"name": factory}``: framing codecs, registered with
  :func:`fuzzer.network.codecs.register_codec` (a module may also call
  ``register_codec`` itself at import);
- any attribute a config names as ``module:attr`` (workload clients, role
  probes, liveness probes, invariants).

A reference ``module:attr`` means an attribute of the target module; any
other ``package.module:attr`` is imported by name (an installed package or a
module under the repository, e.g. ``targets.etcd.client:role_probe``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from fuzzer.errors import ConfigError
from fuzzer.network.codecs import register_codec

__all__ = ["load_target_module", "resolve_ref", "MODULE_PREFIX"]

MODULE_PREFIX = "module:"
_LOADED: dict[Path, ModuleType] = {}


def load_target_module(path: Path, target_dir: Path, *, source: str,
                       where: str = "target.module") -> ModuleType:
    """Import ``path`` (a .py file inside ``target_dir``), once per process."""
    real = path.resolve()
    root = target_dir.resolve()
    if not real.is_relative_to(root):
        raise ConfigError(f"{path} is outside the target directory {root}", path=source,
                          where=where)
    if real.suffix != ".py" or not real.is_file():
        raise ConfigError(f"{path}: no such Python file", path=source, where=where)
    mod = _LOADED.get(real)
    if mod is not None:
        return mod
    digest = hashlib.sha1(str(real).encode()).hexdigest()[:10]
    name = f"hbfuzz_target_{real.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, real)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load {path}", path=source, where=where)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses and pickle-free introspection need this
    try:
        spec.loader.exec_module(mod)
    except Exception as exc:  # the module is user code: any failure is a config error
        sys.modules.pop(name, None)
        raise ConfigError(f"loading {path} failed: {type(exc).__name__}: {exc}", path=source,
                          where=where) from None
    codecs = getattr(mod, "CODECS", None)
    if codecs is not None:
        if not isinstance(codecs, dict) or not all(
            isinstance(k, str) and callable(v) for k, v in codecs.items()
        ):
            sys.modules.pop(name, None)
            raise ConfigError("CODECS must map codec names to factories", path=source,
                              where=where)
        for cname, factory in codecs.items():
            register_codec(cname, factory, replace=True)
    _LOADED[real] = mod
    return mod


def resolve_ref(ref: str, module: ModuleType | None, *, source: str, where: str,
                callable_: bool = True) -> Any:
    """The object ``ref`` names: ``module:attr`` (the target module) or ``pkg.mod:attr``."""
    mod_name, sep, attr = ref.partition(":")
    if not sep or not mod_name or not attr:
        raise ConfigError(f"expected module:attr or package.module:attr, got {ref!r}",
                          path=source, where=where)
    if mod_name == "module":
        if module is None:
            raise ConfigError(f"{ref!r} needs target.module to be set", path=source,
                              where=where)
        obj: Any = module
    else:
        try:
            obj = importlib.import_module(mod_name)
        except Exception as exc:  # ImportError, or any error of the imported code
            raise ConfigError(f"cannot import {mod_name!r}: {type(exc).__name__}: {exc}",
                              path=source, where=where) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"{ref!r}: {mod_name} has no attribute {attr!r}", path=source,
                              where=where) from None
    if callable_ and not callable(obj):
        raise ConfigError(f"{ref!r} is not callable", path=source, where=where)
    return obj
