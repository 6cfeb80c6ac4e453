"""Maelstrom node for per-message fault tests: ``spray{peer, count}`` sends
``num{k}`` for k = 0..count-1 to ``peer``; every ``num`` received is recorded
in arrival order and returned by ``read``."""

from net_maelstrom import Node

node = Node()
received: list[int] = []


@node.on("spray")
def spray(msg):
    for k in range(msg["body"]["count"]):
        node.send(msg["body"]["peer"], {"type": "num", "k": k})
    node.reply(msg, {"type": "spray_ok"})


@node.on("num")
def num(msg):
    received.append(msg["body"]["k"])


@node.on("read")
def read(msg):
    node.reply(msg, {"type": "read_ok", "nums": received})


node.run()
