"""A minimal Maelstrom node library for the test nodes (net_*.py).

Reads JSON lines from stdin, dispatches on ``body.type``, replies with
``in_reply_to``, keeps callbacks for RPCs, and calls an optional ``tick``
periodically (for gossip). Logs go to stderr; stdout carries only messages.
"""

from __future__ import annotations

import json
import os
import select
import sys
import time


class Node:
    def __init__(self) -> None:
        self.node_id: str | None = None
        self.node_ids: list[str] = []
        self.handlers = {"init": self._init}
        self.callbacks = {}
        self.next_msg_id = 0
        self.out = sys.stdout

    def on(self, msg_type):
        def register(fn):
            self.handlers[msg_type] = fn
            return fn

        return register

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def send(self, dest: str, body: dict) -> None:
        self.out.write(json.dumps({"src": self.node_id, "dest": dest, "body": body}) + "\n")
        self.out.flush()

    def reply(self, req: dict, body: dict) -> None:
        body = dict(body)
        body["in_reply_to"] = req["body"].get("msg_id")
        self.send(req["src"], body)

    def rpc(self, dest: str, body: dict, callback) -> None:
        self.next_msg_id += 1
        body = dict(body, msg_id=self.next_msg_id)
        self.callbacks[self.next_msg_id] = callback
        self.send(dest, body)

    def _init(self, msg: dict) -> None:
        self.node_id = msg["body"]["node_id"]
        self.node_ids = list(msg["body"]["node_ids"])
        self.log(f"init {self.node_id} pid {os.getpid()}")
        self.reply(msg, {"type": "init_ok"})

    def handle(self, msg: dict) -> None:
        body = msg["body"]
        cb = self.callbacks.pop(body.get("in_reply_to"), None)
        if cb is not None:
            cb(msg)
            return
        fn = self.handlers.get(body["type"])
        if fn is None:
            self.reply(msg, {"type": "error", "code": 10, "text": f"no {body['type']}"})
        else:
            fn(msg)

    def run(self, tick=None, interval: float = 0.1) -> None:
        fd = sys.stdin.fileno()
        buf = b""
        next_tick = time.monotonic() + interval
        while True:
            wait = max(0.0, next_tick - time.monotonic()) if tick else None
            ready, _, _ = select.select([fd], [], [], wait)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.strip():
                        self.handle(json.loads(line))
            if tick and time.monotonic() >= next_tick and self.node_id is not None:
                tick()
                next_tick = time.monotonic() + interval
