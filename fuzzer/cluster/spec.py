"""What a cluster is, as values: the templates (ClusterSpec) and one rendered node (NodeSpec).

Why a pure module: turning a target's command template into per-node argv,
env and config files is where configs go wrong (a typo in a placeholder, a
port index out of range). Doing it in pure code lets every such error be a
one-line :class:`~fuzzer.errors.ConfigError` naming the template key and the
placeholder, tested without processes, and raised before anything starts.

Templates use ``str.format`` syntax, rendered with ``format_map`` over a fixed
mapping. Only plain names and integer indexes are allowed (``{ports[1]}``);
attribute access (``{name.__class__}``) is refused, so a template can never
reach into Python objects. Placeholders (see :data:`PLACEHOLDERS`):

``{name}`` node name (n1..nN), ``{index}`` 0-based, ``{num}`` 1-based,
``{n}`` cluster size, ``{host}`` 127.0.0.1, ``{port}`` the node's first port,
``{ports}`` / ``{ports[k]}`` its ports, ``{data_dir}``, ``{log_dir}``,
``{workdir}``, ``{nodes}`` all names, ``{peers}`` / ``{peers[k]}`` the other
nodes' ``host:port`` (as this node must reach them: the network mediator may
substitute its own proxy ports), ``{peer_names}``, ``{peer_ports}``,
``{peers_json}``, ``{cluster}`` (``n1=host:port,...`` including this node),
``{cluster_json}``, plus the spec's own ``vars``. List values render
comma-separated and can also be indexed.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fuzzer.errors import ConfigError

HOST = "127.0.0.1"
# bounds that keep a config from asking for absurd clusters (a config is untrusted input:
# `nodes = 10**9` would otherwise allocate ports and renders for every node at load time)
MAX_NODES = 128
MAX_PORTS_PER_NODE = 64

PLACEHOLDERS = frozenset(
    {
        "name",
        "index",
        "num",
        "n",
        "host",
        "port",
        "ports",
        "data_dir",
        "log_dir",
        "workdir",
        "nodes",
        "peers",
        "peer_names",
        "peer_ports",
        "peers_json",
        "cluster",
        "cluster_json",
    }
)

READINESS_KINDS = ("none", "port", "log", "command")
CLOCK_MODES = ("env", "faketime")

_FIELD = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)$")


class JoinedList(list):
    """A list that renders comma-separated in a template but can be indexed."""

    def __format__(self, spec: str) -> str:
        return format(",".join(str(x) for x in self), spec)


def _freeze_map(value: Mapping[str, str] | Sequence[tuple[str, str]] | None) -> tuple:
    if value is None:
        return ()
    items = value.items() if isinstance(value, Mapping) else value
    return tuple((str(k), str(v)) for k, v in items)


@dataclass(frozen=True)
class Readiness:
    """How to know a node is up: ``none``, ``port`` (its port number
    ``port_index`` accepts TCP), ``log`` (a line of its output matches
    ``pattern``) or ``command`` (a templated argv exits 0)."""

    kind: str = "port"
    port_index: int = 0
    pattern: str = ""
    command: tuple[str, ...] = ()
    timeout: float = 10.0
    interval: float = 0.05

    def __post_init__(self) -> None:
        object.__setattr__(self, "command", tuple(self.command))


@dataclass(frozen=True)
class ClusterSpec:
    """Templates for N nodes of one target.

    ``files`` maps a path relative to the node's data dir to a template whose
    rendering is written there before every start. ``clock`` says how clock
    skew reaches a node: ``env`` (Python nodes: HBFUZZ_CLOCK_OFFSET/RATE read
    by the instrumentation) or ``faketime`` (native binaries: libfaketime via
    LD_PRELOAD; Go binaries ignore it). ``pipe_stdio`` gives each node a
    stdin/stdout pipe for the caller (Maelstrom nodes) and logs only stderr.
    ``source`` names the config file in error messages (``prefix`` is put
    before every key, e.g. ``cluster.``). ``env``, ``files`` and ``vars``
    accept a dict or (key, value) pairs and are stored as tuples of pairs
    (input order) so the spec stays immutable.
    """

    nodes: int
    command: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    files: tuple[tuple[str, str], ...] = ()
    vars: tuple[tuple[str, str], ...] = ()
    ports_per_node: int = 1
    peer_port_index: int = 0
    readiness: Readiness = field(default_factory=Readiness)
    cwd: str | None = None
    stop_grace: float = 5.0
    log_cap: int = 16 * 1024 * 1024
    clock: str = "env"
    pipe_stdio: bool = False
    name_prefix: str = "n"
    source: str = "<cluster spec>"
    prefix: str = ""  # key prefix in error messages, e.g. "cluster."

    def __post_init__(self) -> None:
        object.__setattr__(self, "command", tuple(str(a) for a in self.command))
        object.__setattr__(self, "env", _freeze_map(self.env))
        object.__setattr__(self, "files", _freeze_map(self.files))
        object.__setattr__(self, "vars", _freeze_map(self.vars))
        self._validate()

    # --- validation -------------------------------------------------------
    def _err(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, path=self.source, where=self.prefix + key)

    def _validate(self) -> None:
        if not isinstance(self.nodes, int) or not 1 <= self.nodes <= MAX_NODES:
            raise self._err("nodes", f"must be an integer from 1 to {MAX_NODES}, got "
                            f"{self.nodes!r}")
        if not self.command:
            raise self._err("command", "must be a non-empty list of strings")
        if not 0 <= self.ports_per_node <= MAX_PORTS_PER_NODE:
            raise self._err("ports_per_node", f"must be from 0 to {MAX_PORTS_PER_NODE}, got "
                            f"{self.ports_per_node}")
        if self.clock not in CLOCK_MODES:
            raise self._err("clock", f"must be one of {', '.join(CLOCK_MODES)}, got {self.clock!r}")
        if self.log_cap < 4096:
            raise self._err("log_cap", f"must be at least 4096 bytes, got {self.log_cap}")
        r = self.readiness
        if r.kind not in READINESS_KINDS:
            raise self._err(
                "readiness.kind", f"must be one of {', '.join(READINESS_KINDS)}, got {r.kind!r}"
            )
        if r.timeout <= 0:
            raise self._err("readiness.timeout", f"must be > 0, got {r.timeout}")
        if r.kind == "port" and not 0 <= r.port_index < self.ports_per_node:
            raise self._err(
                "readiness.port_index",
                f"{r.port_index} out of range for {self.ports_per_node} port(s) per node",
            )
        if r.kind == "log":
            try:
                re.compile(r.pattern)
            except re.error as exc:
                raise self._err("readiness.pattern", f"bad regex {r.pattern!r}: {exc}") from None
            if not r.pattern:
                raise self._err("readiness.pattern", "must be a non-empty regex")
        if r.kind == "command" and not r.command:
            raise self._err("readiness.command", "must be a non-empty list of strings")
        if self.ports_per_node and not 0 <= self.peer_port_index < self.ports_per_node:
            raise self._err("peer_port_index", f"{self.peer_port_index} out of range")
        for rel, _ in self.files:
            rp = Path(rel)
            if not rel or rp.is_absolute() or ".." in rp.parts:
                raise self._err(
                    f"files.{rel}", "path must be relative and stay inside the data dir"
                )
        names = PLACEHOLDERS | {k for k, _ in self.vars}
        for key, template in self.templates():
            check_template(template, names, self.source, self.prefix + key)

    def templates(self) -> list[tuple[str, str]]:
        """Every (key, template) pair, keys as error messages name them."""
        out = [(f"command[{i}]", a) for i, a in enumerate(self.command)]
        out += [(f"env.{k}", v) for k, v in self.env]
        out += [(f"files.{k}", v) for k, v in self.files]
        out += [(f"readiness.command[{i}]", a) for i, a in enumerate(self.readiness.command)]
        return out

    def names(self) -> list[str]:
        return [f"{self.name_prefix}{i + 1}" for i in range(self.nodes)]


@dataclass(frozen=True)
class NodeSpec:
    """One node, fully rendered: what the supervisor executes."""

    name: str
    index: int
    ports: tuple[int, ...]
    data_dir: Path
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    files: tuple[tuple[str, str], ...]
    ready_command: tuple[str, ...]

    @property
    def port(self) -> int | None:
        return self.ports[0] if self.ports else None


def check_template(template: str, names: frozenset[str] | set[str], source: str, key: str) -> None:
    """Raise ConfigError if ``template`` uses a placeholder outside ``names``,
    attribute access, or is malformed."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(
            f"malformed template {template!r}: {exc}", path=source, where=key
        ) from None
    for _literal, fname, fspec, _conv in parsed:
        if fname is None:
            continue
        m = _FIELD.match(fname)
        if not m:
            raise ConfigError(
                f"placeholder {{{fname}}} is not allowed (only names and [int] indexes)",
                path=source,
                where=key,
            )
        if m.group(1) not in names:
            raise ConfigError(
                f"unknown placeholder {{{m.group(1)}}}; known: {', '.join(sorted(names))}",
                path=source,
                where=key,
            )
        if fspec and "{" in fspec:
            check_template(fspec, names, source, key)


class _SafeMapping(dict):
    """format_map mapping whose unknown keys raise ConfigError, not KeyError."""

    def __init__(self, values: dict[str, Any], source: str, key: str):
        super().__init__(values)
        self.source = source
        self.key = key

    def __missing__(self, name: str) -> Any:
        raise ConfigError(f"unknown placeholder {{{name}}}", path=self.source, where=self.key)


def render(template: str, values: Mapping[str, Any], source: str, key: str) -> str:
    """Render one template; every failure is a ConfigError naming ``key``."""
    check_template(template, set(values), source, key)
    try:
        return template.format_map(_SafeMapping(dict(values), source, key))
    except ConfigError:
        raise
    except (IndexError, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(
            f"cannot render template {template!r}: {type(exc).__name__}: {exc}",
            path=source,
            where=key,
        ) from None


def node_values(
    spec: ClusterSpec,
    index: int,
    ports: Sequence[Sequence[int]],
    workdir: Path,
    peer_address: Mapping[tuple[str, str], tuple[str, int]] | None = None,
) -> dict[str, Any]:
    """The placeholder values for node ``index`` (0-based).

    ``ports[i]`` are node i's ports; ``peer_address[(src, dst)]`` overrides the
    address ``src`` uses to reach ``dst`` (the mediator's proxy port)."""
    names = spec.names()
    name = names[index]
    peer_address = peer_address or {}

    def addr(dst_i: int) -> tuple[str, int | str]:
        dst = names[dst_i]
        if dst != name and (name, dst) in peer_address:
            return peer_address[(name, dst)]
        p = ports[dst_i][spec.peer_port_index] if spec.ports_per_node else ""
        return HOST, p

    others = [i for i in range(spec.nodes) if i != index]
    peers = JoinedList(f"{h}:{p}" for h, p in (addr(i) for i in others))
    cluster = {names[i]: "{}:{}".format(*addr(i)) for i in range(spec.nodes)}
    values: dict[str, Any] = {k: v for k, v in spec.vars}
    values.update(
        name=name,
        index=index,
        num=index + 1,
        n=spec.nodes,
        host=HOST,
        port=ports[index][0] if spec.ports_per_node else "",
        ports=JoinedList(ports[index]),
        data_dir=str(workdir / "data" / name),
        log_dir=str(workdir / "logs"),
        workdir=str(workdir),
        nodes=JoinedList(names),
        peers=peers,
        peer_names=JoinedList(names[i] for i in others),
        peer_ports=JoinedList(addr(i)[1] for i in others),
        peers_json=json.dumps(list(peers)),
        cluster=JoinedList(f"{k}={v}" for k, v in cluster.items()),
        cluster_json=json.dumps(cluster),
    )
    return values


def render_node(
    spec: ClusterSpec,
    index: int,
    ports: Sequence[Sequence[int]],
    workdir: Path,
    peer_address: Mapping[tuple[str, str], tuple[str, int]] | None = None,
) -> NodeSpec:
    """Render node ``index`` (0-based) of ``spec`` into a NodeSpec."""
    if not 0 <= index < spec.nodes:
        raise ConfigError(f"node index {index} out of range 0..{spec.nodes - 1}", path=spec.source)
    if len(ports) != spec.nodes or any(len(p) < spec.ports_per_node for p in ports):
        raise ConfigError(
            f"need {spec.ports_per_node} port(s) for each of {spec.nodes} nodes", path=spec.source
        )
    values = node_values(spec, index, ports, workdir, peer_address)
    src = spec.source
    pre = spec.prefix
    argv = tuple(render(a, values, src, f"{pre}command[{i}]") for i, a in enumerate(spec.command))
    env = tuple((k, render(v, values, src, f"{pre}env.{k}")) for k, v in spec.env)
    files = []
    for rel, text in spec.files:
        files.append((rel, render(text, values, src, f"{pre}files.{rel}")))
    ready = tuple(
        render(a, values, src, f"{pre}readiness.command[{i}]")
        for i, a in enumerate(spec.readiness.command)
    )
    return NodeSpec(
        name=values["name"],
        index=index,
        ports=tuple(ports[index][: spec.ports_per_node]),
        data_dir=Path(values["data_dir"]),
        argv=argv,
        env=env,
        files=tuple(files),
        ready_command=ready,
    )
