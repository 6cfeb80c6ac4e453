"""How an execution's cluster is run, per network adapter: stdio or tcp.

Why a backend object: the execution's sequence (start, steps, heal, probe,
oracles, teardown) is the same for every target, but *who runs the nodes*
differs. ``stdio``: the :class:`~fuzzer.network.stdio.StdioMediator` runs
the Maelstrom nodes itself and is their whole network. ``tcp``: the
:class:`~fuzzer.cluster.supervisor.Supervisor` runs the nodes, a
:class:`~fuzzer.network.tcp.TcpMediator` proxies every directed link and the
nodes' peer placeholders point at its proxy ports (``routing = "proxy"``),
or, for systems that advertise one peer address per member (etcd,
``routing = "front"``), a :class:`~fuzzer.network.demux.PeerDemux` front
per destination splices each connection onto the right proxy. Each backend
gives the nemesis a :class:`~fuzzer.nemesis.ProcessControl`, the execution
a :class:`~fuzzer.execution.loads.Load`, a role probe and the unexpected
node exits, and ``close()`` leaves no process behind.

SEND/RECV events: the mediator reports every message it carries, so
black-box nodes get an HB graph. Nodes that report their own messages
(``mediator_events=False``, the default for tcp targets with code
coverage, e.g. PySyncObj's hooks) would otherwise appear twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fuzzer.cluster.spec import render_node
from fuzzer.cluster.supervisor import Supervisor
from fuzzer.config import TargetConfig
from fuzzer.errors import ClusterError, ConfigError
from fuzzer.execution.adapters import (
    RoleProbe,
    client_port_index,
    make_client_factory,
    make_role_probe,
)
from fuzzer.execution.kvload import KvWorkload
from fuzzer.execution.loads import KvLoad, Load, MaelstromLoad, maelstrom_config
from fuzzer.network.demux import PeerDemux
from fuzzer.network.events import Sink
from fuzzer.network.model import NetworkModel
from fuzzer.network.ordering import DeliveryOrder
from fuzzer.network.stdio import StdioMediator
from fuzzer.network.tcp import TcpMediator
from fuzzer.workload import maelstrom as mw
from fuzzer.workload.maelstrom import GeneratedOp
from instrumentation.protocol import ENV_NODE

__all__ = ["Backend", "StdioBackend", "TcpBackend", "make_backend", "ExitRecord"]

HOST = "127.0.0.1"
EXIT_DRAIN = 0.1  # seconds a restarted node's old events get to arrive before its EXIT


@dataclasses.dataclass(frozen=True)
class ExitRecord:
    """A node exit the fuzzer did not cause (a crash candidate)."""

    node: str
    code: int | None


class Backend:
    """Common shape of the two backends (see module docstring)."""

    nodes: list[str]
    process: Any
    role_probe: RoleProbe | None = None
    # called when a node that exited (for any reason) starts again: (node, exit code)
    on_node_exit: Callable[[str, int | None], None] | None = None

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def unexpected_exits(self) -> list[ExitRecord]: ...
    def message_counts(self) -> tuple[int, int]: ...
    def make_load(self, seed: int, choices: Mapping[tuple[int, int], GeneratedOp]) -> Load: ...


# --------------------------------------------------------------------------- stdio


class _StdioControl:
    """The nemesis' ProcessControl over a StdioMediator (0-based indices -> names).

    Maelstrom nodes keep no state on disk, so ``wipe`` is a restart; clock
    skew needs a restart under new environment variables, which one shared
    stdio environment cannot give a single node, so it is refused."""

    def __init__(self, med: StdioMediator, names: list[str]) -> None:
        self.med = med
        self.names = names

    async def kill(self, n: int) -> None:
        await self.med.kill_node(self.names[n])

    async def stop(self, n: int) -> None:
        await self.med.stop_node(self.names[n])

    async def start(self, n: int) -> None:
        await self.med.start_node(self.names[n])

    async def pause(self, n: int) -> None:
        await self.med.pause_node(self.names[n])

    async def resume(self, n: int) -> None:
        await self.med.resume_node(self.names[n])

    async def restart(self, n: int) -> None:
        await self.med.restart_node(self.names[n])

    async def wipe(self, n: int) -> None:
        name = self.names[n]
        if self.med.running(name):
            await self.med.restart_node(name)

    async def kill_all(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for name in self.names:
                tg.create_task(self.med.kill_node(name))

    async def restart_all(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for name in self.names:
                tg.create_task(self.med.restart_node(name))

    async def set_clock(self, n: int, offset: float, rate: float = 1.0) -> None:
        raise ClusterError("clock-skew is not supported for stdio (Maelstrom) nodes")


def _with_node_flag(argv: tuple[str, ...], name: str) -> list[str]:
    """Tell ``python -m instrumentation`` the node's name (the stdio env is shared)."""
    out = list(argv)
    for i in range(len(out) - 1):
        if out[i] == "-m" and out[i + 1] == "instrumentation":
            out[i + 2 : i + 2] = ["--node", name]
            break
    return out


class StdioBackend(Backend):
    def __init__(self, cfg: TargetConfig, workdir: Path, model: NetworkModel,
                 sink: Sink | None, env: Mapping[str, str],
                 order: DeliveryOrder | None = None) -> None:
        spec = cfg.cluster
        self.cfg = cfg
        self.nodes = spec.names()
        argv: dict[str, list[str]] = {}
        node_env: dict[str, str] = dict(os.environ)
        node_env.pop(ENV_NODE, None)
        node_env.update(env)
        for i, name in enumerate(self.nodes):
            ns = render_node(spec, i, [()] * spec.nodes, workdir)
            argv[name] = _with_node_flag(ns.argv, name)
            if i == 0:
                node_env.update(dict(ns.env))
        if cfg.coverage.modules:
            node_env["HBFUZZ_COVERAGE_MODULES"] = ",".join(cfg.coverage.modules)
        self.med = StdioMediator(argv, model, workdir / "nodes", sink=sink, env=node_env,
                                 stop_grace=spec.stop_grace, order=order,
                                 **cfg.network.stdio_kwargs())
        self.process = _StdioControl(self.med, self.nodes)

    async def start(self) -> None:
        await self.med.start()

    async def close(self) -> None:
        await self.med.close()

    def unexpected_exits(self) -> list[ExitRecord]:
        return [ExitRecord(e.node, e.code) for e in self.med.exits if not e.expected]

    def message_counts(self) -> tuple[int, int]:
        msgs = sum(s.messages for s in self.med.stats.values())
        delivered = sum(s.delivered for s in self.med.stats.values())
        return msgs, delivered

    def make_load(self, seed: int, choices: Mapping[tuple[int, int], GeneratedOp]) -> Load:
        w = self.cfg.workload
        if w.kind != "maelstrom":
            raise ConfigError(
                f"{self.cfg.source}: workload.kind: a stdio target needs kind = \"maelstrom\", "
                f"got {w.kind!r}"
            )
        mix = w.mix_dict()
        wcfg = mw.WorkloadConfig(clients=w.clients, rate=w.rate, timeout=w.timeout, keys=w.keys,
                                 mix=mix, **maelstrom_config(w.params_dict()))
        wl = mw.make_workload(w.name, self.med.client_request, self.nodes, random.Random(seed),
                              wcfg, choices=choices)
        o = self.cfg.oracles
        final_timeout = max(1.0, min(wcfg.final_timeout, o.liveness.bound))
        return MaelstromLoad(wl, o.checker, o.checker_timeout, final_timeout)


# --------------------------------------------------------------------------- tcp


class TcpBackend(Backend):
    def __init__(self, cfg: TargetConfig, workdir: Path, model: NetworkModel,
                 sink: Sink | None, env: Mapping[str, str],
                 order: DeliveryOrder | None = None) -> None:
        spec = cfg.cluster
        self.cfg = cfg
        self.nodes = spec.names()
        self.routing = cfg.network.routing
        self.sup: Supervisor | None = None
        self.demux: PeerDemux | None = None
        self.workdir = workdir
        self.env = dict(env)
        self.model = model
        self.sink = sink
        self.order = order
        self.med: TcpMediator | None = None
        self._exits: list[ExitRecord] = []
        self._ended: dict[str, int | None] = {}  # exited, not started again: node -> code
        self._client_i = client_port_index(spec)

    def _on_exit(self, ex: Any) -> None:
        code = ex.returncode if ex.returncode is not None else -(ex.signal or 0)
        if not ex.expected:
            self._exits.append(ExitRecord(ex.node, code))
        self._ended[ex.node] = code

    async def _on_start(self, node: str, _proc: Any) -> None:
        """A node starts again: report its previous incarnation's end now, after a short
        pause, so that the dead process's last event batches (in flight in gRPC when it
        died) reach the timeline before the EXIT event, not after it."""
        if node not in self._ended:
            return
        code = self._ended.pop(node)
        await asyncio.sleep(EXIT_DRAIN)
        if self.on_node_exit is not None:
            self.on_node_exit(node, code)

    async def start(self) -> None:
        cfg = self.cfg
        spec = cfg.cluster
        if spec.ports_per_node <= spec.peer_port_index:
            raise ConfigError(
                f"{cfg.source}: cluster.peer_port_index: a tcp target needs a peer port "
                f"(ports_per_node = {spec.ports_per_node})"
            )
        if self.routing == "front":
            self.demux = PeerDemux(self.nodes, self._route, self._owners)
            await self.demux.start()
            fronts = ",".join(f"{n}={p}" for n, p in zip(self.nodes, self.demux.fronts(),
                                                         strict=True))
            spec = dataclasses.replace(spec, vars=(*[(k, v) for k, v in spec.vars
                                                     if k != "fronts"], ("fronts", fronts)))
        self.sup = Supervisor(spec, self.workdir, env=self.env, on_exit=self._on_exit)
        self.sup.add_start_listener(self._on_start)
        peers = {n: (HOST, self.sup.ports(n)[spec.peer_port_index]) for n in self.nodes}
        self._peer = peers
        codec: Callable[[], Any] | None = None
        if cfg.network.codec != "raw":
            codec = cfg.make_codec
        self.med = TcpMediator(self.model, peers, codec=codec, sink=self.sink, order=self.order,
                               in_order=cfg.network.in_order)
        await self.med.start()
        if self.routing != "front":
            for a in self.nodes:
                for b in self.nodes:
                    if a != b:
                        self.sup.peer_address[(a, b)] = (HOST, self.med.proxy_port(a, b))
        self.process = self.sup
        ports = {n: self.sup.ports(n)[self._client_i] for n in self.nodes}
        self.client_ports = ports
        fn = cfg.role_probe_function()
        if fn is not None:
            self.role_probe = make_role_probe(fn, self.nodes, ports, cfg.roles.timeout)
        await self.sup.start_all()

    def _owners(self) -> dict[str, int]:
        sup = self.sup
        if sup is None:
            return {}
        return {n: pid for n in self.nodes if (pid := sup.pid(n)) is not None}

    def _route(self, src: str | None, dst: str) -> tuple[str, int]:
        if src is None or self.med is None:
            return self._peer[dst]
        return HOST, self.med.proxy_port(src, dst)

    async def close(self) -> None:
        try:
            if self.sup is not None:
                await self.sup.close()
        finally:
            try:
                if self.med is not None:
                    await self.med.close()
            finally:
                if self.demux is not None:
                    await self.demux.close()

    def unexpected_exits(self) -> list[ExitRecord]:
        return list(self._exits)

    def message_counts(self) -> tuple[int, int]:
        if self.med is None:
            return 0, 0
        msgs = sum(s.messages for s in self.med.stats.values())
        delivered = sum(s.delivered for s in self.med.stats.values())
        return msgs, delivered

    def log_paths(self) -> dict[str, Path]:
        assert self.sup is not None
        return {n: self.sup.log_path(n) for n in self.nodes}

    def make_load(self, seed: int, choices: Mapping[tuple[int, int], GeneratedOp]) -> Load:
        w = self.cfg.workload
        factory = self.cfg.workload_client()
        if w.kind != "kv" or factory is None:
            raise ConfigError(
                f"{self.cfg.source}: workload: a tcp target needs kind = \"kv\" and a client "
                f"(workload.client), got kind {w.kind!r}"
            )
        params = w.params_dict()
        client_for = make_client_factory(factory, self.client_ports, w.timeout, params)
        wl = KvWorkload(client_for, self.nodes, seed, clients=w.clients, rate=w.rate,
                        keys=w.keys, values=int(params.get("values", 5)), mix=w.mix_dict(),
                        choices=choices)
        return KvLoad(wl, self.cfg.oracles.model, self.cfg.oracles.checker_timeout)


def make_backend(cfg: TargetConfig, workdir: Path, model: NetworkModel, sink: Sink | None,
                 env: Mapping[str, str], order: DeliveryOrder | None = None) -> Backend:
    """``order``: the mediator logs its delivery order there and enforces the
    recorded one (stdio; tcp with a codec only)."""
    if cfg.network.adapter == "stdio":
        return StdioBackend(cfg, workdir, model, sink, env, order)
    if cfg.network.adapter == "tcp":
        return TcpBackend(cfg, workdir, model, sink, env, order)
    raise ConfigError(f"{cfg.source}: network.adapter: unknown adapter {cfg.network.adapter!r}")
