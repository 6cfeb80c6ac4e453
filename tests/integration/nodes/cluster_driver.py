"""Starts a 3-node cluster (nodes with grandchildren) and ends as told.

Usage: cluster_driver.py MODE WORKDIR MARKER [nowatchdog], MODE one of
normal, exception, wait (the test then sends SIGINT, SIGTERM or SIGKILL) or
wait2 (like wait, with two clusters in two tasks). Prints one JSON line with
every PID it knows, then ``READY``; normal and exception end after a line on
stdin.
"""

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from fuzzer.cluster import ClusterSpec, Readiness, Supervisor

NODE = str(Path(__file__).with_name("cluster_node.py"))


def make_spec(marker: str) -> ClusterSpec:
    return ClusterSpec(
        nodes=3,
        command=[
            sys.executable,
            NODE,
            "--name",
            "{name}",
            "--port",
            "{port}",
            "--data-dir",
            "{data_dir}",
            "--spawn-child",
            "--marker",
            marker,
        ],
        env={"HBFUZZ_TEST_MARKER": marker},
        readiness=Readiness(kind="port", timeout=20.0),
    )


async def run_cluster(
    mode: str, workdir: str, marker: str, watchdog: bool, report: asyncio.Queue
) -> None:
    async with Supervisor(make_spec(marker), workdir, watchdog=watchdog) as sup:
        sup.handle_signals()
        await sup.start_all()
        children = []
        for name in sup.names:
            pid_file = sup.data_dir(name) / "child.pid"
            deadline = time.monotonic() + 10
            while not pid_file.exists() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            children.append(int(pid_file.read_text()))
        nodes = [sup.pid(n) for n in sup.names]
        await report.put({"watchdog": sup.watchdog_pid, "nodes": nodes, "children": children})
        if mode in ("normal", "exception"):
            await asyncio.to_thread(sys.stdin.readline)  # the test says when to end
        if mode == "exception":
            raise RuntimeError("driver failing on purpose")
        if mode in ("wait", "wait2"):
            await asyncio.sleep(120)


async def main(mode: str, workdir: str, marker: str, watchdog: str = "watchdog") -> None:
    report: asyncio.Queue = asyncio.Queue()
    dirs = [workdir, workdir + "-b"] if mode == "wait2" else [workdir]
    async with asyncio.TaskGroup() as tg:
        for d in dirs:
            tg.create_task(run_cluster(mode, d, marker, watchdog == "watchdog", report))
        parts = [await report.get() for _ in dirs]
        info = {
            "driver": os.getpid(),
            "watchdog": parts[0]["watchdog"],
            "watchdogs": [p["watchdog"] for p in parts],
            "nodes": [pid for p in parts for pid in p["nodes"]],
            "children": [pid for p in parts for pid in p["children"]],
        }
        print(json.dumps(info), flush=True)
        print("READY", flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
