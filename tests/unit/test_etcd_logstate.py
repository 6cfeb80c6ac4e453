"""Pure cores of the etcd target: log-derived STATE, member ids, launcher argv."""

from __future__ import annotations

import os

import pytest

from fuzzer.errors import ConfigError
from instrumentation.protocol import STATE
from targets.etcd.launch import build_argv, main
from targets.etcd.logstate import (
    ETCD_RULES,
    LogStateExtractor,
    LogTail,
    StateStamper,
    rules_from_config,
)
from targets.etcd.peers import EtcdLayout, member_id

# Real etcd 3.4.23 output (capnslog and zap formats).
CAPNS = b"""raft2026/11/29 11:39:45 INFO: f4a3b54aa813e8d7 became follower at term 0
raft2026/11/29 11:39:45 INFO: newRaft f4a3b54aa813e8d7 [peers: [], term: 0, commit: 0]
raft2026/11/29 11:39:45 INFO: f4a3b54aa813e8d7 became follower at term 1
raft2026/11/29 11:39:45 INFO: f4a3b54aa813e8d7 became follower at term 2
raft2026/11/29 11:39:45 INFO: raft.node: f4a3b54aa813e8d7 elected leader b8a14a5b8669518e at term 2
raft2026/11/29 11:40:01 INFO: raft.node: f4a3b54aa813e8d7 lost leader b8a14a5b8669518e at term 3
raft2026/11/29 11:40:01 INFO: f4a3b54aa813e8d7 became candidate at term 3
raft2026/11/29 11:40:01 INFO: f4a3b54aa813e8d7 became leader at term 3
"""
ZAP = (
    b'{"level":"info","ts":"2026-11-29T11:40:06.307Z","caller":"raft/raft.go:771",'
    b'"msg":"3aaa6edcb050dc4d became leader at term 2"}\n'
    b'{"level":"info","ts":"2026-11-29T11:40:06.307Z","caller":"raft/node.go:327",'
    b'"msg":"raft.node: 3aaa6edcb050dc4d elected leader 3aaa6edcb050dc4d at term 2"}\n'
)
ALIASES = {"f4a3b54aa813e8d7": "n2", "b8a14a5b8669518e": "n1", "3aaa6edcb050dc4d": "n9"}


def changes(ex, data):
    return [(c.key, c.value) for c in ex.feed(data)]


def test_capnslog_lines_give_role_term_and_leader_changes():
    ex = LogStateExtractor(ETCD_RULES, "n2", ALIASES)
    assert changes(ex, CAPNS) == [
        ("term", 0), ("role", "follower"), ("term", 1), ("term", 2),
        ("leader", "n1"), ("term", 3), ("leader", "none"),
        ("role", "candidate"), ("role", "leader"), ("leader", "n2"),
    ]
    assert ex.state == {"role": "leader", "term": 3, "leader": "n2"}


def test_zap_json_lines_match_too_and_dedupe_drops_repeats():
    ex = LogStateExtractor(ETCD_RULES, "n9", ALIASES)
    assert changes(ex, ZAP) == [("term", 2), ("role", "leader"), ("leader", "n9")]
    raw = LogStateExtractor(ETCD_RULES, "n9", ALIASES, dedupe=False)
    assert ("term", 2) in changes(raw, ZAP)[3:]


def test_partial_lines_wait_for_their_end(rng):
    whole = LogStateExtractor(ETCD_RULES, "n2", ALIASES)
    expected = changes(whole, CAPNS)
    ex = LogStateExtractor(ETCD_RULES, "n2", ALIASES)
    got, i = [], 0
    while i < len(CAPNS):
        step = rng.randrange(1, 40)
        got += changes(ex, CAPNS[i : i + step])
        i += step
    assert got == expected
    assert [c.line for c in LogStateExtractor(ETCD_RULES, "n2").feed(b"x\n" + ZAP)][0] == 2


def test_rules_from_config_explain_errors_by_key():
    rows = [{"regex": r"now (?P<r>\w+) in (?P<t>\d+)", "set": {"role": "{r}", "term": "{t}"},
             "ints": ["term"]}]
    (rule,) = rules_from_config(rows, "t.toml")
    ex = LogStateExtractor((rule,), "a")
    assert changes(ex, b"now leader in 7\n") == [("role", "leader"), ("term", 7)]
    with pytest.raises(ConfigError, match=r"t.toml: logstate.rules\[0\]: bad regex"):
        rules_from_config([{"regex": "(", "set": {"a": "b"}}], "t.toml")
    with pytest.raises(ConfigError, match=r"rules\[1\].*not a named group"):
        rules_from_config([rows[0], {"regex": "x", "set": {"a": "{nope}"}}], "t.toml")
    with pytest.raises(ConfigError, match="unknown field"):
        rules_from_config([{"regex": "x", "set": {"a": "b"}, "typo": 1}], "t.toml")
    with pytest.raises(ConfigError, match="ints names"):
        rules_from_config([{"regex": "x", "set": {"a": "b"}, "ints": ["c"]}], "t.toml")


def test_log_tail_follows_appends_rotation_and_truncation(tmp_path):
    path = tmp_path / "n1.log"
    tail = LogTail(path)
    assert tail.read() == b""  # missing file
    path.write_bytes(b"one\n")
    assert tail.read() == b"one\n"
    with open(path, "ab") as f:
        f.write(b"two\n")
    assert tail.read() == b"two\n"
    with open(path, "ab") as f:
        f.write(b"three\n")
    os.replace(path, tmp_path / "n1.log.1")  # the supervisor's rotation
    path.write_bytes(b"four\n")
    assert tail.read() == b"three\nfour\n"
    path.write_bytes(b"")  # truncated in place
    with open(path, "ab") as f:
        f.write(b"5\n")
    assert tail.read() == b"5\n"
    tail.close()


def test_stamper_makes_state_events_with_per_node_sequence():
    ex = LogStateExtractor(ETCD_RULES, "n2", ALIASES)
    events = StateStamper().events(ex.feed(CAPNS))
    assert all(e.kind == STATE and e.node == "n2" for e in events)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[-1].field("key") == "leader" and events[-1].field("value") == "n2"


def test_member_id_matches_etcd_and_layout_is_global():
    # Observed on etcd 3.4.23 with --initial-cluster-token tok.
    assert member_id(["http://127.0.0.1:23011"], "tok") == "b8a14a5b8669518e"
    lay = EtcdLayout.on_ports(["n1", "n2", "n3"], [10, 11, 20, 21, 30, 31], fronts=[91, 92, 93])
    clusters = {lay.argv(n, "/d")[lay.argv(n, "/d").index("--initial-cluster") + 1]
                for n in lay.names()}
    assert clusters == {"n1=http://127.0.0.1:91,n2=http://127.0.0.1:92,n3=http://127.0.0.1:93"}
    argv = lay.argv("n2", "/d")
    assert argv[argv.index("--listen-peer-urls") + 1] == "http://127.0.0.1:21"
    assert argv[argv.index("--initial-advertise-peer-urls") + 1] == "http://127.0.0.1:92"
    assert sorted(lay.member_ids().values()) == ["n1", "n2", "n3"]
    with pytest.raises(ConfigError, match="overlap"):
        EtcdLayout.on_ports(["a", "b"], [1, 2, 2, 3])


def test_launcher_renders_the_same_cluster_as_the_layout(capsys):
    main(["--name", "n2", "--data-dir", "/d", "--client-port", "20", "--peer-port", "21",
          "--cluster", "n1=127.0.0.1:11,n2=127.0.0.1:21,n3=127.0.0.1:31",
          "--fronts", "n1=91,n2=92,n3=93", "--etcd", "/bin/etcd-x", "--dry-run",
          "--", "--snapshot-count", "5"])
    out = capsys.readouterr().out.split()
    lay = EtcdLayout.on_ports(["n1", "n2", "n3"], [10, 11, 20, 21, 30, 31], fronts=[91, 92, 93])
    assert out == lay.argv("n2", "/d", "/bin/etcd-x", ["--snapshot-count", "5"])
    import argparse

    with pytest.raises(SystemExit, match="does not list"):
        build_argv(argparse.Namespace(name="n4", data_dir="/d", client_port=1, peer_port=2,
                                      cluster="n1=127.0.0.1:11", fronts="", token="t",
                                      heartbeat_ms=100, election_ms=1000, etcd="etcd"), [])


def test_ids_with_a_leading_zero_match_their_log_form(tmp_path):
    """etcd logs ids with %x, so 08214b4874ca994c appears as 8214b4874ca994c (the
    fresh-clone CI once drew such a member id; the leader was left as a raw id)."""
    from fuzzer.tracker.logstate import LogStateWatcher, alias_table

    aliases = {"08214b4874ca994c": "n2", "f4a3b54aa813e8d7": "n1"}
    assert alias_table(aliases)["8214b4874ca994c"] == "n2"
    assert alias_table(aliases)["f4a3b54aa813e8d7"] == "n1"
    log = tmp_path / "n1.log"
    log.write_bytes(b"raft2026/11/29 11:39:45 INFO: raft.node: f4a3b54aa813e8d7 elected leader "
                    b"8214b4874ca994c at term 2\n")
    w = LogStateWatcher({"n1": log}, ETCD_RULES, aliases=aliases)
    w.poll()
    assert w.state("n1")["leader"] == "n2"
    w.set_aliases({"08214b4874ca994c": "n3"})
    log.write_bytes(log.read_bytes() + b"raft2026/11/29 11:39:46 INFO: raft.node: "
                    b"f4a3b54aa813e8d7 elected leader 8214b4874ca994c at term 3\n")
    w.poll()
    assert w.state("n1")["leader"] == "n3"
