"""Start one etcd member from the supervisor's generic placeholders, then exec etcd.

Why a launcher: etcd wants full URLs (``n1=http://127.0.0.1:P,...``) and one
global advertised peer URL per member (see peers.py), which the cluster
spec's templates cannot spell (``{cluster}`` renders ``n1=127.0.0.1:P``
without a scheme, and a per-node front port is not a placeholder). This
script turns them into etcd flags and ``exec``s etcd, so the node's process
*is* etcd (same pid and process group: signals, pauses and the demux's
socket-owner lookup see etcd itself).

Usage (a target.toml ``command``)::

    python targets/etcd/launch.py --name {name} --data-dir {data_dir}
        --client-port {ports[0]} --peer-port {ports[1]} --cluster {cluster}
        [--fronts n1=F1,n2=F2,n3=F3] [--token T] [--etcd etcd] [-- extra etcd flags]

``--cluster`` gives the members' peer ports (``{cluster}`` with
``peer_port_index = 1``); ``--fronts``, when given, replaces each member's
advertised peer port by its front port (mediator mode). ``--dry-run`` prints
the argv instead of executing it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script

from targets.etcd.peers import DEFAULT_TOKEN, EtcdLayout, EtcdNode  # noqa: E402


def _pairs(text: str, flag: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in filter(None, text.split(",")):
        name, sep, addr = item.partition("=")
        port = addr.rsplit(":", 1)[-1]
        if not sep or not port.isdigit():
            raise SystemExit(f"launch.py: {flag}: bad entry {item!r} (want NAME=[HOST:]PORT)")
        out[name] = int(port)
    return out


def build_argv(args: argparse.Namespace, extra: list[str]) -> list[str]:
    peers = _pairs(args.cluster, "--cluster")
    fronts = _pairs(args.fronts, "--fronts") if args.fronts else {}
    if args.name not in peers:
        raise SystemExit(f"launch.py: --cluster does not list this node {args.name!r}")
    if fronts and set(fronts) != set(peers):
        raise SystemExit("launch.py: --fronts must name the same nodes as --cluster")
    nodes = []
    for i, (name, port) in enumerate(peers.items()):
        client = args.client_port if name == args.name else 1 + i  # others' client ports unused
        nodes.append(EtcdNode(name, client, port if name != args.name else args.peer_port,
                              fronts.get(name) or port))
    layout = EtcdLayout(tuple(nodes), token=args.token, heartbeat_ms=args.heartbeat_ms,
                        election_ms=args.election_ms)
    binary = shutil.which(args.etcd) or args.etcd
    return layout.argv(args.name, args.data_dir, binary, extra)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    p = argparse.ArgumentParser(prog="launch.py", description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--client-port", type=int, required=True)
    p.add_argument("--peer-port", type=int, required=True)
    p.add_argument("--cluster", required=True)
    p.add_argument("--fronts", default="")
    p.add_argument("--token", default=DEFAULT_TOKEN)
    p.add_argument("--heartbeat-ms", type=int, default=100)
    p.add_argument("--election-ms", type=int, default=1000)
    p.add_argument("--etcd", default="etcd")
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args(argv)
    full = build_argv(args, extra)
    if args.dry_run:
        print(" ".join(full))
        return
    if shutil.which(full[0]) is None and not os.access(full[0], os.X_OK):
        raise SystemExit(f"launch.py: etcd binary {args.etcd!r} not found; run targets/etcd/setup")
    sys.stdout.flush()
    os.execv(full[0], full)


if __name__ == "__main__":
    main()
