"""Maelstrom echo node, plus two test hooks: ``whoami`` (pid and init count)
and ``garble`` (prints non-message lines on stdout, then answers)."""

import os

from net_maelstrom import Node

node = Node()
inits = 0
_init = node.handlers["init"]


@node.on("init")
def init(msg):
    global inits
    inits += 1
    _init(msg)


@node.on("echo")
def echo(msg):
    node.reply(msg, {"type": "echo_ok", "echo": msg["body"]["echo"]})


@node.on("whoami")
def whoami(msg):
    node.reply(msg, {"type": "whoami_ok", "pid": os.getpid(), "inits": inits})


@node.on("garble")
def garble(msg):
    for line in ("this is not json", "[1, 2, 3]", '{"src": "n9", "dest": "n1", "body": {}}',
                 '{"dest": "c1", "body": {"type": "x"}}', "\x00\xff{{{"):
        node.out.write(line + "\n")
    node.out.flush()
    node.reply(msg, {"type": "garble_ok"})


node.run()
