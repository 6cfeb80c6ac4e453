"""ShiViz and Jepsen EDN exports of a finding."""

from __future__ import annotations

import re

from fuzzer.report.exports import SHIVIZ_REGEX, history_edn, parse_shiviz, shiviz_log, write_exports
from fuzzer.report.synthetic import synthetic_run
from fuzzer.tracker.timeline import Timeline
from instrumentation import protocol as P


def test_shiviz_log_has_the_header_and_valid_vector_clocks(rng):
    run = synthetic_run(rng, events=1500, nodes=4)
    text = shiviz_log(run.events)
    lines = text.split("\n")
    assert lines[0] == SHIVIZ_REGEX and lines[1] == ""
    rows = parse_shiviz(text)
    assert len(rows) == len(run.events)  # every event of every host, nemesis included
    seen: dict[str, int] = {}
    for host, clock, event in rows:
        # ShiViz: a host's own entry counts its events 1, 2, 3, ...
        assert clock[host] == seen.get(host, 0) + 1
        seen[host] = clock[host]
        # a clock never names more events of another host than were already written
        for other, c in clock.items():
            if other != host:
                assert c <= seen.get(other, 0), (host, other, event)
        assert "\n" not in event
    # the clocks are the real timeline's
    tl = Timeline()
    for e in run.events:
        tl.add(e)
    for s, r in tl.edges()[:200]:  # a RECV's clock dominates its SEND's
        vs, vr = tl.vector_clock(s), tl.vector_clock(r)
        assert all(vr.get(k, 0) >= c for k, c in vs.items())
    kinds = {row[2].split()[0] for row in rows}
    assert {"SEND", "RECV", "FAULT", "VIOLATION"} <= kinds


def test_shiviz_regex_is_javascript_named_group_syntax():
    assert "(?<host>" in SHIVIZ_REGEX and "(?<clock>" in SHIVIZ_REGEX
    assert "(?<event>" in SHIVIZ_REGEX and "(?P<" not in SHIVIZ_REGEX
    rx = re.compile(SHIVIZ_REGEX.replace("(?<", "(?P<"))
    m = rx.fullmatch('n1 {"n1":2,"n2":1} RECV x from=n2 id=1 lamport=3 seq=2 {braces}')
    assert m and m.group("clock") == '{"n1":2,"n2":1}'


def test_history_edn_and_write_exports(rng, tmp_path):
    run = synthetic_run(rng, events=300, nodes=3)
    edn = history_edn(run.history)
    lines = edn.splitlines()
    assert len(lines) == len(run.history)
    assert lines[0].startswith("{:index 0, :time ") and ":type :invoke" in lines[0]
    # the stored row form of a bundle gives the same EDN
    rows = [[o.process, o.type, o.f, o.value, o.key, o.time] for o in run.history.ops]
    assert history_edn(rows) == edn
    written = write_exports(tmp_path, "finding", run.events, run.history)
    assert written["ShiViz log"].read_text().startswith(SHIVIZ_REGEX + "\n\n")
    assert written["Jepsen history (EDN)"].read_text() == edn
    assert write_exports(tmp_path / "none", "empty") == {}


def test_unmatched_and_odd_events_still_export(rng):
    from instrumentation.protocol import Event

    evs = [
        Event("n1", 1, 1, 0, 1, P.RECV, ("n9", "ghost", 5, 0)),  # its SEND never arrived
        Event("n1", 2, 2, 0, 2, P.LOCAL, ("tick", {"k": [1, 2]})),
    ]
    rows = parse_shiviz(shiviz_log(evs))
    assert [r[1] for r in rows] == [{"n1": 1}, {"n1": 2}]
