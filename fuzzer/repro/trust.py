"""What ``hbfuzz replay`` and ``hbfuzz minimize`` take from a bundle, and what from here.

Why: a bundle is a file someone sent. Its config snapshot names commands
(``cluster.command``, ``target.setup``, a readiness command), an environment
and code to import (``workload.client``, ``roles.function``, a codec, an
invariant ``module:attr``...). Building the cluster from it, as a campaign
does from its own target.toml, would run whatever the sender wrote. So by
default the *executable* keys (:data:`EXEC_KEYS`, the whole ``[target]``
table, and any ``module:attr`` string) come from the LOCAL target: the
``target.toml`` the bundle's target name finds under this checkout's
``targets/`` (or ``--target PATH``); everything else (workload parameters,
faults, schedule, oracles, the seed, choices and schedule of the bundle
itself) comes from the bundle. The bundle's ``target.version`` is applied to
the local target (its setup builds that version) when it is a plain version
string, and its ``target.node`` may pick another file inside the local
target's directory (what ``--set target.node=`` does; Maelstrom targets keep
their nodes there).

When the bundle's executable keys differ from the local target's, the
replay is refused (:func:`resolve_config` raises an :class:`InputError`
naming the bundle and the keys): running the local ones would not be the
recorded run, and running the bundle's would run its code. ``--trust`` runs
the bundle's own config, as a campaign runs its target.toml.

Comparison is on values with the machine-specific parts replaced by
placeholders (:func:`normalise`): the target directory, the hbfuzz checkout
and Python interpreter paths, so a bundle from another machine's checkout of
the same target replays without ``--trust``. Normalising only decides
whether to refuse; what runs is always the local value. Pure code but
:func:`find_local_target` and :func:`resolve_config`, which read the local
target.toml (without importing its module: that happens only when the
replay starts).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fuzzer.errors import HbfuzzError, InputError, UsageError

__all__ = [
    "EXEC_KEYS",
    "LOCAL_TABLES",
    "Resolution",
    "differing_keys",
    "find_local_target",
    "merge_config",
    "normalise",
    "resolve_config",
]

#: Keys outside [target] that start a process, set its environment or name code.
EXEC_KEYS: tuple[str, ...] = (
    "cluster.command", "cluster.env", "cluster.vars", "cluster.files", "cluster.cwd",
    "cluster.readiness.command", "network.codec", "workload.client", "roles.function",
    "oracles.liveness.probe",
)
#: Tables taken whole from the local target (setup, python, module, node, dir...).
LOCAL_TABLES: tuple[str, ...] = ("target",)
_COMPARED_TARGET_KEYS = ("setup", "module", "node", "node_args")
_INVARIANTS = "oracles.invariants"
_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")  # module:attr, pkg.mod:attr
_PYTHON = re.compile(r"^/.*/python[0-9.]*$")  # an interpreter path (machine-specific)
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]{0,63}$")


@dataclass(frozen=True)
class Resolution:
    """The config a replay runs, and where its executable keys came from.

    ``local`` is the local target.toml (None when ``trusted`` without one);
    ``differing`` the executable keys in which the bundle differs from it
    (non-empty only when ``trusted``: otherwise resolving refuses)."""

    config: dict[str, Any]
    local: Path | None
    trusted: bool = False
    differing: tuple[str, ...] = ()


# --------------------------------------------------------------------------- pure


def _get(cfg: Mapping[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _set(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = cfg
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = copy.deepcopy(value)


def _anchors(cfg: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    for value, token in ((_get(cfg, "target.dir"), "{target_dir}"),
                         (_get(cfg, "cluster.vars.repo"), "{repo}")):
        if isinstance(value, str) and len(value.rstrip("/")) > 1:
            out.append((value.rstrip("/"), token))
    return sorted(out, key=lambda a: -len(a[0]))


def normalise(value: Any, cfg: Mapping[str, Any]) -> Any:
    """``value`` (from config ``cfg``) with machine-specific paths as placeholders:
    interpreter paths -> ``{python}``, ``cfg``'s target dir -> ``{target_dir}``,
    its checkout -> ``{repo}``. Empty values (None, "", [], {}) compare equal."""
    anchors = _anchors(cfg)

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            if _PYTHON.match(v):
                return "{python}"
            for a, token in anchors:
                v = v.replace(a, token)
            return v
        if isinstance(v, Mapping):
            return {str(k): walk(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [walk(x) for x in v]
        return v

    return walk(value) if value not in (None, "", [], {}) else None


def _code_invariants(cfg: Mapping[str, Any]) -> list[Any]:
    rows = _get(cfg, _INVARIANTS) or []
    if not isinstance(rows, list):
        return [rows]
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in rows
                   if isinstance(r, Mapping) and ":" in str(r.get("name", "")))


def _refs(cfg: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every ``module:attr``-looking string of ``cfg`` with its dotted path."""
    if isinstance(cfg, Mapping):
        for k, v in cfg.items():
            yield from _refs(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(cfg, list):
        for i, v in enumerate(cfg):
            yield from _refs(v, f"{prefix}[{i}]")
    elif isinstance(cfg, str) and _REF.match(cfg):
        yield prefix, cfg


def _ref_at(cfg: Any, path: str) -> Any:
    node: Any = cfg
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            i = int(part[1:-1])
            node = node[i] if isinstance(node, list) and i < len(node) else None
        else:
            node = node.get(part) if isinstance(node, Mapping) else None
    return node


def differing_keys(bundle_cfg: Mapping[str, Any], local_cfg: Mapping[str, Any]) -> list[str]:
    """The executable keys whose (normalised) values differ between the bundle's
    config snapshot and the local target's resolved config, in a stable order."""
    out = []
    for key in _COMPARED_TARGET_KEYS:
        dotted = f"target.{key}"
        if normalise(_get(bundle_cfg, dotted), bundle_cfg) != normalise(
                _get(local_cfg, dotted), local_cfg):
            out.append(dotted)
    for dotted in EXEC_KEYS:
        if normalise(_get(bundle_cfg, dotted), bundle_cfg) != normalise(
                _get(local_cfg, dotted), local_cfg):
            out.append(dotted)
    if _code_invariants(bundle_cfg) != _code_invariants(local_cfg):
        out.append(_INVARIANTS)
    # any other module:attr string (a key added later, a parameter naming code)
    covered = (*LOCAL_TABLES, *EXEC_KEYS, _INVARIANTS)
    for path, ref in _refs(bundle_cfg):
        if path.split("[")[0] in covered or path.startswith(tuple(c + "." for c in covered)):
            continue
        if _ref_at(local_cfg, path) != ref:
            out.append(path)
    return out


def merge_config(bundle_cfg: Mapping[str, Any], local_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The config to run: ``bundle_cfg`` with [target] and every :data:`EXEC_KEYS`
    key taken from ``local_cfg`` (code invariants are equal by then, so the
    bundle's oracle list stays)."""
    out = copy.deepcopy(dict(bundle_cfg))
    for table in LOCAL_TABLES:
        out[table] = copy.deepcopy(local_cfg.get(table, {}))
    for dotted in EXEC_KEYS:
        _set(out, dotted, _get(local_cfg, dotted))
    return out


# --------------------------------------------------------------------------- local files


def find_local_target(name: str, target: str | Path | None, bundle_path: str,
                      root: Path | None = None) -> Path:
    """The local target.toml: ``target`` (a file, or a directory holding one) if
    given, else the checkout's ``targets/<name>/target.toml`` (or the bundled
    target whose ``[target] name`` is ``name``). :class:`UsageError` if none."""
    from fuzzer.config import REPO, bundled_targets

    if target is not None:
        p = Path(target)
        if p.is_dir():
            p = p / "target.toml"
        if not p.is_file():
            raise UsageError(f"--target {target}: no such target.toml")
        return p
    base = root or REPO
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name or "") and name != "template":
        p = base / "targets" / name / "target.toml"
        if p.is_file():
            return p
        for t in bundled_targets(base):
            if t.name == name and not t.error:
                return t.path
    raise UsageError(
        f"{bundle_path}: no local target named {name!r} (looked for "
        f"{base / 'targets' / (name or '?') / 'target.toml'}); pass --target PATH to its "
        "target.toml, or --trust to run the bundle's own commands")


def _local_overrides(bundle_cfg: Mapping[str, Any], local_toml: Path,
                     differing: list[str]) -> list[str]:
    """``--set`` overrides carrying the bundle's version and node choice to the local target."""
    import tomllib

    out = []
    version = _get(bundle_cfg, "target.version")
    if version is not None:
        if isinstance(version, str) and _VERSION.match(version):
            out.append(f"target.version={json.dumps(version)}")
        else:
            differing.append("target.version")
    node, bdir = _get(bundle_cfg, "target.node"), _get(bundle_cfg, "target.dir")
    if not (isinstance(node, str) and isinstance(bdir, str)):
        return out
    try:
        local = tomllib.loads(local_toml.read_text(encoding="utf-8")).get("target", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return out  # load_config reports it
    if not isinstance(local, dict) or "node" not in local:
        return out  # the local target has no node to re-point
    rel = Path(node).relative_to(bdir) if Path(node).is_relative_to(bdir) else None
    ldir = (local_toml.parent / str(local.get("dir") or ".")).resolve()
    if rel is None or ".." in rel.parts or not (ldir / rel).resolve().is_relative_to(ldir) \
            or not (ldir / rel).is_file():
        return out  # not one of the local target's files: compared (and refused) as is
    out.append(f"target.node={json.dumps(rel.as_posix())}")
    return out


def resolve_config(bundle_cfg: Mapping[str, Any], bundle_path: str, *,
                   target: str | Path | None = None, trust: bool = False) -> Resolution:
    """The config a replay of a bundle runs (see the module docstring).

    Without ``trust``: the merged config, or an :class:`InputError` naming the
    bundle and every executable key that differs from the local target. With
    ``trust``: the bundle's own config (and, when a local target is found,
    the keys that differ from it, for the warning)."""
    from fuzzer.config import load_config

    name = str(_get(bundle_cfg, "target.name") or "")
    try:
        local_toml = find_local_target(name, target, bundle_path)
        differing: list[str] = []
        overrides = _local_overrides(bundle_cfg, local_toml, differing)
        local = load_config(local_toml, overrides, load_module=False).to_dict()
    except HbfuzzError:
        if trust and target is None:  # nothing local to compare: the bundle's own, as asked
            return Resolution(dict(bundle_cfg), None, trusted=True)
        raise
    if local["target"]["name"] != name:
        differing.insert(0, "target.name")
    differing += [k for k in differing_keys(bundle_cfg, local) if k not in differing]
    if trust:
        return Resolution(dict(bundle_cfg), local_toml, trusted=True,
                          differing=tuple(differing))
    if differing:
        raise InputError(
            f"refused: {', '.join(differing)} differ{'s' if len(differing) == 1 else ''} from "
            f"the local target {local_toml} (replay runs only the local target's commands "
            "and code; pass --trust to run the bundle's own)", path=bundle_path)
    return Resolution(merge_config(bundle_cfg, local), local_toml)
