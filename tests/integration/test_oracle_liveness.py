"""The liveness oracle against real loopback TCP servers: one that answers,
one that never answers, one that recovers, none at all, and a real server
process paused with SIGSTOP (a hang) then resumed (served again).

Every check runs under an outer ``asyncio.timeout`` so a broken oracle fails
the test instead of hanging it; no test asserts how fast anything is.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import textwrap

import pytest

from fuzzer.checkers.liveness import (
    Attempt,
    LivenessPolicy,
    check_liveness,
    tcp_line_probe,
)
from fuzzer.errors import ConfigError

HOST = "127.0.0.1"
OUTER = 60.0  # a safety net for the test, far above any bound used here
FAST = LivenessPolicy(bound=1.0, attempt_timeout=0.3, interval=0.05)  # for hangs
GENEROUS = LivenessPolicy(bound=30.0, attempt_timeout=10.0)  # for success on a loaded machine


async def bounded(coro):
    async with asyncio.timeout(OUTER):
        return await coro


class LineServer:
    """An asyncio TCP server: answers ``ok`` to each line once ``answer_from``
    connections have been seen (before that, it reads and stays silent)."""

    def __init__(self, answer_from: int = 0) -> None:
        self.answer_from = answer_from
        self.connections = 0
        self.closed = 0
        self.connected = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        n = self.connections
        self.connections += 1
        self.connected.set()
        try:
            while line := await reader.readline():
                if n >= self.answer_from:
                    writer.write(b"ok " + line)
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            self.closed += 1
            writer.close()


async def serve(port: int, answer_from: int = 0):
    srv = LineServer(answer_from)
    server = await asyncio.start_server(srv.handle, HOST, port)
    return srv, server


def run(coro):
    return asyncio.run(bounded(coro))


def test_answering_server_is_live(ports):
    (port,) = ports(1)

    async def main():
        srv, server = await serve(port)
        async with server:
            probe = tcp_line_probe(HOST, port, b"ping\n", b"ok ping")
            return await check_liveness(probe, GENEROUS, probe_name="ping"), srv

    v, srv = run(main())
    assert v.ok and v.kind == "liveness" and v.signature == ("liveness", "hang")
    assert v.details["attempts"] == 1 and v.details["probe"] == "ping"
    assert srv.connections == 1


def test_silent_server_is_a_hang_within_the_bound(ports):
    (port,) = ports(1)

    async def main():
        srv, server = await serve(port, answer_from=10**9)
        async with server:
            return await check_liveness(tcp_line_probe(HOST, port, b"ping\n"), FAST), srv

    v, srv = run(main())
    assert v.violated and v.name == "hang" and v.kind == "liveness"
    assert v.details["outcomes"] == {"timeout": v.details["attempts"]}
    assert v.details["attempts"] >= 1 and srv.connections == v.details["attempts"]
    assert all(isinstance(a, Attempt) and a.outcome == "timeout" for a in v.offending)
    assert "not served within 1.0 s" in v.explanation
    v.to_dict()


def test_server_that_recovers_is_live_after_retries(ports):
    (port,) = ports(1)
    policy = LivenessPolicy(bound=20.0, attempt_timeout=0.3, interval=0.01)

    async def main():
        srv, server = await serve(port, answer_from=2)
        async with server:
            return await check_liveness(tcp_line_probe(HOST, port, b"x\n", b"ok x"), policy)

    v = run(main())
    # the first two connections are ignored; a noisy machine may time out a third
    assert v.ok and v.details["outcomes"]["ok"] == 1 and v.details["outcomes"]["timeout"] >= 2


def test_nothing_listening_is_a_hang_with_the_error(ports):
    (port,) = ports(1)
    v = run(check_liveness(tcp_line_probe(HOST, port, b"x\n"), FAST))
    assert v.violated and "ConnectionRefusedError" in v.details["last_error"]
    assert set(v.details["outcomes"]) == {"error"}


def test_wrong_answers_are_refused_and_attempts_are_capped(ports):
    (port,) = ports(1)
    policy = LivenessPolicy(bound=30.0, attempt_timeout=1.0, interval=0.0, max_attempts=4)

    async def main():
        _srv, server = await serve(port)
        async with server:
            return await check_liveness(tcp_line_probe(HOST, port, b"x\n", b"nope"), policy)

    v = run(main())
    assert v.violated and v.details["attempts"] == 4 and v.details["outcomes"] == {"refused": 4}


def test_cancelling_the_check_cancels_the_probe_and_closes_its_connection(ports):
    (port,) = ports(1)

    async def main():
        srv, server = await serve(port, answer_from=10**9)
        async with server:
            policy = LivenessPolicy(bound=OUTER, attempt_timeout=OUTER / 2)
            task = asyncio.create_task(check_liveness(tcp_line_probe(HOST, port, b"x\n"), policy))
            await srv.connected.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            while srv.closed < 1:  # the probe's connection is closed (bounded by OUTER)
                await asyncio.sleep(0.01)
            return srv

    srv = run(main())
    assert srv.connections == 1 and srv.closed == 1


SERVER = textwrap.dedent(
    """
    import socket, sys
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(16)
    print("ready", flush=True)
    while True:
        c, _ = s.accept()
        try:
            with c, c.makefile("rb") as f:
                for line in f:
                    c.sendall(b"ok " + line)
        except OSError:  # a probe that gave up while we were paused
            pass
    """
)


def test_paused_server_process_hangs_then_serves_after_resume(ports, procs, python):
    (port,) = ports(1)
    p = procs([python, "-c", SERVER, str(port)], stdout=subprocess.PIPE)
    with p.stdout:
        assert p.stdout.readline() == b"ready\n"
    probe = tcp_line_probe(HOST, port, b"ping\n", b"ok ping")
    assert run(check_liveness(probe, GENEROUS)).ok

    os.killpg(p.pid, signal.SIGSTOP)
    try:
        v = run(check_liveness(probe, FAST))
    finally:
        os.killpg(p.pid, signal.SIGCONT)
    assert v.violated and v.name == "hang"
    assert "timeout" in v.details["outcomes"]

    v = run(check_liveness(probe, GENEROUS))
    assert v.ok


def test_policy_from_config():
    pol = LivenessPolicy.from_config({"bound": 5, "interval": 0.5}, source="t.toml")
    assert pol == LivenessPolicy(bound=5, attempt_timeout=2.0, interval=0.5)
    with pytest.raises(ConfigError, match=r"t.toml: liveness.bounds: unknown key"):
        LivenessPolicy.from_config({"bounds": 5}, source="t.toml")
    with pytest.raises(ConfigError, match="liveness.bound: must be a number"):
        LivenessPolicy.from_config({"bound": "5"}, source="t.toml")
    with pytest.raises(ConfigError, match="bound must be > 0"):
        LivenessPolicy.from_config({"bound": 0}, source="t.toml")
