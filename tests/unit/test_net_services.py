"""Maelstrom services (fuzzer/network/services.py): pure objects, no I/O."""

from __future__ import annotations

import pytest

from fuzzer.errors import NetworkError
from fuzzer.network.services import LinKV, LinTSO, LwwKV, SeqKV, make_services


def test_lin_kv_read_write_cas_and_error_codes():
    kv = LinKV()
    assert kv.handle("n1", {"type": "read", "key": "a"})["code"] == 20
    assert kv.handle("n1", {"type": "write", "key": "a", "value": 1}) == {"type": "write_ok"}
    assert kv.handle("n2", {"type": "read", "key": "a"}) == {"type": "read_ok", "value": 1}
    assert kv.handle("n1", {"type": "cas", "key": "a", "from": 2, "to": 3})["code"] == 22
    assert kv.handle("n1", {"type": "cas", "key": "a", "from": 1, "to": 3})["type"] == "cas_ok"
    assert kv.handle("n1", {"type": "cas", "key": "b", "from": 1, "to": 3})["code"] == 20
    ok = kv.handle("n1", {"type": "cas", "key": "b", "from": 1, "to": 3,
                          "create_if_not_exists": True})
    assert ok["type"] == "cas_ok" and kv.handle("n1", {"type": "read", "key": "b"})["value"] == 3
    assert kv.handle("n1", {"type": "write", "key": [1, 2], "value": 5})["type"] == "write_ok"
    assert kv.handle("n1", {"type": "read", "key": [1, 2]})["value"] == 5
    assert kv.handle("n1", {"type": "frob"})["code"] == 10
    assert kv.handle("n1", {"type": "read"})["code"] == 12
    assert kv.handle("n1", {"type": "cas", "key": "a", "to": 1})["code"] == 12
    assert kv.handle("n1", {"type": "read", "key": {"a": 1}})["code"] == 12


def test_seq_kv_reads_are_stale_but_monotonic_per_requester(rng):
    kv = SeqKV(seed=rng.randrange(2**32), stale=0.5)
    clients = ["n1", "n2", "n3"]
    order = {}  # value -> version order (values are written once, increasing)
    last_seen = {c: -1 for c in clients}
    stale = 0
    for v in range(400):
        c = rng.choice(clients)
        if rng.random() < 0.4:
            kv.handle(c, {"type": "write", "key": "k", "value": v})
            order[v] = v
            last_seen[c] = v  # a requester sees its own writes
        else:
            r = kv.handle(c, {"type": "read", "key": "k"})
            if r["type"] == "error":
                assert r["code"] == 20 and not order
                continue
            seen = r["value"]
            assert seen >= last_seen[c], "a read went back in time for one requester"
            last_seen[c] = seen
            stale += seen != max(order)
    assert stale > 0  # seq-kv really serves stale reads


def test_seq_kv_cas_acts_on_the_latest_value():
    kv = SeqKV(seed=1, stale=1.0)
    kv.handle("n1", {"type": "write", "key": "k", "value": 1})
    kv.handle("n2", {"type": "write", "key": "k", "value": 2})
    assert kv.handle("n3", {"type": "cas", "key": "k", "from": 1, "to": 9})["code"] == 22
    assert kv.handle("n3", {"type": "cas", "key": "k", "from": 2, "to": 9})["type"] == "cas_ok"
    assert kv.handle("n3", {"type": "read", "key": "k"})["value"] == 9  # its own write
    kv.handle("n1", {"type": "write", "key": "k", "value": 10})
    assert kv.handle("n2", {"type": "cas", "key": "k", "from": 0, "to": 1})["code"] == 22
    assert kv.handle("n2", {"type": "read", "key": "k"})["value"] == 10  # saw it via cas


def test_lww_kv_returns_written_values_and_tso_increases():
    kv = LwwKV(seed=3, stale=0.5)
    for v in range(10):
        kv.handle("n1", {"type": "write", "key": "k", "value": v})
    reads = {kv.handle("n2", {"type": "read", "key": "k"})["value"] for _ in range(50)}
    assert reads <= set(range(10)) and 9 in reads
    tso = LinTSO()
    ts = [tso.handle("n1", {"type": "ts"})["ts"] for _ in range(5)]
    assert ts == sorted(set(ts))
    assert tso.handle("n1", {"type": "read"})["code"] == 10


def test_make_services_names():
    assert set(make_services()) == {"lin-kv", "seq-kv", "lww-kv", "lin-tso"}
    with pytest.raises(NetworkError, match="unknown Maelstrom service 'foo'"):
        make_services(["foo"])
