"""The smallest Maelstrom node: answers ``echo`` with the same payload (``echo`` workload).

Run: ``python3 echo.py``.
"""

from __future__ import annotations

from maelstrom_node import Node

node = Node()


@node.on("echo")
def echo(msg):
    node.reply(msg, {"type": "echo_ok", "echo": msg["body"]["echo"]})


if __name__ == "__main__":
    node.run()
