"""Supervisor operations on real processes with observable effects."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import pytest
from cluster_helpers import NODE, alive, ask, kill_marked, node_spec, run, wait_dead, with_marker

from fuzzer.cluster import ClusterSpec, NodeExit, Readiness, Supervisor
from fuzzer.errors import ClusterError


@pytest.fixture
def workdir(tmp_path: Path, rng) -> Path:
    """An execution dir whose path is a unique marker; leftovers are killed after the test."""
    marker = f"hbfzclu{rng.getrandbits(48):012x}"
    yield tmp_path / marker
    survivors = with_marker(marker)
    kill_marked(marker)
    assert not survivors, f"processes left behind: {survivors}"


async def next_exit(sup: Supervisor, timeout: float = 10.0) -> NodeExit:
    async with asyncio.timeout(timeout):
        return await sup.exits.get()


def test_kill_and_restart_keep_data(workdir: Path) -> None:
    async def body() -> None:
        async with Supervisor(node_spec(2), workdir) as sup:
            await sup.start_all()
            p1 = sup.ports("n1")[0]
            assert await ask(p1, "put alpha") == "ok"
            old_pid = sup.pid("n1")
            await sup.kill("n1")
            ex = await next_exit(sup)
            assert (ex.node, ex.expected, ex.signal, ex.returncode) == (
                "n1",
                True,
                signal.SIGKILL,
                None,
            )
            assert sup.state("n1") == "stopped" and sup.pid("n1") is None
            assert not alive(old_pid)
            assert await ask(p1, "ping", timeout=1.0) is None
            await sup.start("n1")
            assert await ask(p1, "get") == "alpha"
            await sup.restart(0)
            assert sup.state(0) == "running"
            assert await ask(p1, "get") == "alpha"
            assert (await next_exit(sup)).expected
            # n2 untouched throughout
            assert await ask(sup.ports("n2")[0], "ping") == "pong"

    run(body())


def test_wipe_loses_data(workdir: Path) -> None:
    async def body() -> None:
        async with Supervisor(node_spec(1), workdir) as sup:
            await sup.start_all()
            port = sup.ports("n1")[0]
            assert await ask(port, "put beta") == "ok"
            await sup.wipe("n1")
            assert sup.state("n1") == "running"
            assert await ask(port, "get") == "-"
            assert not (sup.data_dir("n1") / "data.txt").exists()
            assert await ask(port, "put gamma") == "ok"
            await sup.wipe("n1", start=False)
            assert sup.state("n1") == "stopped"
            await sup.kill("n1")  # no-op on a stopped node
            await sup.wipe("n1")  # a stopped node comes back up, empty
            assert sup.state("n1") == "running"
            assert await ask(port, "get") == "-"

    run(body())


def test_pause_blocks_answers_resume_restores(workdir: Path) -> None:
    async def body() -> None:
        async with Supervisor(node_spec(2), workdir) as sup:
            await sup.start_all()
            port = sup.ports("n2")[0]
            await sup.pause("n2")
            assert sup.state("n2") == "paused"
            reader, writer = await asyncio.open_connection("127.0.0.1", port)  # kernel accepts
            writer.write(b"ping\n")
            await writer.drain()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.5):
                    await reader.readline()
            await sup.resume("n2")
            assert sup.state("n2") == "running"
            async with asyncio.timeout(10):
                assert await reader.readline() == b"pong\n"  # the held request is answered
            writer.close()
            # killing a paused node works and is expected
            await sup.pause("n2")
            await sup.kill("n2")
            ex = await next_exit(sup)
            assert ex.expected and ex.signal == signal.SIGKILL
            assert await ask(sup.ports("n1")[0], "ping") == "pong"

    run(body())


def test_stop_is_sigterm_then_sigkill(workdir: Path) -> None:
    async def body() -> None:
        async with Supervisor(node_spec(1), workdir) as sup:
            await sup.start_all()
            await sup.stop("n1", grace=5.0)
            ex = await next_exit(sup)
            assert ex.expected and ex.signal == signal.SIGTERM
        stubborn = node_spec(1, "--ignore-term")
        async with Supervisor(stubborn, workdir.with_name(workdir.name + "b")) as sup:
            await sup.start_all()
            await sup.stop("n1", grace=0.3)
            ex = await next_exit(sup)
            assert ex.expected and ex.signal == signal.SIGKILL

    run(body())


def test_kill_reaches_grandchildren(workdir: Path) -> None:
    async def body() -> None:
        async with Supervisor(node_spec(1, "--spawn-child"), workdir) as sup:
            await sup.start_all()
            pid_file = sup.data_dir("n1") / "child.pid"
            async with asyncio.timeout(10):
                while not pid_file.exists():
                    await asyncio.sleep(0.02)
            child = int(pid_file.read_text())
            assert alive(child)
            await sup.pause("n1")
            assert open(f"/proc/{child}/stat").read().split(") ")[1][0] == "T"
            await sup.kill("n1")
            assert wait_dead([child]) == []

    run(body())


def test_kill_all_and_restart_all(workdir: Path) -> None:
    async def body() -> None:
        async with Supervisor(node_spec(3), workdir) as sup:
            await sup.start_all()
            pids = [sup.pid(n) for n in sup.names]
            await sup.restart_all()
            assert all(sup.state(n) == "running" for n in sup.names)
            assert not set(pids) & {sup.pid(n) for n in sup.names}
            assert wait_dead(pids) == []
            await sup.kill_all()
            assert all(sup.state(n) == "stopped" for n in sup.names)
            for n in sup.names:
                assert await ask(sup.ports(n)[0], "ping", timeout=1.0) is None
            exits = [sup.exits.get_nowait() for _ in range(6)]
            assert all(e.expected for e in exits)

    run(body())


def test_readiness_by_log_regex(workdir: Path) -> None:
    spec = node_spec(
        2,
        "--no-listen",
        "--ready-delay",
        "0.3",
        "--ready-line",
        "{name} READY at {port}",
        readiness=Readiness(kind="log", pattern=r"^n\d READY at \d+$", timeout=20),
    )

    async def body() -> None:
        async with Supervisor(spec, workdir) as sup:
            await sup.start_all()
            for n in sup.names:
                assert f"{n} READY at {sup.ports(n)[0]}" in sup.log_path(n).read_text()

    run(body())


def test_readiness_by_command(workdir: Path) -> None:
    check = [
        sys.executable,
        "-c",
        "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1)",
        "{port}",
    ]
    spec = node_spec(
        1, "--ready-delay", "0.5", readiness=Readiness(kind="command", command=check, timeout=20)
    )

    async def body() -> None:
        async with Supervisor(spec, workdir) as sup:
            await sup.start_all()
            assert await ask(sup.ports("n1")[0], "ping") == "pong"

    run(body())


def test_never_ready_is_a_cluster_error_with_log_tail(workdir: Path) -> None:
    spec = node_spec(1, "--no-listen", readiness=Readiness(kind="port", timeout=1.0))

    async def body() -> None:
        async with Supervisor(spec, workdir) as sup:
            with pytest.raises(ClusterError) as ei:
                await sup.start("n1")
            msg = str(ei.value)
            assert "node n1 not ready after 1s" in msg and "not accepting" in msg
            assert "n1: not listening on purpose" in msg
            assert str(sup.log_path("n1")) in msg
            assert sup.state("n1") == "stopped"
            assert (await next_exit(sup)).expected

    run(body())


def test_exit_during_start_is_a_cluster_error(workdir: Path) -> None:
    spec = node_spec(1, "--no-listen", "--exit-after", "0", "--exit-code", "3")

    async def body() -> None:
        async with Supervisor(spec, workdir) as sup:
            with pytest.raises(ClusterError, match=r"n1 exited during start \(.*exit code 3") as ei:
                await sup.start_all()
            assert "exiting with 3" in str(ei.value)

    run(body())


def test_unexpected_exit_is_reported_distinctly(workdir: Path) -> None:
    seen: list[NodeExit] = []

    async def body() -> None:
        crash = node_spec(2, "--exit-after", "0.3", "--exit-code", "7")
        async with Supervisor(crash, workdir, on_exit=seen.append) as sup:
            await sup.start_all()
            got = sorted([await next_exit(sup), await next_exit(sup)], key=lambda e: e.node)
            for ex in got:
                assert ex.expected is False and ex.returncode == 7 and ex.signal is None
                assert f"{ex.node}: exiting with 7" in ex.log_tail
                assert "unexpected" in ex.describe()
            assert [e.node for e in sorted(seen, key=lambda e: e.node)] == ["n1", "n2"]
            assert sup.state("n1") == "stopped"
        segv = node_spec(1, "--exit-after", "0.2", "--signal-self", str(int(signal.SIGSEGV)))
        async with Supervisor(segv, workdir.with_name(workdir.name + "s")) as sup:
            await sup.start_all()
            ex = await next_exit(sup)
            assert (ex.expected, ex.signal, ex.returncode) == (False, signal.SIGSEGV, None)
            assert "SIGSEGV" in ex.describe()

    run(body())


def test_missing_or_non_executable_binary(workdir: Path, tmp_path: Path) -> None:
    missing = ClusterSpec(nodes=1, command=["hbfuzz-no-such-binary-xyz", "{name}"], source="t.toml")
    plain = tmp_path / "not-exec.sh"
    plain.write_text("#!/bin/sh\nsleep 100\n")
    noexec = ClusterSpec(nodes=1, command=[str(plain)], source="t.toml")

    async def body() -> None:
        async with Supervisor(missing, workdir) as sup:
            with pytest.raises(
                ClusterError, match=r"t.toml: command\[0\]: .*hbfuzz-no-such-binary-xyz.*not found"
            ):
                await sup.start_all()
        async with Supervisor(noexec, workdir.with_name(workdir.name + "x")) as sup:
            with pytest.raises(ClusterError, match="not executable"):
                await sup.start("n1")
            with pytest.raises(ClusterError, match="unknown node 'n9'"):
                await sup.kill("n9")

    run(body())


def test_flooding_node_log_is_capped(workdir: Path) -> None:
    cap = 64 * 1024
    spec = node_spec(
        1,
        "--flood",
        str(1024 * 1024),
        readiness=Readiness(kind="log", pattern="flood done", timeout=30),
        log_cap=cap,
    )

    async def body() -> None:
        async with Supervisor(spec, workdir) as sup:
            await sup.start_all()
            log = sup.log_path("n1")
            assert log.stat().st_size <= cap
            old = log.with_name(log.name + ".1")
            assert old.exists() and old.stat().st_size <= cap
            assert "flood done" in log.read_text()

    run(body())


def test_pipe_stdio_nodes(workdir: Path) -> None:
    spec = ClusterSpec(
        nodes=2,
        command=[sys.executable, str(Path(NODE).with_name("cluster_stdio_node.py"))],
        ports_per_node=0,
        readiness=Readiness(kind="log", pattern="stdio node up", timeout=20),
        pipe_stdio=True,
    )
    started: list[str] = []

    async def body() -> None:
        async with Supervisor(spec, workdir) as sup:
            sup.add_start_listener(lambda name, proc: started.append(name))
            await sup.start_all()
            for n in sup.names:
                proc = sup.process(n)
                proc.stdin.write(b"hello\n")
                await proc.stdin.drain()
                async with asyncio.timeout(10):
                    assert await proc.stdout.readline() == f"{n}:hello\n".encode()
            await sup.restart("n1")
            assert sorted(started) == ["n1", "n1", "n2"]
            async with asyncio.timeout(10):
                while "echoed hello" not in sup.log_path("n2").read_text():
                    await asyncio.sleep(0.02)

    run(body())


def test_clock_offset_env_for_python_nodes(workdir: Path) -> None:
    async def body() -> None:
        async with Supervisor(node_spec(2), workdir) as sup:
            await sup.start_all()
            assert await ask(sup.ports("n1")[0], "clock") == "/"
            await sup.set_clock("n1", 5.5, 2.0)
            assert await ask(sup.ports("n1")[0], "clock") == "5.5/2.0"
            assert await ask(sup.ports("n2")[0], "clock") == "/"
            with pytest.raises(ClusterError, match="rate"):
                await sup.set_clock("n2", 1.0, 0.0)

    run(body())


def _have_faketime() -> bool:
    from fuzzer.cluster.clock import find_libfaketime

    if find_libfaketime():
        return True
    if os.geteuid() == 0 and os.path.exists("/usr/bin/apt-get"):
        import subprocess

        try:
            subprocess.run(
                ["apt-get", "install", "-y", "-q", "faketime"], capture_output=True, timeout=120
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
    return find_libfaketime() is not None


def test_clock_offset_faketime_for_native_nodes(workdir: Path) -> None:
    if not _have_faketime():
        pytest.skip("libfaketime not installed and apt-get install faketime failed")
    spec = ClusterSpec(
        nodes=1,
        command=["sh", "-c", "date +%s > {data_dir}/now; echo up; exec sleep 60"],
        ports_per_node=0,
        readiness=Readiness(kind="log", pattern="^up$", timeout=20),
        clock="faketime",
    )

    async def body() -> None:
        async with Supervisor(spec, workdir) as sup:
            await sup.start_all()
            real = int((sup.data_dir("n1") / "now").read_text())
            await sup.set_clock("n1", 86400.0)
            skewed = int((sup.data_dir("n1") / "now").read_text())
            assert skewed - real >= 86400 - 60

    run(body())


def test_close_is_idempotent_and_refuses_later_ops(workdir: Path) -> None:
    async def body() -> None:
        sup = Supervisor(node_spec(2), workdir)
        await sup.start_all()
        pids = [sup.pid(n) for n in sup.names]
        watchdog = sup.watchdog_pid
        await sup.close()
        await sup.close()
        assert wait_dead([*pids, watchdog]) == []
        with pytest.raises(ClusterError, match="closed"):
            await sup.start("n1")

    run(body())


def test_port_in_use_is_a_clear_error(workdir: Path) -> None:
    async def body() -> None:
        async with Supervisor(node_spec(2), workdir) as sup:
            squatter = socket.socket()
            squatter.bind(("127.0.0.1", sup.ports("n2")[0]))
            squatter.listen()
            try:
                with pytest.raises(
                    ClusterError, match=rf"n2: port 127.0.0.1:{sup.ports('n2')[0]} .*already in use"
                ):
                    await sup.start("n2")
                assert sup.state("n2") == "stopped"
            finally:
                squatter.close()
            await sup.start("n2")
            assert await ask(sup.ports("n2")[0], "ping") == "pong"

    run(body())


def test_garbage_output_is_logged_not_fatal(workdir: Path) -> None:
    spec = ClusterSpec(
        nodes=1,
        command=["sh", "-c", "printf '\\377\\376\\000garbage\\n'; echo up; sleep 0.3; exit 4"],
        ports_per_node=0,
        readiness=Readiness(kind="log", pattern="^up$", timeout=20),
    )

    async def body() -> None:
        async with Supervisor(spec, workdir) as sup:
            await sup.start_all()
            ex = await next_exit(sup)
            assert ex.returncode == 4 and not ex.expected
            assert "garbage" in ex.log_tail and "\ufffd" in ex.log_tail
            assert b"\xff\xfe\x00garbage" in sup.log_path("n1").read_bytes()

    run(body())


def test_close_during_start_leaves_nothing(workdir: Path) -> None:
    spec = node_spec(
        2, "--no-listen", "--spawn-child", readiness=Readiness(kind="port", timeout=30)
    )

    async def body() -> None:
        sup = Supervisor(spec, workdir)
        starting = asyncio.create_task(sup.start_all())
        async with asyncio.timeout(10):
            while not all(sup.pid(n) for n in sup.names):
                await asyncio.sleep(0.01)
        pids = [sup.pid(n) for n in sup.names]
        await sup.close()
        with pytest.raises(ClusterError, match="closed"):
            await starting
        assert wait_dead(pids) == []

    run(body())


def test_failed_start_all_leaves_no_half_started_nodes(workdir: Path) -> None:
    # n1 exits at once (error), n2 never gets ready: start_all fails fast and
    # the cancelled start of n2 does not leave it running.
    spec = node_spec(
        2,
        "--no-listen",
        "--exit-after",
        "{index}0",
        "--exit-code",
        "9",
        readiness=Readiness(kind="port", timeout=30),
    )

    async def body() -> None:
        async with Supervisor(spec, workdir) as sup:
            with pytest.raises(ClusterError, match="n1 exited during start"):
                await sup.start_all()
            async with asyncio.timeout(10):
                while sup.state("n2") != "stopped":
                    await asyncio.sleep(0.01)

    run(body())
