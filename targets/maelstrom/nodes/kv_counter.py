"""A counter kept in Maelstrom's ``seq-kv`` service (``g-counter`` / ``pn-counter``).

Why this shape (Gossip Glomers' counter challenge): the nodes share no state
of their own; one key in the sequentially consistent ``seq-kv`` holds the
total. ``add`` is a compare-and-set loop (read v, cas v -> v + delta, again
if another node won), so no increment is lost. ``seq-kv`` may answer a read
with an old value, so ``read`` confirms what it read with ``cas v -> v``: if
that succeeds v was the latest value at that moment. A service call that
times out is reported to the client as error 0 (indefinite: it may have
happened), never retried blindly (that could count a delta twice).

Run: ``python3 kv_counter.py``.
"""

from __future__ import annotations

from maelstrom_node import MALFORMED_REQUEST, PRECONDITION_FAILED, TIMEOUT, Node

KV = "seq-kv"
KEY = "counter"
WAIT = 1.0

node = Node()


def update(msg, delta, done):
    """Read the counter, cas it to value + delta; ``done(value)`` once a cas succeeds."""

    def give_up():
        node.error(msg, TIMEOUT, f"{KV} did not answer")

    def attempt():
        node.rpc(KV, {"type": "read", "key": KEY}, got, timeout=WAIT, on_timeout=give_up)

    def got(reply):
        body = reply["body"]
        current = body["value"] if body["type"] == "read_ok" else 0
        cas = {"type": "cas", "key": KEY, "from": current, "to": current + delta,
               "create_if_not_exists": True}
        node.rpc(KV, cas, lambda r: settled(r, current), timeout=WAIT, on_timeout=give_up)

    def settled(reply, current):
        body = reply["body"]
        if body["type"] == "cas_ok":
            done(current + delta)
        elif body.get("code") == PRECONDITION_FAILED:
            attempt()  # someone else changed it (or our read was stale): again
        else:
            node.error(msg, body.get("code", TIMEOUT), body.get("text", "seq-kv error"))

    attempt()


@node.on("add")
def add(msg):
    delta = msg["body"].get("delta")
    if isinstance(delta, bool) or not isinstance(delta, int):
        node.error(msg, MALFORMED_REQUEST, f"delta must be an integer, not {delta!r}")
        return
    update(msg, delta, lambda _value: node.reply(msg, {"type": "add_ok"}))


@node.on("read")
def read(msg):
    update(msg, 0, lambda value: node.reply(msg, {"type": "read_ok", "value": value}))


if __name__ == "__main__":
    node.run()
