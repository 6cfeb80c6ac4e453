"""Behaviour behind the execution-overhead cuts (scripts/bench/execution.py).

- The PySyncObj role probe (``find_leader``) answers from the nodes that
  reply: a node that accepts the connection but never answers (a paused
  process) no longer hides the leader; an early answer is never a stale
  leader (a majority answered and no one reported a higher term).
- An execution's warmup ends once the role probe names a leader and its
  quiescence once the liveness probe succeeds: with both set to a minute the
  execution still ends well before (and the verdicts are unchanged).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from fuzzer.config import load_config
from fuzzer.execution import Execution
from fuzzer.execution.leftovers import leftover_processes
from fuzzer.faults import Schedule, Step, parse_fault

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # targets/ is not an installed package
    sys.path.insert(0, str(ROOT))

from targets.pysyncobj import envs  # noqa: E402
from targets.pysyncobj.client import find_leader  # noqa: E402

pytestmark = pytest.mark.timeout(180)
TARGET = ROOT / "targets" / "pysyncobj" / "target.toml"


async def _status_servers(specs: list[tuple[str, str | None, int, float]]):
    """One fake node per spec (name, role or None = never answers, term, reply delay)."""

    def handler(name: str, role: str | None, term: int, delay: float):
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                line = await reader.readline()
                if role is None or not line:
                    await reader.read()  # accepted, never answered: a paused node
                    return
                await asyncio.sleep(delay)
                req = json.loads(line)
                value = {"node": name, "role": role, "term": term}
                writer.write(json.dumps({"id": req["id"], "type": "ok",
                                         "value": value}).encode() + b"\n")
                await writer.drain()
                await reader.read()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        return handle

    servers = [await asyncio.start_server(handler(*s), "127.0.0.1", 0) for s in specs]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    return servers, ports


async def _probe(specs, timeout: float = 0.5):
    servers, ports = await _status_servers(specs)
    try:
        async with asyncio.timeout(10):
            return await find_leader(ports, timeout=timeout)
    finally:
        for s in servers:
            s.close()
        for s in servers:
            await s.wait_closed()


def test_find_leader_ignores_a_silent_node(rng):
    specs = [("n1", "follower", 3, 0.0), ("n2", "leader", 3, 0.0), ("n3", None, 0, 0.0)]
    rng.shuffle(specs)
    assert asyncio.run(_probe(specs)) == "n2"


def test_find_leader_prefers_the_highest_term_also_when_it_answers_last(rng):
    # n1 (stale leader, term 2) and n2 (follower, term 3) answer first: a majority,
    # but a term above the leader's, so the probe waits for n3 (leader of term 3)
    specs = [("n1", "leader", 2, 0.0), ("n2", "follower", 3, 0.0), ("n3", "leader", 3, 0.2)]
    rng.shuffle(specs)
    assert asyncio.run(_probe(specs, timeout=2.0)) == "n3"


def test_find_leader_none_without_a_leader():
    specs = [("n1", "candidate", 4, 0.0), ("n2", None, 0, 0.0), ("n3", "follower", 3, 0.0)]
    assert asyncio.run(_probe(specs)) is None


def test_warmup_and_quiescence_end_when_the_cluster_is_ready(tmp_path, seed):
    envs.ensure(envs.DEFAULT_VERSION)
    cfg = load_config(TARGET, ["schedule.warmup=60s", "schedule.quiescence=60s"])
    sched = Schedule(tuple(Step(parse_fault(s), 0.75) for s in ("kill leader", "start n1")),
                     seed)

    async def run():
        async with asyncio.timeout(50):  # far below warmup + quiescence
            return await Execution(cfg, tmp_path / "x", seed).run(sched)

    res = asyncio.run(run())
    assert not leftover_processes(res.execution_id)
    assert res.findings == (), [f.verdict.line() for f in res.findings]
    hang = [v for v in res.verdicts if v.name == "hang"]
    assert hang and hang[0].ok
    # the warmup found a leader: the first step's role was resolved to a node
    assert res.schedule.steps[0].fault.to_text().startswith("kill n")
    assert len(res.windows) == 2 and res.stats.ops_ok > 0
