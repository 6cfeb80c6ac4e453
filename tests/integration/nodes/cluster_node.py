"""A small TCP node for the supervisor tests (not instrumented).

Line protocol on --port: ``put X`` appends X to DATA_DIR/data.txt and answers
``ok``; ``get`` answers the stored values joined by ``,`` (``-`` if none);
``ping`` answers ``pong``; ``clock`` answers the clock env vars. Flags make
it misbehave in the ways the supervisor must handle.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def spawn_child(data_dir: Path) -> None:
    # A grandchild in the node's process group that would outlive a careless kill.
    child = subprocess.Popen(
        [sys.executable, "-c", "import time\nwhile True: time.sleep(0.2)"],
        stdin=subprocess.DEVNULL,
    )
    (data_dir / "child.pid").write_text(str(child.pid))


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--no-listen", action="store_true")
    ap.add_argument("--ready-line", default="")
    ap.add_argument("--ready-delay", type=float, default=0.0)
    ap.add_argument("--exit-after", type=float, default=None)
    ap.add_argument("--exit-code", type=int, default=0)
    ap.add_argument("--signal-self", type=int, default=0)
    ap.add_argument("--spawn-child", action="store_true")
    ap.add_argument("--flood", type=int, default=0)
    ap.add_argument("--ignore-term", action="store_true")
    ap.add_argument("--marker", default="")
    args = ap.parse_args()
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    data = data_dir / "data.txt"
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print(f"{args.name}: starting pid {os.getpid()}", flush=True)
    if args.spawn_child:
        spawn_child(data_dir)
    if args.flood:
        chunk = ("x" * 1023 + "\n") * 64
        written = 0
        while written < args.flood:
            sys.stdout.write(chunk)
            written += len(chunk)
        sys.stdout.flush()
        print(f"{args.name}: flood done", flush=True)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            cmd = line.decode().strip()
            if cmd.startswith("put "):
                with open(data, "a") as f:
                    f.write(cmd[4:] + "\n")
                reply = "ok"
            elif cmd == "get":
                vals = data.read_text().split() if data.exists() else []
                reply = ",".join(vals) or "-"
            elif cmd == "ping":
                reply = "pong"
            elif cmd == "clock":
                off = os.environ.get("HBFUZZ_CLOCK_OFFSET", "")
                rate = os.environ.get("HBFUZZ_CLOCK_RATE", "")
                reply = f"{off}/{rate}"
            else:
                reply = cmd
            writer.write(reply.encode() + b"\n")
            await writer.drain()
        writer.close()

    await asyncio.sleep(args.ready_delay)
    if not args.no_listen:
        server = await asyncio.start_server(handle, "127.0.0.1", args.port)
        print(f"{args.name}: listening on {args.port}", flush=True)
    else:
        server = None
        print(f"{args.name}: not listening on purpose", flush=True)
    if args.ready_line:
        print(args.ready_line, flush=True)
    if args.exit_after is not None:
        await asyncio.sleep(args.exit_after)
        print(f"{args.name}: exiting with {args.exit_code} signal {args.signal_self}", flush=True)
        if args.signal_self:
            os.kill(os.getpid(), args.signal_self)
            time.sleep(5)
        os._exit(args.exit_code)
    while True:
        await asyncio.sleep(3600)
    del server


if __name__ == "__main__":
    asyncio.run(main())
