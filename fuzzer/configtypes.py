"""The values of a validated target configuration (see fuzzer/config.py and docs/writing-a-target.md).

Why frozen dataclasses: the campaign, the execution, the scheduler and the
reproducer bundle all read the same config; once :func:`fuzzer.config.load_config`
has validated it nothing may change it behind their backs. Each section has
``to_dict()`` giving its keys exactly as target.toml spells them, fully
resolved (defaults filled, durations as text, paths absolute), so the
campaign's ``campaign.toml`` snapshot loads back into an equal config.

Table-like values (codec parameters, op mixes, invariant parameters) are kept
as tuples of ``(key, value)`` pairs so the sections stay immutable; each has a
method returning a fresh dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fuzzer.checkers.liveness import LivenessPolicy
from fuzzer.cluster.spec import ClusterSpec
from fuzzer.faults import format_duration

__all__ = [
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
    "cluster_to_dict",
]

Pairs = tuple[tuple[str, Any], ...]


def _dur(v: float) -> str:
    return format_duration(v)


def _plain(value: Any) -> Any:
    """Tuples -> lists, pair-tuples stay as the caller decides; for TOML output."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class TargetInfo:
    """``[target]``: what the system under test is and where its files are.

    ``dir`` is the directory relative paths resolve against (target.toml's own
    directory unless ``target.dir`` says otherwise). ``setup`` is an argv run
    once (in ``dir``) to install the software; ``module`` a Python file inside
    ``dir`` supplying custom clients, codecs, role probes and invariants;
    ``node`` the node program for targets started from one binary or script
    (Maelstrom); ``python`` the interpreter for Python nodes (``{python}``);
    ``workloads`` the workload names the target supports (empty: any).
    """

    name: str
    dir: Path
    description: str = ""
    version: str | None = None
    setup: tuple[str, ...] = ()
    module: Path | None = None
    node: str | None = None
    node_args: tuple[str, ...] = ()
    python: str = ""
    workloads: tuple[str, ...] = ()

    @property
    def node_is_python(self) -> bool:
        """Whether ``node`` is a Python script (run under ``python -m instrumentation``)."""
        if self.node is None:
            return False
        if self.node.endswith(".py"):
            return True
        try:
            with open(self.node, "rb") as fh:
                first = fh.readline(200)
        except OSError:
            return False
        return first.startswith(b"#!") and b"python" in first

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "version": self.version,
            "dir": str(self.dir),
            "setup": list(self.setup) if self.setup else None,
            "module": str(self.module) if self.module else None,
            "node": self.node,
            "node_args": list(self.node_args),
            "python": self.python,
            "workloads": list(self.workloads),
        }


@dataclass(frozen=True)
class NetworkConfig:
    """``[network]``: how messages between nodes pass through the mediator.

    ``tcp``: a proxy per directed link in front of each node's peer port
    (``cluster.peer_port_index``), framing streams with ``codec``
    (``codec_params`` go to its factory). ``stdio``: Maelstrom-protocol nodes
    on stdin/stdout, with the built-in ``services``; ``client_faults`` /
    ``service_faults`` let faults hit client and service links too.
    ``in_order`` (tcp with a codec): deliver each connection's messages in the
    order they were sent, as TCP does (a delay never lets a later message
    overtake an earlier one; ``link-reorder`` and ``link-duplicate`` are then
    refused in ``faults.allowed``). Off by default: the default model is a
    message network that may delay, reorder and duplicate, as Raft's and
    Paxos's system models allow; docs/faults.md says what findings that need
    it mean for a TCP target.
    """

    adapter: str = "tcp"
    codec: str = "raw"
    codec_params: Pairs = ()
    routing: str = "proxy"
    services: tuple[str, ...] = ()
    client_faults: bool = False
    service_faults: bool = False
    init_timeout: float = 10.0
    stale: float = 0.25
    in_order: bool = False

    def codec_kwargs(self) -> dict[str, Any]:
        return dict(self.codec_params)

    def stdio_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`fuzzer.network.stdio.StdioMediator` from this table."""
        return {
            "services": self.services,
            "client_faults": self.client_faults,
            "service_faults": self.service_faults,
            "init_timeout": self.init_timeout,
            "stale": self.stale,
        }

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"adapter": self.adapter}
        if self.adapter == "tcp":
            out["codec"] = self.codec
            out["codec_params"] = _plain(dict(self.codec_params))
            out["routing"] = self.routing
            out["in_order"] = self.in_order
        else:
            out.update(
                services=list(self.services),
                client_faults=self.client_faults,
                service_faults=self.service_faults,
                init_timeout=_dur(self.init_timeout),
                stale=self.stale,
            )
        return out


@dataclass(frozen=True)
class WorkloadConfig:
    """``[workload]``: the clients that drive the cluster and record a history.

    ``kind`` is ``kv`` (read/write/cas on ``keys`` keys through the target's
    client, ``client``), ``maelstrom`` (the Maelstrom workload ``name``
    through the stdio mediator) or ``custom`` (``client`` builds everything).
    ``rate`` is operations per second per client; ``mix`` op -> weight;
    ``timeout`` per operation; ``params`` free-form, passed to the client.
    """

    kind: str = "kv"
    name: str = "kv"
    client: str = ""
    clients: int = 3
    rate: float = 10.0
    keys: int = 3
    mix: Pairs = ()
    timeout: float = 2.0
    params: Pairs = ()

    def mix_dict(self) -> dict[str, float]:
        return dict(self.mix)

    def params_dict(self) -> dict[str, Any]:
        return dict(self.params)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "client": self.client or None,
            "clients": self.clients,
            "rate": self.rate,
            "keys": self.keys,
            "mix": dict(self.mix),
            "timeout": _dur(self.timeout),
            "params": _plain(dict(self.params)),
        }


@dataclass(frozen=True)
class InvariantSpec:
    """One ``[[oracles.invariants]]`` entry: a name and its parameters."""

    name: str
    params: Pairs = ()

    def as_config(self) -> dict[str, Any]:
        """The entry as :meth:`InvariantSet.from_config` takes it."""
        return {"name": self.name, **dict(self.params)}


@dataclass(frozen=True)
class OraclesConfig:
    """``[oracles]``: what decides that an execution found a bug.

    ``model``: linearizability model of the client history (None: no
    linearizability check); ``checker``: a Maelstrom workload checker (None:
    none) with ``checker_timeout``; ``invariants``: event-stream invariants;
    ``liveness``: the policy of the after-heal probe ``liveness_probe``
    (``workload``: one operation through the workload client; ``none``; or
    ``module:attr``).
    """

    model: str | None = None
    checker: str | None = None
    checker_timeout: float = 30.0
    invariants: tuple[InvariantSpec, ...] = ()
    liveness: LivenessPolicy = field(default_factory=LivenessPolicy)
    liveness_probe: str = "workload"

    def invariant_configs(self) -> list[dict[str, Any]]:
        return [inv.as_config() for inv in self.invariants]

    def to_dict(self) -> dict[str, Any]:
        lv = self.liveness
        return {
            "model": self.model or "none",
            "checker": self.checker or "none",
            "checker_timeout": _dur(self.checker_timeout),
            "invariants": [_plain(inv.as_config()) for inv in self.invariants],
            "liveness": {
                "probe": self.liveness_probe,
                "bound": lv.bound,
                "attempt_timeout": lv.attempt_timeout,
                "interval": lv.interval,
                "max_attempts": lv.max_attempts,
            },
        }


@dataclass(frozen=True)
class LogRule:
    """One ``[[roles.rules]]`` row: log lines matching ``regex`` set STATE keys.

    ``set`` maps a STATE key to a value template (``"{term}"`` is the regex's
    named group ``term``; plain text is a literal); ``ints`` names the keys
    whose values are integers. Same rows as ``targets/etcd/logstate.py``'s
    ``rules_from_config``.
    """

    regex: str
    set: Pairs
    ints: tuple[str, ...] = ()
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"regex": self.regex, "set": dict(self.set), "ints": list(self.ints),
                "name": self.name}


@dataclass(frozen=True)
class RolesConfig:
    """``[roles]``: how the nemesis learns which node is leader, and STATE from logs.

    ``status``: the target module's async ``function`` (``module:attr``)
    returns ``{node: role}``; ``log``: the ``rules`` turn node log lines into
    STATE events and the latest ``role`` per node is its role; ``none``:
    role-based faults fall back to random nodes. ``timeout`` bounds one probe.
    ``rules``, whatever the probe, turn the nodes' log lines into STATE events
    (black-box targets get roles and terms for invariants and HB coverage).
    """

    probe: str = "none"
    function: str = ""
    timeout: float = 1.0
    rules: tuple[LogRule, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "probe": self.probe,
            "function": self.function or None,
            "timeout": _dur(self.timeout),
            "rules": [r.to_dict() for r in self.rules],
        }


@dataclass(frozen=True)
class FaultsConfig:
    """``[faults]``: which faults the scheduler may pick, with parameter ranges.

    ``allowed``: fault verbs from :data:`fuzzer.faults.FAULT_TYPES`; ``nodes``:
    node selectors a node fault may target (roles such as ``leader``, ``*``,
    or explicit ``n2``); ``shapes``: partition shapes; ``delay``/``jitter``
    seconds, ``drop``/``duplicate``/``reorder`` probabilities,
    ``clock_skew`` signed seconds and ``clock_rate`` factors are
    ``(low, high)`` ranges the scheduler draws from.
    """

    allowed: tuple[str, ...]
    nodes: tuple[str, ...] = ("leader", "follower", "random")
    shapes: tuple[str, ...] = ("isolate", "majority-minority", "halves", "bridge", "one-way")
    delay: tuple[float, float] = (0.01, 0.5)
    jitter: tuple[float, float] = (0.0, 0.05)
    drop: tuple[float, float] = (0.1, 0.5)
    duplicate: tuple[float, float] = (0.1, 0.5)
    reorder: tuple[float, float] = (0.1, 0.5)
    clock_skew: tuple[float, float] = (-2.0, 2.0)
    clock_rate: tuple[float, float] = (1.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        def durs(r: tuple[float, float], signed: bool = False) -> list[str]:
            return [format_duration(x, signed=signed) for x in r]

        return {
            "allowed": list(self.allowed),
            "nodes": list(self.nodes),
            "shapes": list(self.shapes),
            "delay": durs(self.delay),
            "jitter": durs(self.jitter),
            "drop": list(self.drop),
            "duplicate": list(self.duplicate),
            "reorder": list(self.reorder),
            "clock_skew": durs(self.clock_skew, signed=True),
            "clock_rate": list(self.clock_rate),
        }


@dataclass(frozen=True)
class ScheduleConfig:
    """``[schedule]``: ``length`` steps of ``step`` seconds each, after ``warmup``
    seconds of fault-free running; ``quiescence`` seconds after the final heal
    before the liveness probe and the oracles."""

    step: float = 1.0
    length: int = 12
    quiescence: float = 2.0
    warmup: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": _dur(self.step),
            "length": self.length,
            "quiescence": _dur(self.quiescence),
            "warmup": _dur(self.warmup),
        }


@dataclass(frozen=True)
class CoverageConfig:
    """``[coverage]``: code coverage of Python nodes. ``modules``: module prefixes
    or directories to cover (``HBFUZZ_COVERAGE_MODULES``; empty: the node
    script's directory); ``enabled = false`` for black-box targets."""

    enabled: bool = True
    modules: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "modules": list(self.modules)}


def cluster_to_dict(spec: ClusterSpec) -> dict[str, Any]:
    """A ClusterSpec as its ``[cluster]`` table (what ``spec_from_dict`` reads back)."""
    r = spec.readiness
    return {
        "nodes": spec.nodes,
        "command": list(spec.command),
        "env": dict(spec.env),
        "files": dict(spec.files),
        "vars": dict(spec.vars),
        "ports_per_node": spec.ports_per_node,
        "peer_port_index": spec.peer_port_index,
        "cwd": spec.cwd,
        "stop_grace": spec.stop_grace,
        "log_cap": spec.log_cap,
        "clock": spec.clock,
        "pipe_stdio": spec.pipe_stdio,
        "name_prefix": spec.name_prefix,
        "readiness": {
            "kind": r.kind,
            "port_index": r.port_index,
            "pattern": r.pattern,
            "command": list(r.command),
            "timeout": r.timeout,
            "interval": r.interval,
        },
    }
