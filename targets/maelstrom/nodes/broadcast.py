"""A gossip broadcast node (Maelstrom ``broadcast`` workload) that survives loss,
partitions and crash-restarts.

Why it works:

- A node owes every neighbour each message it learns (except the neighbour
  it came from). What a neighbour has not acknowledged stays owed and is
  re-sent, batched, every ``RETRY`` seconds, so a dropped gossip or a
  partition only delays delivery.
- A client's ``broadcast`` is acknowledged once a second node has the
  message, so killing one node cannot lose an acknowledged message (an
  isolated node cannot acknowledge: its clients time out, which is allowed).
- A (re)started node pulls every other node's messages (``sync``) until each
  has answered once, so a restart forgets nothing the others know.

``BROADCAST_NO_RETRY=1`` is the deliberately broken variant: gossip is sent
once, fire-and-forget, and clients are acknowledged at once, so message loss
loses messages for good (what the broadcast checker must catch).

Run: ``python3 broadcast.py`` (speaks Maelstrom on stdin/stdout).
"""

from __future__ import annotations

import os

from maelstrom_node import Node

RETRY = float(os.environ.get("BROADCAST_RETRY", "0.2"))
NO_RETRY = os.environ.get("BROADCAST_NO_RETRY", "") not in ("", "0")

node = Node()
messages = set()
neighbours = []
owed = {}  # neighbour -> messages it has not acknowledged yet
waiting = {}  # message -> client requests to acknowledge once another node has it
unsynced = set()  # nodes not yet asked for their messages since this process started


def set_neighbours(names):
    neighbours[:] = [n for n in names if n != node.node_id]
    for n in neighbours:
        owed.setdefault(n, set())


def started():
    set_neighbours(node.node_ids)  # until a topology arrives
    unsynced.update(n for n in node.node_ids if n != node.node_id)


node.on_init.append(started)


def learn(new, came_from=None):
    fresh = [m for m in new if m not in messages]
    messages.update(fresh)
    if not fresh:
        return
    for n in neighbours:
        if n == came_from:
            continue
        if NO_RETRY:
            node.send(n, {"type": "gossip", "messages": fresh})
        else:
            owed[n].update(fresh)
            push(n, fresh)


def replicated(batch):
    """Another node has these messages now: acknowledge the clients waiting for them."""
    for m in batch:
        for req in waiting.pop(m, ()):
            node.reply(req, {"type": "broadcast_ok"})


def push(n, batch):
    """Send ``batch`` to ``n``; forget what it acknowledges."""

    def acked(_reply):
        owed[n].difference_update(batch)
        replicated(batch)

    node.rpc(n, {"type": "gossip", "messages": sorted(batch)}, acked, timeout=10 * RETRY)


def pull(n):
    def answered(reply):
        if n in unsynced:
            unsynced.discard(n)
            got = reply["body"]["messages"]
            learn(got, came_from=n)
            replicated(got)

    node.rpc(n, {"type": "sync"}, answered, timeout=10 * RETRY)


def tick():
    for n in list(unsynced):
        pull(n)
    if not NO_RETRY:
        for n in neighbours:
            if owed[n]:
                push(n, list(owed[n]))


node.every(RETRY, tick)


@node.on("topology")
def topology(msg):
    topo = msg["body"].get("topology") or {}
    set_neighbours(topo.get(node.node_id, node.node_ids))
    node.reply(msg, {"type": "topology_ok"})


@node.on("broadcast")
def broadcast(msg):
    m = msg["body"]["message"]
    known = m in messages and m not in waiting
    learn([m])
    if known or NO_RETRY or not neighbours:
        node.reply(msg, {"type": "broadcast_ok"})
    else:
        waiting.setdefault(m, []).append(msg)


@node.on("read")
def read(msg):
    node.reply(msg, {"type": "read_ok", "messages": sorted(messages)})


@node.on("gossip")
def gossip(msg):
    got = msg["body"]["messages"]
    learn(got, came_from=msg["src"])
    replicated(got)  # the sender has them too
    if "msg_id" in msg["body"]:
        node.reply(msg, {"type": "gossip_ok"})


@node.on("sync")
def sync(msg):
    node.reply(msg, {"type": "sync_ok", "messages": sorted(messages)})


if __name__ == "__main__":
    node.run()
