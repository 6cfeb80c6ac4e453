"""Globally unique ids without coordination (``unique-ids`` workload).

An id is node id + incarnation (a token new on every process start, so a
restarted node does not repeat the ids of its previous life) + a counter.

Run: ``python3 unique_ids.py``.
"""

from __future__ import annotations

import itertools

from maelstrom_node import Node

node = Node()
counter = itertools.count()


@node.on("generate")
def generate(msg):
    node.reply(msg, {"type": "generate_ok",
                     "id": f"{node.node_id}-{node.incarnation}-{next(counter)}"})


if __name__ == "__main__":
    node.run()
