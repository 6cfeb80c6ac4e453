"""Network exposure: nothing the fuzzer starts listens beyond loopback (issue 8).

The check is from the kernel's point of view, not from our own bookkeeping:
the inodes of every socket held open by this process and its descendants
(``/proc/<pid>/fd`` links ``socket:[inode]``) are looked up in
``/proc/net/tcp`` and ``/proc/net/tcp6``; every one in state LISTEN must be
bound to 127.0.0.0/8 or ::1. The real tracker server, a TcpMediator with its
proxies in front of a Supervisor cluster, a StdioMediator, and a short real
campaign (``python -m fuzzer run``) are each up while we look. A control
socket bound to 0.0.0.0 proves the scan can see a violation.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from cluster_helpers import kill_marked, node_spec, with_marker

from fuzzer.cluster import Supervisor
from fuzzer.network.model import NetworkModel
from fuzzer.network.stdio import StdioMediator
from fuzzer.network.tcp import TcpMediator
from fuzzer.tracker.server import TrackerServer

ROOT = Path(__file__).resolve().parents[2]
NODES = Path(__file__).parent / "nodes"
LISTEN = "0A"


# --------------------------------------------------------------------------- /proc scan


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        ppid = int(data[data.rfind(b")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(root: int) -> set[int]:
    """``root`` and all its live descendants."""
    kids, out, todo = _children(), set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in out:
            out.add(pid)
            todo.extend(kids.get(pid, ()))
    return out


def socket_inodes(pids: set[int]) -> dict[int, int]:
    """inode -> pid for every socket the processes hold open."""
    out: dict[int, int] = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                out[int(link[8:-1])] = pid
    return out


def _addr(hexaddr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    raw = bytes.fromhex(hexaddr)
    # the kernel prints each 32-bit word in host (little-endian) order
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(words)


def listening_sockets() -> dict[int, tuple[str, int]]:
    """inode -> (address, port) of every TCP socket in LISTEN state (v4 and v6)."""
    out = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10 or cols[3] != LISTEN:
                continue
            host, port = cols[1].split(":")
            out[int(cols[9])] = (str(_addr(host)), int(port, 16))
    return out


def is_loopback(addr: str) -> bool:
    ip = ipaddress.ip_address(addr)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def our_listeners(root: int | None = None) -> dict[tuple[str, int], int]:
    """(address, port) -> pid for every listening socket of ``root``'s process tree."""
    mine = socket_inodes(process_tree(root or os.getpid()))
    return {a: mine[ino] for ino, a in listening_sockets().items() if ino in mine}


def exposed(listeners: dict[tuple[str, int], int]) -> list[str]:
    return [f"{a}:{p} (pid {pid})" for (a, p), pid in sorted(listeners.items())
            if not is_loopback(a)]


# --------------------------------------------------------------------------- tests


def test_scan_sees_a_socket_bound_to_all_interfaces():
    """The control: a 0.0.0.0 listener of ours is found and flagged."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        found = our_listeners()
        assert ("0.0.0.0", port) in found
        assert any(f"0.0.0.0:{port}" in x for x in exposed(found))
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert ("::1", port) in our_listeners() and not exposed(our_listeners())


@pytest.fixture
def workdir(tmp_path: Path, rng) -> Path:
    marker = f"hbfzlo{rng.getrandbits(48):012x}"
    yield tmp_path / marker
    survivors = with_marker(marker)
    kill_marked(marker)
    assert not survivors, f"processes left behind: {survivors}"


def test_tracker_mediators_and_cluster_listen_on_loopback_only(workdir, tmp_path, python, seed):
    async def main() -> dict[tuple[str, int], int]:
        with TrackerServer() as tracker:
            tracker_port = int(tracker.address.rsplit(":", 1)[1])
            async with Supervisor(node_spec(2), workdir) as sup:
                await sup.start_all()
                addrs = {n: ("127.0.0.1", sup.ports(n)[0]) for n in ("n1", "n2")}
                async with TcpMediator(NetworkModel(list(addrs), seed), addrs) as tcp:
                    proxies = {tcp.proxy_port(a, b) for a in addrs for b in addrs if a != b}
                    stdio_nodes = {f"s{i}": [python, str(NODES / "net_echo.py")]
                                   for i in (1, 2)}
                    model = NetworkModel(list(stdio_nodes), seed)
                    async with StdioMediator(stdio_nodes, model, tmp_path / "stdio"):
                        seen = our_listeners()
        ports = {p for _a, p in seen}
        assert tracker_port in ports
        assert proxies <= ports
        assert {p for _h, p in addrs.values()} <= ports  # the nodes' own listeners
        return seen

    seen = asyncio.run(asyncio.wait_for(main(), 60))
    assert not exposed(seen), f"listening beyond loopback: {exposed(seen)}"


# listeners once an execution is up: tracker + 3 nodes x 2 ports + 6 proxies (+ Ray's own)
CAMPAIGNS = {"local": ([], 10), "ray": (["--ray", "auto", "--jobs", "1"], 18)}


@pytest.mark.parametrize("mode", ["local", pytest.param("ray", marks=pytest.mark.slow)])
def test_campaign_listens_on_loopback_only(mode, tmp_path, procs, python, seed):
    """A real (short) pysyncobj campaign: tracker, proxies and nodes (and with ``--ray auto``,
    the local Ray instance: GCS, raylet, workers), sampled while it runs."""
    extra, want = CAMPAIGNS[mode]
    if mode == "ray":
        pytest.importorskip("ray")
    out = tmp_path / "camp"
    fuzzer = procs([python, "-m", "fuzzer", "run", "targets/pysyncobj/target.toml", "-o",
                    str(out), "--duration", "2m", "--no-ui", "--seed", str(seed), *extra],
                   cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    samples: list[dict[tuple[str, int], int]] = []
    tree: dict[int, bytes] = {}  # pid -> start time (so a reused pid is not mistaken)
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and fuzzer.poll() is None:
            tree.update({p: _start(p) for p in process_tree(fuzzer.pid) if p != fuzzer.pid})
            seen = our_listeners(fuzzer.pid)
            if len(seen) >= want:
                samples.append(seen)
                if len(samples) >= 3:
                    break
            time.sleep(0.5)
    finally:
        if fuzzer.poll() is None:
            os.kill(fuzzer.pid, signal.SIGINT)  # clean stop: tears the execution down
        try:
            log, _ = fuzzer.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(fuzzer.pid, signal.SIGKILL)
            log, _ = fuzzer.communicate(timeout=5)
    assert samples, f"the campaign never had its listeners up:\n{log.decode(errors='replace')}"
    for seen in samples:
        assert not exposed(seen), f"listening beyond loopback: {exposed(seen)}"
    def survivors() -> list[int]:
        return [p for p, st in tree.items() if st is not None and _start(p) == st]

    deadline = time.monotonic() + 20
    while survivors() and time.monotonic() < deadline:
        time.sleep(0.1)
    left = survivors()
    for p in left:  # ours for sure: same pid and same start time as seen in the tree
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    assert not left, f"processes survived the campaign's stop: {left}"


def _start(pid: int) -> bytes | None:
    """The start time of a live (non-zombie) ``pid``, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    return None if fields[0] == b"Z" else fields[19]

