"""State-based CRDTs gossiped between nodes: ``g-set``, ``g-counter`` and ``pn-counter``.

Why CRDTs: each node accepts ``add`` locally and every ``CRDT_GOSSIP``
seconds sends its whole state to every other node; merging is a union
(g-set) or a per-slot maximum (counters), which is commutative, associative
and idempotent, so lost, duplicated or reordered gossip only delays
convergence. After a partition heals every node reads the same value.

Crash-restarts: an ``add`` is acknowledged once another node has
acknowledged a state that contains it (so one crash cannot lose it), a
restarted node gets the others' state back by their gossip, and a counter
counts in a slot of its own incarnation (a restarted node starts a new slot
instead of restarting an old one at 0, which the max would hide).

Run: ``python3 crdt.py set`` (g-set) or ``python3 crdt.py counter``
(g-counter and pn-counter: adds with a negative delta count down).
"""

from __future__ import annotations

import os
import sys

from maelstrom_node import MALFORMED_REQUEST, Node

MODE = sys.argv[1] if len(sys.argv) > 1 else "counter"
if MODE not in ("set", "counter"):
    sys.exit(f"crdt.py: mode must be 'set' or 'counter', not {MODE!r}")
GOSSIP = float(os.environ.get("CRDT_GOSSIP", "0.1"))

node = Node()
elements = set()  # g-set
ups, downs = {}, {}  # counters: slot (node.incarnation) -> total increments / decrements
version = 0  # bumped by every local add
waiting = []  # [version, request]: adds to acknowledge once a peer has that version


def peers():
    return [n for n in node.node_ids if n != node.node_id]


def value():
    if MODE == "set":
        return sorted(elements, key=repr)
    return sum(ups.values()) - sum(downs.values())


def state():
    if MODE == "set":
        return {"type": "state", "elements": sorted(elements, key=repr)}
    return {"type": "state", "ups": ups, "downs": downs}


def confirmed(v):
    """A peer holds every add up to version ``v``: acknowledge them."""
    done = [w for w in waiting if w[0] <= v]
    for w in done:
        waiting.remove(w)
        node.reply(w[1], {"type": "add_ok"})


def gossip():
    v, msg = version, state()
    for n in peers():
        node.rpc(n, msg, lambda _reply, v=v: confirmed(v), timeout=10 * GOSSIP)


node.every(GOSSIP, gossip)


@node.on("add")
def add(msg):
    global version
    body = msg["body"]
    if MODE == "set":
        elements.add(body["element"])
    else:
        delta = body.get("delta")
        if isinstance(delta, bool) or not isinstance(delta, int):
            node.error(msg, MALFORMED_REQUEST, f"delta must be an integer, not {delta!r}")
            return
        side = ups if delta >= 0 else downs
        slot = f"{node.node_id}.{node.incarnation}"
        side[slot] = side.get(slot, 0) + abs(delta)
    if not peers():
        node.reply(msg, {"type": "add_ok"})
        return
    version += 1
    waiting.append([version, msg])
    gossip()


@node.on("read")
def read(msg):
    node.reply(msg, {"type": "read_ok", "value": value()})


@node.on("state")
def merge(msg):
    body = msg["body"]
    elements.update(body.get("elements", ()))
    for mine, theirs in ((ups, body.get("ups", {})), (downs, body.get("downs", {}))):
        for slot, count in theirs.items():
            mine[slot] = max(mine.get(slot, 0), count)
    if "msg_id" in body:
        node.reply(msg, {"type": "state_ok"})


if __name__ == "__main__":
    node.run()
