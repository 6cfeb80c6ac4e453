"""Maelstrom broadcast node: keeps a set of messages, gossips the whole set to
its neighbours every tick (anti-entropy), so partitions delay but never lose
acknowledged messages."""

from net_maelstrom import Node

node = Node()
messages: set[int] = set()
neighbours: list[str] = []


@node.on("topology")
def topology(msg):
    neighbours[:] = msg["body"]["topology"].get(node.node_id, [])
    node.reply(msg, {"type": "topology_ok"})


@node.on("broadcast")
def broadcast(msg):
    messages.add(msg["body"]["message"])
    node.reply(msg, {"type": "broadcast_ok"})
    gossip()


@node.on("gossip")
def on_gossip(msg):
    messages.update(msg["body"]["messages"])


@node.on("read")
def read(msg):
    node.reply(msg, {"type": "read_ok", "messages": sorted(messages)})


def gossip():
    peers = neighbours or [n for n in node.node_ids if n != node.node_id]
    if messages:
        for peer in peers:
            node.send(peer, {"type": "gossip", "messages": sorted(messages)})


node.run(tick=gossip, interval=0.05)
