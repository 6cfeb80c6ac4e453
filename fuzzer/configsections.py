"""Readers of each table of target.toml into the values of :mod:`fuzzer.configtypes`.

Why one function per table: each states the table's keys, defaults and
checks in one place, in the order docs/writing-a-target.md documents them,
and :func:`fuzzer.config.load_config` only wires them together. Checks that
span tables (a workload the target does not support, a fault aimed at node
n5 of a 3-node cluster, a codec from the target module) get the other
tables' values as arguments.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from pathlib import Path
from types import ModuleType

from fuzzer.cluster.spec import ClusterSpec, render, render_node
from fuzzer.cluster.specload import spec_from_dict
from fuzzer.configschema import MISSING, Context, Table, show, suggest
from fuzzer.configtypes import (
    CoverageConfig,
    FaultsConfig,
    NetworkConfig,
    ScheduleConfig,
    TargetInfo,
    WorkloadConfig,
)
from fuzzer.errors import ConfigError, NetworkError
from fuzzer.faults import FAULT_TYPES, ROLES, SHAPES, NodeRef
from fuzzer.network.codecs import codec_names, get_codec
from fuzzer.network.services import SERVICES
from fuzzer.targetmodule import resolve_ref

__all__ = [
    "REPO",
    "MAELSTROM_WORKLOADS",
    "KV_OPS",
    "DEFAULT_FAULTS",
    "read_target",
    "read_network",
    "read_cluster",
    "check_codec",
    "read_workload",
    "read_faults",
    "read_schedule",
    "read_coverage",
]

REPO = Path(__file__).resolve().parent.parent

#: Maelstrom workload -> the operations its clients issue (its checker has the same name).
MAELSTROM_WORKLOADS: dict[str, tuple[str, ...]] = {
    "echo": ("echo",),
    "unique-ids": ("generate",),
    "broadcast": ("broadcast", "read"),
    "g-counter": ("add", "read"),
    "pn-counter": ("add", "read"),
    "g-set": ("add", "read"),
    "lin-kv": ("read", "write", "cas"),
}
_MAELSTROM_MIX: dict[str, dict[str, float]] = {
    "echo": {"echo": 1.0},
    "unique-ids": {"generate": 1.0},
    "broadcast": {"broadcast": 0.5, "read": 0.5},
    "g-counter": {"add": 0.7, "read": 0.3},
    "pn-counter": {"add": 0.7, "read": 0.3},
    "g-set": {"add": 0.7, "read": 0.3},
    "lin-kv": {"read": 0.5, "write": 0.3, "cas": 0.2},
}
KV_OPS = ("read", "write", "cas", "get", "put")
_KV_MIX = {"read": 0.5, "write": 0.3, "cas": 0.2}
WORKLOAD_KINDS = ("kv", "maelstrom", "custom")
ADAPTERS = ("tcp", "stdio")
DEFAULT_FAULTS = (
    "partition", "heal", "kill", "restart", "pause", "resume",
    "link-delay", "link-drop", "link-duplicate", "link-reorder", "wait",
)
_SHAPE_MIN_NODES = {"ring": 4, "bridge": 3}


# --------------------------------------------------------------------------- [target]


def _expanduser(path: str) -> Path:
    """``Path(path).expanduser()``, or the path as written when ``~user`` names no user
    (pathlib raises RuntimeError then; the path is reported as missing later)."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        return Path(path)


def _find_program(word: str, target_dir: Path) -> Path | None:
    """A program named in the config: a path (relative to the target dir) or a PATH name."""
    p = _expanduser(word)
    if p.is_absolute():
        return p if p.exists() else None
    local = target_dir / p
    if local.exists() or "/" in word:
        return local.resolve() if local.exists() else None
    found = shutil.which(word)
    return Path(found) if found else None


def read_target(t: Table, config_dir: Path, *, check_files: bool) -> TargetInfo:
    tdir = t.str("dir", None)
    target_dir = (config_dir / tdir).resolve() if tdir else config_dir.resolve()
    if tdir and not target_dir.is_dir():
        raise t.err("dir", f"no such directory: {target_dir}")
    name = t.str("name")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise t.err("name", f"expected a name of letters, digits, '.', '-', '_', got {show(name)}")
    description = t.str("description", "", empty=True)
    version = t.str("version", None)
    # placeholders of target.setup and target.python (the target's own python may
    # not exist before setup ran, so setup gets the fuzzer's as {fuzzer_python})
    values = {"version": version or "", "target_dir": str(target_dir), "repo": str(REPO),
              "fuzzer_python": sys.executable}
    setup: tuple[str, ...] = ()
    raw_setup = t.raw("setup", None)
    if raw_setup is not None:
        if isinstance(raw_setup, str):
            try:
                words = shlex.split(raw_setup)
            except ValueError as exc:  # "No closing quotation", "No escaped character"
                raise t.err("setup", f"cannot split into words: {exc}") from None
        else:
            words = list(t.str_list("setup"))
        if not words:
            raise t.err("setup", "must not be empty")
        where = t.ctx.where(t.key("setup"))
        words = [render(w, values, t.ctx.source, where) for w in words]
        prog = _find_program(words[0], target_dir)
        if check_files:
            if prog is None:
                raise t.err("setup", f"no such program: {words[0]} "
                            f"(looked in {target_dir} and PATH)")
            if not os.access(prog, os.X_OK):
                raise t.err("setup", f"{prog} is not executable (chmod +x it)")
        setup = (str(prog or words[0]), *words[1:])
    module = None
    mod = t.str("module", None)
    if mod is not None:
        module = (target_dir / mod).resolve()
        if check_files:
            if not module.is_relative_to(target_dir):
                raise t.err("module", f"{mod} is outside the target directory {target_dir}")
            if module.suffix != ".py" or not module.is_file():
                raise t.err("module", f"no such Python file: {module}")
    node = None
    raw_node = t.str("node", None)
    if raw_node is not None:
        found = _find_program(raw_node, target_dir)
        if found is None or not found.is_file():
            raise t.err("node", f"no such file: {raw_node} (looked in {target_dir} and PATH)")
        node = str(found)
        info = TargetInfo(name=name, dir=target_dir, node=node)
        if not info.node_is_python and not os.access(found, os.X_OK):
            raise t.err("node", f"{found} is not executable (chmod +x it)")
    node_args = t.str_list("node_args", ())
    python = t.str("python", "")
    if python:
        python = render(python, values, t.ctx.source, t.ctx.where(t.key("python")))
        pp = _expanduser(python)
        if not pp.is_absolute() and "/" in python:
            python = str((target_dir / pp).resolve())
    else:
        python = sys.executable
    workloads = t.str_list("workloads", ())
    t.done()
    return TargetInfo(
        name=name, dir=target_dir, description=description, version=version, setup=setup,
        module=module, node=node, node_args=node_args, python=python, workloads=workloads,
    )


# --------------------------------------------------------------------------- [network]

_TCP_ONLY = ("codec", "codec_params", "routing", "in_order")
ROUTINGS = ("proxy", "front")
_STDIO_ONLY = ("services", "client_faults", "service_faults", "init_timeout", "stale")


def read_network(t: Table) -> NetworkConfig:
    adapter = t.str("adapter", "tcp", choices=ADAPTERS)
    wrong = _STDIO_ONLY if adapter == "tcp" else _TCP_ONLY
    for key in wrong:
        if key in t.data:
            raise t.err(key, f"only applies to adapter = \"{'stdio' if adapter == 'tcp' else 'tcp'}\"")
    if adapter == "tcp":
        routing = t.str("routing", "proxy", choices=ROUTINGS)
        codec = t.str("codec", "raw")
        params = t.raw("codec_params", {})
        if not isinstance(params, dict):
            raise t.err("codec_params", f"expected a table, got {show(params)}")
        in_order = t.bool("in_order", False)
        t.done()
        return NetworkConfig(adapter, codec=codec, codec_params=tuple(params.items()),
                             routing=routing, in_order=in_order)
    services = t.str_list("services", SERVICES, choices=SERVICES)
    cfg = NetworkConfig(
        adapter,
        services=tuple(services),
        client_faults=t.bool("client_faults", False),
        service_faults=t.bool("service_faults", False),
        init_timeout=t.duration("init_timeout", 10.0, positive=True),
        stale=t.number("stale", 0.25, min=0.0, max=1.0),
    )
    t.done()
    return cfg


def check_codec(net: NetworkConfig, module: ModuleType | None, ctx: Context, *,
                resolve: bool) -> None:
    """The codec exists (registry, target module's CODECS, or ``pkg.mod:attr``) and
    accepts its parameters."""
    if net.adapter != "tcp":
        return
    name = net.codec
    if ":" in name:
        if not resolve:
            return
        factory = resolve_ref(name, module, source=ctx.source, where=ctx.where("network.codec"))
        try:
            factory(**net.codec_kwargs())
        except Exception as exc:  # the factory is user code: any failure is a config error
            raise ctx.err("network.codec_params", f"codec {name}: {exc}") from None
        return
    if name not in codec_names():
        if not resolve:
            return  # may come from the target module, not loaded here
        raise ctx.err("network.codec", f"unknown codec {show(name)}" + suggest(name, codec_names()))
    try:
        get_codec(name, **net.codec_kwargs())
    except NetworkError as exc:
        raise ctx.err("network.codec_params", str(exc)) from None
    except Exception as exc:  # a target module's codec factory is user code
        raise ctx.err("network.codec_params", f"codec {name}: {type(exc).__name__}: {exc}"
                      ) from None


# --------------------------------------------------------------------------- [cluster]

_CLUSTER_KEYS = (
    "nodes", "command", "env", "files", "vars", "ports_per_node", "peer_port_index",
    "readiness", "cwd", "stop_grace", "log_cap", "clock", "pipe_stdio", "name_prefix",
)
_READINESS_KEYS = ("kind", "port_index", "pattern", "command", "timeout", "interval")


def read_cluster(t: Table, info: TargetInfo, net: NetworkConfig, *,
                 check_programs: bool = True) -> ClusterSpec:
    """[cluster] through :func:`fuzzer.cluster.spec_from_dict`, with defaults for
    stdio targets, a command derived from ``target.node``, the extra template
    variables, and a dry render of every node with fake ports."""
    ctx = t.ctx
    data = dict(t.data)
    for key in data:
        if key not in _CLUSTER_KEYS:
            raise t.err(key, "unknown key" + suggest(key, _CLUSTER_KEYS))
    ready = data.get("readiness")
    if isinstance(ready, dict):
        for key in ready:
            if key not in _READINESS_KEYS:
                raise t.err(f"readiness.{key}", "unknown key" + suggest(key, _READINESS_KEYS))
    if net.adapter == "stdio":
        data.setdefault("pipe_stdio", True)
        data.setdefault("ports_per_node", 0)
        data.setdefault("readiness", {"kind": "none"})
    if "command" not in data and info.node is not None:
        if info.node_is_python:
            data["command"] = ["{python}", "-m", "instrumentation", "--", "{node}",
                               *info.node_args]
        else:
            data["command"] = ["{node}", *info.node_args]
    if "command" not in data:
        raise t.err("command", "is required (or set target.node)")
    extra = {"python": info.python, "target_dir": str(info.dir), "repo": str(REPO)}
    if info.version is not None:
        extra["version"] = info.version
    if info.node is not None:
        extra["node"] = info.node
    user_vars = data.get("vars", {})
    if isinstance(user_vars, dict):
        data["vars"] = {**extra, **user_vars}
    cwd = data.get("cwd")
    if isinstance(cwd, str) and cwd and not _expanduser(cwd).is_absolute():
        data["cwd"] = str((info.dir / cwd).resolve())  # relative to the target dir
    try:
        spec = spec_from_dict(data, ctx.source, prefix="cluster.")
        argv0 = dry_render(spec)
    except ConfigError as exc:
        raise ctx.retarget(exc) from None
    if check_programs and not info.setup:  # a setup step may install the program
        prog = Path(argv0)
        if "/" not in argv0:
            ok = shutil.which(argv0) is not None
        elif prog.is_absolute() or spec.cwd:
            full = prog if prog.is_absolute() else Path(spec.cwd or ".") / prog
            ok = full.is_file() and os.access(full, os.X_OK)
        else:
            ok = True  # relative to the node's data dir, which exists only at run time
        if not ok:
            raise ctx.err("cluster.command[0]", f"program {show(argv0)} does not exist or is "
                          "not executable")
    return spec


def dry_render(spec: ClusterSpec) -> str:
    """Render every node with fake ports, so an out-of-range ``{ports[3]}`` or
    ``{peers[5]}`` is reported now, not when the cluster starts. Returns the
    first node's program (argv[0])."""
    ppn = spec.ports_per_node
    ports = [[20000 + i * max(ppn, 1) + j for j in range(ppn)] for i in range(spec.nodes)]
    argv0 = ""
    for i in range(spec.nodes):
        node = render_node(spec, i, ports, Path("/hbfuzz-dry-run"))
        argv0 = argv0 or node.argv[0]
    return argv0


# --------------------------------------------------------------------------- [workload]


def read_workload(t: Table, info: TargetInfo, net: NetworkConfig,
                  module: ModuleType | None, *, resolve: bool) -> WorkloadConfig:
    kind = t.str("kind", "maelstrom" if net.adapter == "stdio" else "kv",
                 choices=WORKLOAD_KINDS)
    if kind == "maelstrom":
        if net.adapter != "stdio":
            raise t.err("kind", 'the maelstrom workload needs network.adapter = "stdio"')
        default_name = info.workloads[0] if info.workloads else MISSING
        name = t.str("name", default_name)
        if name not in MAELSTROM_WORKLOADS:
            raise t.err("name", f"unknown Maelstrom workload {show(name)}"
                        + suggest(name, MAELSTROM_WORKLOADS))
        ops = MAELSTROM_WORKLOADS[name]
        default_mix = _MAELSTROM_MIX[name]
        client = t.str("client", "")
    else:
        name = t.str("name", kind)
        ops = KV_OPS if kind == "kv" else ()
        default_mix = _KV_MIX if kind == "kv" else {}
        default_client = "module:client" if info.module is not None else MISSING
        client = t.str("client", default_client)
    if info.workloads and name not in info.workloads:
        raise t.err("name", f"target {info.name} does not support workload {show(name)} "
                    f"(supported: {', '.join(info.workloads)})")
    if client:
        if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*", client):
            raise t.err("client", f"expected module:attr or package.module:attr, got {show(client)}")
        if resolve:
            resolve_ref(client, module, source=t.ctx.source, where=t.ctx.where(t.key("client")))
    mix_t = t.table("mix")
    mix: dict[str, float] = {}
    for op in mix_t.data:
        if ops and op not in ops:
            raise mix_t.err(op, f"{kind} workload {name} has no operation {show(op)}"
                            + suggest(op, ops))
        mix[op] = mix_t.number(op, min=0.0)
    if not mix:
        mix = dict(default_mix)
    elif not any(w > 0 for w in mix.values()):
        raise t.err("mix", "needs at least one weight > 0")
    params = t.raw("params", {})
    if not isinstance(params, dict):
        raise t.err("params", f"expected a table, got {show(params)}")
    cfg = WorkloadConfig(
        kind=kind,
        name=name,
        client=client,
        clients=t.int("clients", 3, max=1024),
        rate=t.number("rate", 10.0, positive=True),
        keys=t.int("keys", 3, max=1_000_000),
        mix=tuple(mix.items()),
        timeout=t.duration("timeout", 2.0, positive=True),
        params=tuple(params.items()),
    )
    t.done()
    return cfg


# --------------------------------------------------------------------------- [faults]


def read_faults(t: Table, nodes: int) -> FaultsConfig:
    default_allowed = [f for f in DEFAULT_FAULTS if nodes >= 2 or f != "partition"]
    allowed = t.raw("allowed", default_allowed)
    if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
        raise t.err("allowed", f"expected a list of fault names, got {show(allowed)}")
    for i, name in enumerate(allowed):
        if name not in FAULT_TYPES:
            raise t.err(f"allowed[{i}]", f"unknown fault {show(name)}" + suggest(name, FAULT_TYPES))
    sel = t.str_list("nodes", ("leader", "follower", "random"))
    for i, tok in enumerate(sel):
        try:
            ref = NodeRef.parse(tok)
        except ValueError:
            raise t.err(f"nodes[{i}]", f"expected a role ({', '.join(ROLES)}, *) or nodes like "
                        f"n1 or n1,n2, got {show(tok)}") from None
        bad = [j for j in ref.indices if j >= nodes]
        if bad:
            raise t.err(f"nodes[{i}]", f"n{bad[0] + 1} is not a node of this {nodes}-node cluster")
    default_shapes = tuple(
        sh for sh in FaultsConfig.shapes if nodes >= _SHAPE_MIN_NODES.get(sh, 2)
    )
    shapes = t.str_list("shapes", default_shapes, choices=SHAPES)
    if "partition" in allowed:
        if nodes < 2:
            raise t.err("allowed", "partition needs at least 2 nodes")
        for i, shape in enumerate(shapes):
            need = _SHAPE_MIN_NODES.get(shape, 2)
            if nodes < need:
                raise t.err(f"shapes[{i}]", f"{shape} needs at least {need} nodes, the cluster has "
                            f"{nodes}")
    cfg = FaultsConfig(
        allowed=tuple(allowed),
        nodes=sel,
        shapes=shapes,
        delay=t.range("delay", FaultsConfig.delay, kind="duration"),
        jitter=t.range("jitter", FaultsConfig.jitter, kind="duration"),
        drop=t.range("drop", FaultsConfig.drop, kind="prob"),
        duplicate=t.range("duplicate", FaultsConfig.duplicate, kind="prob"),
        reorder=t.range("reorder", FaultsConfig.reorder, kind="prob"),
        clock_skew=t.range("clock_skew", FaultsConfig.clock_skew, kind="signed"),
        clock_rate=t.range("clock_rate", FaultsConfig.clock_rate, kind="number"),
    )
    t.done()
    return cfg


# --------------------------------------------------------------------------- [schedule], [coverage]


def read_schedule(t: Table) -> ScheduleConfig:
    cfg = ScheduleConfig(
        step=t.duration("step", 1.0, positive=True),
        length=t.int("length", 12, max=100_000),
        quiescence=t.duration("quiescence", 2.0),
        warmup=t.duration("warmup", 1.0),
    )
    t.done()
    return cfg


def read_coverage(t: Table) -> CoverageConfig:
    cfg = CoverageConfig(
        enabled=t.bool("enabled", True),
        modules=t.str_list("modules", ()),
    )
    t.done()
    return cfg

