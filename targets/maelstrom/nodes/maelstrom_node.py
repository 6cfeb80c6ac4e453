"""A tiny Maelstrom node library for the example nodes next to it (stdlib only).

Why our own: the example nodes must run as ``python3 nodes/x.py`` with no
install, on any Python >= 3.9, so they cannot depend on a package. It does
what every Maelstrom node needs and nothing else: read JSON lines from stdin,
dispatch on ``body.type``, answer ``init``, reply with ``in_reply_to``, match
replies to RPC callbacks (with a timeout, so a lost reply never leaks a
callback), and run periodic tasks (gossip, retries) from the same
single-threaded loop, so handlers never need locks. stdout carries messages
only; ``log`` writes to stderr.

Usage::

    node = Node()

    @node.on("echo")
    def echo(msg):
        node.reply(msg, {"type": "echo_ok", "echo": msg["body"]["echo"]})

    node.run()
"""

from __future__ import annotations

import json
import os
import select
import sys
import time
import traceback

# Maelstrom error codes (see the protocol): definite ones and two indefinite.
TIMEOUT = 0
NOT_SUPPORTED = 10
TEMPORARILY_UNAVAILABLE = 11
MALFORMED_REQUEST = 12
CRASH = 13
KEY_DOES_NOT_EXIST = 20
PRECONDITION_FAILED = 22


class Node:
    """One Maelstrom node: handlers by message type, RPCs, timers, a select loop."""

    def __init__(self):
        # A token unique to this process: a restarted node (it gets ``init`` again,
        # its memory gone) must not reuse ids or CRDT slots of its previous life.
        self.incarnation = os.urandom(4).hex()
        self.node_id = None
        self.node_ids = []
        self.handlers = {"init": self._init}
        self.on_init = []  # callables run once the node knows its id
        self._callbacks = {}  # msg_id -> (callback, deadline or None, on_timeout or None)
        self._timers = []  # [next_due, interval, fn]
        self._next_msg_id = 0
        self._out = sys.stdout

    # -- registration ---------------------------------------------------------

    def on(self, msg_type):
        """Decorator: ``fn(msg)`` handles requests whose body type is ``msg_type``."""

        def register(fn):
            self.handlers[msg_type] = fn
            return fn

        return register

    def every(self, interval, fn):
        """Call ``fn()`` every ``interval`` seconds once the node is initialised."""
        self._timers.append([time.monotonic() + interval, interval, fn])

    # -- sending --------------------------------------------------------------

    def log(self, text):
        print(text, file=sys.stderr, flush=True)

    def send(self, dest, body):
        line = json.dumps({"src": self.node_id, "dest": dest, "body": body})
        self._out.write(line + "\n")
        self._out.flush()

    def reply(self, req, body):
        """Answer request ``req`` (a whole message) with ``body``."""
        body = dict(body)
        body["in_reply_to"] = req["body"].get("msg_id")
        self.send(req["src"], body)

    def error(self, req, code, text):
        self.reply(req, {"type": "error", "code": code, "text": text})

    def rpc(self, dest, body, callback, timeout=None, on_timeout=None):
        """Send a request; ``callback(reply_msg)`` runs when its reply arrives.

        After ``timeout`` seconds without a reply the callback is forgotten
        and ``on_timeout()`` runs (if given); a late reply is then ignored.
        """
        self._next_msg_id += 1
        msg_id = self._next_msg_id
        deadline = None if timeout is None else time.monotonic() + timeout
        self._callbacks[msg_id] = (callback, deadline, on_timeout)
        self.send(dest, dict(body, msg_id=msg_id))
        return msg_id

    # -- receiving ------------------------------------------------------------

    def _init(self, msg):
        body = msg["body"]
        self.node_id = body["node_id"]
        self.node_ids = list(body["node_ids"])
        self.log(f"{self.node_id} initialised, cluster {self.node_ids}, pid {os.getpid()}")
        for fn in self.on_init:
            fn()
        self.reply(msg, {"type": "init_ok"})

    def handle(self, msg):
        body = msg["body"]
        if "in_reply_to" in body:
            entry = self._callbacks.pop(body["in_reply_to"], None)
            if entry is not None:  # else a late or unknown reply: nothing waits for it
                self._guard(entry[0], msg)
            return
        fn = self.handlers.get(body.get("type"))
        if fn is None:
            self.error(msg, NOT_SUPPORTED, f"{self.node_id} does not handle {body.get('type')!r}")
            return
        if not self._guard(fn, msg) and "msg_id" in body:
            self.error(msg, CRASH, "the node failed handling this request (see its log)")

    def _guard(self, fn, *args):
        """Run ``fn``; log an exception instead of dying (one bad message must
        not kill the node). True if it returned normally."""
        try:
            fn(*args)
            return True
        except Exception:
            self.log(traceback.format_exc())
            return False

    def _expire(self, now):
        expired = [k for k, (_, dl, _) in self._callbacks.items() if dl is not None and dl <= now]
        for k in expired:
            _, _, on_timeout = self._callbacks.pop(k)
            if on_timeout is not None:
                self._guard(on_timeout)

    def _next_wakeup(self):
        dues = [t[0] for t in self._timers]
        dues.extend(dl for _, dl, _ in self._callbacks.values() if dl is not None)
        return min(dues) if dues else None

    def run(self):
        """Serve until stdin closes."""
        fd = sys.stdin.fileno()
        buf = b""
        while True:
            due = self._next_wakeup() if self.node_id is not None else None
            wait = None if due is None else max(0.0, due - time.monotonic())
            ready, _, _ = select.select([fd], [], [], wait)
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    return
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.strip():
                        self.handle(json.loads(line))
            if self.node_id is None:
                continue
            now = time.monotonic()
            self._expire(now)
            for timer in self._timers:
                if timer[0] <= now:
                    timer[0] = now + timer[1]
                    self._guard(timer[2])
