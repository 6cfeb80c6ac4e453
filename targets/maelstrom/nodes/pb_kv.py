"""A primary-backup key/value node (Maelstrom ``lin-kv``): correct until the network splits.

The design, as many real systems first build it:

- ``n1`` (the first node) is the primary. It executes every read, write and
  cas, so with a healthy network there is one copy that decides and the
  history is linearizable.
- A write changes the primary's copy and is replicated, synchronously, to
  every backup in its in-sync set (each ``replicate`` carries the whole map
  and an index, so replicas apply it idempotently, in any order); the client
  gets ``write_ok`` once they all acknowledged.
- Backups forward client requests to the primary and relay its answer.

Two availability shortcuts make it wrong under a partition, which is the
point of this example (the fuzzer must find it in seconds):

- A backup that does not acknowledge within ``PB_KV_TIMEOUT`` is dropped from
  the in-sync set and the write is acknowledged without it ("the backup is
  presumed dead"); it is re-added once it has caught up.
- A backup whose forwarded read gets no answer within ``PB_KV_TIMEOUT``
  answers from its own copy ("better stale than unavailable").

Isolate any node and reads on the minority side return values that
acknowledged writes have already replaced: a stale read, not linearizable.

Run: ``python3 pb_kv.py``.
"""

from __future__ import annotations

import os
import time

from maelstrom_node import (
    KEY_DOES_NOT_EXIST,
    MALFORMED_REQUEST,
    PRECONDITION_FAILED,
    TIMEOUT,
    Node,
)

WAIT = float(os.environ.get("PB_KV_TIMEOUT", "0.5"))
CATCH_UP = 0.2  # how often the primary re-sends its state to out-of-sync backups

node = Node()
data = {}  # key -> value (JSON list keys become tuples)
index = 0  # version of ``data``: bumped by each change on the primary
in_sync = set()  # primary: backups every write must reach
pending = []  # primary: writes waiting for backups, [index, waiting set, deadline, respond]


def is_primary():
    return node.node_id == node.node_ids[0]


def start():
    if is_primary():
        in_sync.update(n for n in node.node_ids if n != node.node_id)


node.on_init.append(start)


def hashable(key):
    return tuple(hashable(k) for k in key) if isinstance(key, list) else key


def execute(body):
    """Run one client op on the local copy: (reply body, changed?)."""
    kind, key = body["type"], hashable(body.get("key"))
    if kind == "read":
        if key not in data:
            return {"type": "error", "code": KEY_DOES_NOT_EXIST, "text": "no such key"}, False
        return {"type": "read_ok", "value": data[key]}, False
    if kind == "write":
        data[key] = body["value"]
        return {"type": "write_ok"}, True
    if kind == "cas":
        if key not in data:
            if not body.get("create_if_not_exists"):
                return {"type": "error", "code": KEY_DOES_NOT_EXIST, "text": "no such key"}, False
        elif data[key] != body["from"]:
            text = f"expected {body['from']!r}, had {data[key]!r}"
            return {"type": "error", "code": PRECONDITION_FAILED, "text": text}, False
        data[key] = body["to"]
        return {"type": "cas_ok"}, True
    return {"type": "error", "code": MALFORMED_REQUEST, "text": f"unknown op {kind!r}"}, False


def snapshot():
    return {"type": "replicate", "index": index, "data": [[k, v] for k, v in data.items()]}


# -- primary -------------------------------------------------------------------


def serve(body, respond):
    """Primary: execute, replicate to the in-sync backups, then ``respond(reply)``."""
    global index
    reply, changed = execute(body)
    if changed:
        index += 1
    if not changed or not in_sync:
        respond(reply)
        return
    pending.append([index, set(in_sync), time.monotonic() + WAIT, lambda: respond(reply)])
    msg = snapshot()
    for backup in in_sync:
        node.rpc(backup, msg, replicated, timeout=WAIT)


def replicated(msg):
    backup, acked = msg["src"], msg["body"]["index"]
    if acked >= index:
        in_sync.add(backup)  # caught up (again)
    for p in pending:
        if p[0] <= acked:
            p[1].discard(backup)
    settle()


def settle(now=None):
    """Answer writes every backup acknowledged; give up on backups that are too slow."""
    for p in list(pending):
        if now is not None and p[2] <= now and p[1]:
            node.log(f"backups {sorted(p[1])} did not acknowledge index {p[0]}: out of sync")
            in_sync.difference_update(p[1])
            p[1].clear()
        if not p[1]:
            pending.remove(p)
            p[3]()


def tick():
    if not is_primary():
        return
    settle(time.monotonic())
    behind = [n for n in node.node_ids if n != node.node_id and n not in in_sync]
    for backup in behind:
        node.rpc(backup, snapshot(), replicated, timeout=WAIT)


node.every(CATCH_UP, tick)


@node.on("forward")
def forward(msg):
    serve(msg["body"]["request"], lambda reply: node.reply(msg, reply))


# -- backups ---------------------------------------------------------------------


@node.on("replicate")
def replicate(msg):
    global index
    body = msg["body"]
    if body["index"] > index:
        index = body["index"]
        data.clear()
        data.update((hashable(k), v) for k, v in body["data"])
    node.reply(msg, {"type": "replicate_ok", "index": index})


def client_op(msg):
    body = msg["body"]
    if is_primary():
        serve(body, lambda reply: node.reply(msg, reply))
        return

    def relay(answer):
        reply = {k: v for k, v in answer["body"].items() if k not in ("msg_id", "in_reply_to")}
        node.reply(msg, reply)

    def unavailable():
        if body["type"] == "read":
            node.reply(msg, execute(body)[0])  # stale, but available
        else:
            node.error(msg, TIMEOUT, "primary did not answer")  # indefinite: may still happen

    node.rpc(node.node_ids[0], {"type": "forward", "request": body}, relay,
             timeout=WAIT, on_timeout=unavailable)


for op in ("read", "write", "cas"):
    node.on(op)(client_op)


if __name__ == "__main__":
    node.run()
