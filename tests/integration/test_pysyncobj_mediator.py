"""PySyncObj behind the real TCP mediator with the ``pysyncobj`` codec: every Raft
message is framed and decided on by the network model; a lossy network, a
leader partition and a heal leave one consistent, live cluster."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fuzzer.network.model import LinkRule, NetworkModel
from fuzzer.network.tcp import TcpMediator

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # targets/ is not an installed package
    sys.path.insert(0, str(ROOT))

from targets.pysyncobj import codec, envs  # noqa: E402
from targets.pysyncobj.client import NodeClient, find_leader  # noqa: E402

pytestmark = pytest.mark.timeout(180)
NODE = str(ROOT / "targets" / "pysyncobj" / "node.py")
NAMES = ["n1", "n2", "n3"]


async def leader_among(ports, exclude=None, timeout=30.0) -> str:
    async with asyncio.timeout(timeout):
        while True:
            leader = await find_leader(ports, timeout=2.0)
            if leader is not None and leader != exclude:
                return leader
            await asyncio.sleep(0.2)


def test_cluster_behind_mediator_survives_loss_and_partition(procs, ports, tmp_path, seed):
    python = str(envs.ensure(envs.DEFAULT_VERSION).python)
    codec.register()
    pp = ports(6)
    raft = dict(zip(NAMES, pp[:3], strict=True))
    client = dict(zip(NAMES, pp[3:], strict=True))
    model = NetworkModel(NAMES, seed=seed)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HBFUZZ_")}
    proc: dict[str, subprocess.Popen] = {}

    def logs() -> str:
        return "\n".join((tmp_path / f"{n}.log").read_text(errors="replace")[-2000:]
                         for n in NAMES)

    async def scenario():
        nodes = {n: ("127.0.0.1", raft[n]) for n in NAMES}
        async with TcpMediator(model, nodes, codec="pysyncobj") as med:
            for n in NAMES:
                peers = ",".join(f"{o}=127.0.0.1:{med.proxy_port(n, o)}" for o in NAMES if o != n)
                with open(tmp_path / f"{n}.log", "wb") as log:
                    proc[n] = procs(
                        [python, NODE, "--name", n, "--raft", f"127.0.0.1:{raft[n]}",
                         "--client-port", str(client[n]), "--data-dir", str(tmp_path / n),
                         "--peers", peers, "--reconnect", "0.3"],
                        env=env, stdout=log, stderr=log,
                    )
            out = {}
            leader = await leader_among(client.values())
            async with NodeClient(client[leader], timeout=5) as c:
                out["first"] = await c.put("x", 0)
            # a lossy, duplicating, reordering network: outcomes may be info, never wrong
            for a in NAMES:
                for b in NAMES:
                    if a != b:
                        model.set_rule(a, b, LinkRule(drop=0.1, duplicate=0.2, reorder=0.2,
                                                      delay=0.005, jitter=0.005))
            lossy = []
            for i in range(1, 9):
                async with NodeClient(client[NAMES[i % 3]], timeout=3) as c:
                    lossy.append((i, await c.put("x", i)))
            for a in NAMES:
                for b in NAMES:
                    if a != b:
                        model.set_rule(a, b, LinkRule())
            # isolate the leader: the majority elects another one and commits without it
            old = await leader_among(client.values())
            rest = [n for n in NAMES if n != old]
            model.partition([{old}, set(rest)])
            new = await leader_among([client[n] for n in rest], exclude=old)
            async with NodeClient(client[new], timeout=5) as c:
                out["majority"] = await c.put("y", "majority")
            async with NodeClient(client[old], timeout=1.0) as c:
                out["minority"] = await c.put("y", "minority")
            model.heal()
            # after the heal every node converges on the majority's value
            async with asyncio.timeout(30):
                while True:
                    finals = []
                    for n in NAMES:
                        async with NodeClient(client[n], timeout=2) as c:
                            finals.append((await c.get("y", local=True)).value)
                    if finals == ["majority"] * 3:
                        break
                    await asyncio.sleep(0.2)
            async with NodeClient(client[new], timeout=5) as c:
                out["after"] = await c.get("x")
            out["lossy"], out["old"], out["new"] = lossy, old, new
            out["stats"] = {link: s.as_dict() for link, s in med.stats.items()}
            for p in proc.values():
                p.send_signal(signal.SIGTERM)
            return out

    out = asyncio.run(asyncio.wait_for(scenario(), 150))
    assert out["first"].ok, logs()
    assert out["majority"].ok and out["new"] != out["old"]
    assert out["minority"].type == "info", out["minority"]
    # sequential writes x=1..8: the final x is the last ok write, or an indeterminate
    # (info) write that took effect after it; an ok write is never lost
    oks = [i for i, r in out["lossy"] if r.ok]
    infos = [i for i, r in out["lossy"] if r.type == "info"]
    final = out["after"]
    assert final.ok, final
    assert final.value in {max(oks, default=0), *infos}, (final, out["lossy"])
    for r in (r for _, r in out["lossy"]):
        assert r.type in ("ok", "info"), r
    stats = out["stats"]
    assert all(s["codec_errors"] == 0 for s in stats.values()), stats
    assert sum(s["messages"] for s in stats.values()) > 50
    assert sum(s["dropped"] for s in stats.values()) > 0
