"""A stdio node that floods its stdout with garbage must not flood the fuzzer's log.

A real node process (written below) answers ``init``, then on ``flood``
prints two bursts of malformed lines (a short sleep between them) and a few
messages to a destination that does not exist, then answers. The mediator
must count every malformed line (``malformed``), log only the first few in
full, then summaries ("N more malformed lines from n1 suppressed"), one
periodic one at least once the second burst starts, the rest at close, and
the numbers in the summaries must add up to what was suppressed. Routing
goes on: the node still answers afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import re
import textwrap

import pytest

from fuzzer.network.model import NetworkModel
from fuzzer.network.stdio import StdioMediator

pytestmark = pytest.mark.timeout(60)

NODE = textwrap.dedent('''
    import json, sys, time

    def send(dest, body):
        sys.stdout.write(json.dumps({"src": me, "dest": dest, "body": body}) + "\\n")
        sys.stdout.flush()

    me = None
    for raw in sys.stdin:
        msg = json.loads(raw)
        body = msg["body"]
        if body["type"] == "init":
            me = body["node_id"]
            send(msg["src"], {"type": "init_ok", "in_reply_to": body["msg_id"]})
        elif body["type"] == "flood":
            for burst in body["bursts"]:
                sys.stdout.write("garbage line, not json %d\\n" * burst % tuple(range(burst)))
                sys.stdout.flush()
                time.sleep(body["pause"])
            for i in range(body["strays"]):
                send("nowhere", {"type": "stray", "i": i})
            send(msg["src"], {"type": "flood_ok", "in_reply_to": body["msg_id"]})
        elif body["type"] == "echo":
            send(msg["src"], {"type": "echo_ok", "echo": body["echo"],
                              "in_reply_to": body["msg_id"]})
''')


def test_a_flooding_node_is_counted_but_logged_sparingly(tmp_path, python, seed, rng, caplog):
    script = tmp_path / "flood_node.py"
    script.write_text(NODE)
    bursts = [rng.randint(5_000, 15_000), rng.randint(5_000, 15_000)]
    strays = rng.randint(20, 60)
    total = sum(bursts)
    caplog.set_level(logging.WARNING, logger="fuzzer.network.stdio")

    async def main():
        nodes = {"n1": [python, str(script)]}
        async with StdioMediator(nodes, NetworkModel(list(nodes), seed), tmp_path / "net") as net:
            net.malformed_log.interval = 0.05  # summaries come at most every 50 ms here
            reply = await net.client_request(
                "c1", "n1", {"type": "flood", "bursts": bursts, "pause": 0.3,
                             "strays": strays}, 30.0)
            assert reply is not None and reply["type"] == "flood_ok"
            before_close = [r.getMessage() for r in caplog.records]
            echo = await net.client_request("c1", "n1", {"type": "echo", "echo": "still"}, 10.0)
            assert echo is not None and echo["echo"] == "still"
            assert net.running("n1")
        return net, before_close

    net, before_close = asyncio.run(asyncio.wait_for(main(), 50))
    assert net.malformed["n1"] == total  # every line counted
    assert net.malformed_suppressed["n1"] == total - net.malformed_log.first
    assert net.unroutable == strays

    messages = [r.getMessage() for r in caplog.records]
    full = [m for m in messages if "printed a malformed line" in m]
    assert len(full) == net.malformed_log.first
    assert "further ones are counted" in full[-1]
    summaries = [m for m in messages if re.match(r"\d+ more malformed lines from n1 suppressed", m)]
    # at least one periodic summary (the second burst starts 300 ms after the last log
    # line, past the 50 ms interval) before the final one at close
    assert any(re.match(r"\d+ more malformed lines from n1", m) for m in before_close)
    assert len(summaries) >= 2
    assert sum(int(m.split()[0]) for m in summaries) == total - len(full)
    assert summaries[-1].endswith(f"({total} in all)")
    # the flood of lines left a bounded number of log records
    assert len(messages) < 200 + 2 * len(summaries), len(messages)
    strays_logged = [m for m in messages if "to unknown destination 'nowhere'" in m]
    assert len(strays_logged) == net.unroutable_log.first
    stray_sums = [m for m in messages if "to unknown destinations suppressed" in m]
    assert sum(int(m.split()[0]) for m in stray_sums) == strays - len(strays_logged)
