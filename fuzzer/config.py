"""A target's TOML config -> one validated, frozen :class:`TargetConfig`.

Why: one file per system under test (docs/writing-a-target.md) says how to
start its nodes, how their messages pass the mediator, how clients drive it,
what counts as a bug, which faults are fair and how long an execution is.
Everything is checked before anything starts, and every mistake is one line
naming the file and the dotted key::

    targets/x/target.toml: workload.clients: expected a positive integer, got "three"
    targets/x/target.toml: schedule.stpe: unknown key; did you mean 'step'?
    targets/x/target.toml: --set target.node: no such file: ./nodes/echo (looked in ...)

``load_config(path, overrides)`` applies ``--set key=value`` overrides first
(values parsed as TOML if they parse, else bare strings); an error caused by
an override names ``--set KEY``. ``TargetConfig.to_dict()`` is the resolved
config (every default filled in, paths absolute) for ``campaign.toml``;
:func:`dumps` writes it as TOML, and loading that file again gives an equal
config.

Tables: ``[target]``, ``[cluster]`` (:func:`fuzzer.cluster.spec_from_dict`),
``[network]``, ``[workload]``, ``[oracles]``, ``[roles]``, ``[faults]``,
``[schedule]``, ``[coverage]``; see :mod:`fuzzer.configtypes` and
targets/template/target.toml.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from fuzzer.checkers.invariants import InvariantSet
from fuzzer.cluster.spec import ClusterSpec
from fuzzer.configoracles import build_invariant, read_oracles, read_roles
from fuzzer.configschema import Context, Table, apply_overrides
from fuzzer.configsections import (
    MAELSTROM_WORKLOADS,
    REPO,
    check_codec,
    read_cluster,
    read_coverage,
    read_faults,
    read_network,
    read_schedule,
    read_target,
    read_workload,
)
from fuzzer.configtypes import (
    CoverageConfig,
    FaultsConfig,
    InvariantSpec,
    LogRule,
    NetworkConfig,
    OraclesConfig,
    RolesConfig,
    ScheduleConfig,
    TargetInfo,
    WorkloadConfig,
    cluster_to_dict,
)
from fuzzer.errors import ConfigError
from fuzzer.network.codecs import Codec, get_codec
from fuzzer.targetmodule import load_target_module, resolve_ref
from fuzzer.tomlwrite import dumps

__all__ = [
    "TargetConfig",
    "TargetInfo",
    "NetworkConfig",
    "WorkloadConfig",
    "InvariantSpec",
    "OraclesConfig",
    "LogRule",
    "RolesConfig",
    "FaultsConfig",
    "ScheduleConfig",
    "CoverageConfig",
    "SECTIONS",
    "REPO",
    "MAELSTROM_WORKLOADS",
    "load_config",
    "config_from_dict",
    "dumps",
    "BundledTarget",
    "bundled_targets",
    "summary",
]

SECTIONS = (
    "target", "cluster", "network", "workload", "oracles", "roles", "faults", "schedule",
    "coverage",
)


@dataclass(frozen=True)
class TargetConfig:
    """A validated target config. ``source`` is the file as named in errors;
    ``overrides`` the ``--set`` strings applied; ``module`` the loaded target
    module (None when the config has none or was loaded with
    ``load_module=False``)."""

    source: str
    target: TargetInfo
    cluster: ClusterSpec
    network: NetworkConfig
    workload: WorkloadConfig
    oracles: OraclesConfig
    roles: RolesConfig
    faults: FaultsConfig
    schedule: ScheduleConfig
    coverage: CoverageConfig
    overrides: tuple[str, ...] = ()
    module: ModuleType | None = None

    @property
    def nodes(self) -> list[str]:
        """The node names (``n1``..``nN``)."""
        return self.cluster.names()

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as target.toml tables (for ``campaign.toml``)."""
        return {
            "target": self.target.to_dict(),
            "cluster": cluster_to_dict(self.cluster),
            "network": self.network.to_dict(),
            "workload": self.workload.to_dict(),
            "oracles": self.oracles.to_dict(),
            "roles": self.roles.to_dict(),
            "faults": self.faults.to_dict(),
            "schedule": self.schedule.to_dict(),
            "coverage": self.coverage.to_dict(),
        }

    def to_toml(self) -> str:
        return dumps(self.to_dict())

    # --- things built from the config (need the target module for module:attr) -----

    def resolve(self, ref: str, key: str = "") -> Any:
        """The object a ``module:attr`` / ``pkg.mod:attr`` reference names."""
        return resolve_ref(ref, self.module, source=self.source, where=key or ref)

    def make_codec(self) -> Codec | None:
        """A fresh codec for one stream direction (None for stdio targets). A zero-argument
        factory, so ``TcpMediator(model, nodes, codec=cfg.make_codec)`` works as is."""
        if self.network.adapter != "tcp":
            return None
        if ":" in self.network.codec:
            factory = self.resolve(self.network.codec, "network.codec")
            return factory(**self.network.codec_kwargs())
        return get_codec(self.network.codec, **self.network.codec_kwargs())

    def invariant_set(self, hb: Any = None, **kw: Any) -> InvariantSet:
        """A fresh :class:`InvariantSet` of ``oracles.invariants`` (build one per execution)."""
        ctx = Context(self.source)
        invs = [
            build_invariant(spec, self.module, ctx, f"oracles.invariants[{i}]")
            for i, spec in enumerate(self.oracles.invariants)
        ]
        return InvariantSet(invs, hb, **kw)

    def workload_client(self) -> Any:
        """The workload client factory (``workload.client``), or None if not set."""
        if not self.workload.client:
            return None
        return self.resolve(self.workload.client, "workload.client")

    def role_probe_function(self) -> Any:
        """The ``roles.function`` callable for ``probe = "status"`` (else None)."""
        if self.roles.probe != "status":
            return None
        return self.resolve(self.roles.function, "roles.function")


# --------------------------------------------------------------------------- loading


def load_config(path: str | Path, overrides: Sequence[str] = (), *,
                load_module: bool = True) -> TargetConfig:
    """Read, override and validate ``path``. Every problem is a :class:`ConfigError`.

    With ``load_module=False`` the target module is not imported and no
    ``module:attr``/``pkg.mod:attr`` reference is resolved (for config
    snapshots from bundles, which are data, never code to run)."""
    source = str(path)
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("no such file", path=source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", path=source) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=source) from None
    return config_from_dict(data, source, p.parent, overrides, load_module=load_module)


def config_from_dict(data: Mapping[str, Any], source: str, config_dir: Path,
                     overrides: Sequence[str] = (), *, load_module: bool = True
                     ) -> TargetConfig:
    """Validate parsed TOML ``data`` (relative paths resolve against ``config_dir``)."""
    data, texts = apply_overrides(dict(data), list(overrides), source)
    ctx = Context(source, texts)
    top = Table(ctx, data, "")
    for name in SECTIONS:
        top.known.add(name)
    top.done()
    for name in SECTIONS:
        if name in data and not isinstance(data[name], dict):
            raise ctx.err(name, "expected a table, like [" + name + "]")
    if "target" not in data:
        raise ctx.err("target", "is required (a [target] table with at least name)")

    info = read_target(top.table("target"), config_dir, check_files=load_module)
    net = read_network(top.table("network"))
    cluster_t = top.table("cluster")
    if "cluster" not in data and info.node is None:
        raise ctx.err("cluster", "is required (a [cluster] table with nodes and command)")
    cluster = read_cluster(cluster_t, info, net, check_programs=load_module)
    module = None
    if load_module and info.module is not None:
        try:
            module = load_target_module(info.module, info.dir, source=source,
                                        where="target.module")
        except ConfigError as exc:
            raise ctx.retarget(exc) from None
    check_codec(net, module, ctx, resolve=load_module)
    workload = read_workload(top.table("workload"), info, net, module, resolve=load_module)
    oracles = read_oracles(top.table("oracles"), workload, module, resolve=load_module)
    roles = read_roles(top.table("roles"), module, resolve=load_module)
    faults = read_faults(top.table("faults"), cluster.nodes)
    if net.in_order:
        bad = [f for f in faults.allowed if f in ("link-reorder", "link-duplicate")]
        if bad:
            raise ConfigError(f"{bad[0]} cannot happen when network.in_order = true (one TCP "
                              "connection delivers each message once, in order)",
                              path=source, where="faults.allowed")
    schedule = read_schedule(top.table("schedule"))
    coverage = read_coverage(top.table("coverage"))
    return TargetConfig(
        source=source, target=info, cluster=cluster, network=net, workload=workload,
        oracles=oracles, roles=roles, faults=faults, schedule=schedule, coverage=coverage,
        overrides=tuple(overrides), module=module,
    )


# --------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class BundledTarget:
    """A target shipped under ``targets/`` (``hbfuzz targets``)."""

    name: str
    description: str
    path: Path
    error: str = ""


def bundled_targets(root: Path | None = None) -> list[BundledTarget]:
    """Every ``targets/*/target.toml`` except the template, sorted by directory.
    Only name and description are read (fast, no validation)."""
    base = (root or REPO) / "targets"
    out = []
    for path in sorted(base.glob("*/target.toml")):
        if path.parent.name == "template":
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            t = data.get("target", {})
            out.append(BundledTarget(str(t.get("name", path.parent.name)),
                                     str(t.get("description", "")), path))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            out.append(BundledTarget(path.parent.name, "", path, error=str(exc)))
    return out


def summary(cfg: TargetConfig) -> list[str]:
    """A few lines describing a config (``hbfuzz check-config``)."""
    t, c, n, w, o, f, s = (cfg.target, cfg.cluster, cfg.network, cfg.workload, cfg.oracles,
                           cfg.faults, cfg.schedule)
    name = t.name + (f" {t.version}" if t.version else "")
    net = f"tcp, codec {n.codec}" if n.adapter == "tcp" else f"stdio, services {', '.join(n.services) or 'none'}"
    oracles = [f"model {o.model}" if o.model else "", f"checker {o.checker}" if o.checker else "",
               f"{len(o.invariants)} invariant(s)", f"liveness probe {o.liveness_probe}"]
    lines = [
        f"target    {name}" + (f" — {t.description}" if t.description else ""),
        f"cluster   {c.nodes} nodes: {' '.join(c.command)}",
        *([f"node      {t.node} {' '.join(t.node_args)}".rstrip()] if t.node else []),
        f"network   {net}",
        f"workload  {w.kind} {w.name}: {w.clients} clients x {w.rate:g} ops/s, mix "
        + ", ".join(f"{k}={v:g}" for k, v in w.mix),
        f"oracles   {', '.join(x for x in oracles if x)}",
        f"roles     {cfg.roles.probe}",
        f"faults    {', '.join(f.allowed)} on {', '.join(f.nodes)}",
        f"schedule  {s.length} steps x {s.step:g}s, quiescence {s.quiescence:g}s",
        "coverage  " + ("off" if not cfg.coverage.enabled
                        else ", ".join(cfg.coverage.modules) or "node script's directory"),
    ]
    return lines
