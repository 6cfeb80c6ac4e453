"""The report page: self-contained, safe embedding, the oracle's explanation, bundles."""

from __future__ import annotations

import html
import json
import re

from fuzzer.checkers import linearizability
from fuzzer.checkers.verdict import violated
from fuzzer.report.html import embed_json, render_bundle, render_report
from fuzzer.repro.bundle import bundle_fields, load_bundle, save_bundle, to_plain
from fuzzer.workload.history import HistoryRecorder
from instrumentation import protocol as P
from instrumentation.protocol import Event

HOSTILE = "</script><script>alert(1)</script><!-- \u2028 & </SCRIPT >"


def data_block(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="hb-data">(.*?)</script>', page, re.S)
    assert m is not None
    return json.loads(m.group(1))


def trace() -> list[Event]:
    return [
        Event("n1", 1, 1, 10, 1_000, P.SEND, ("n2", HOSTILE, 1)),
        Event("n2", 1, 2, 20, 2_000, P.RECV, ("n1", HOSTILE, 1, 1)),
        Event("n2", 2, 3, 30, 3_000, P.LOG, ("info", HOSTILE)),
        Event("n2", 3, 4, 40, 4_000, P.VIOLATION, ("bad", {"why": HOSTILE})),
    ]


def lin_failure():
    clock = iter(range(1_000, 10_000, 500))
    rec = HistoryRecorder(clock=lambda: next(clock))
    for p, v in ((0, 1), (1, 2)):
        h = rec.invoke(p, "write", v, key="k")
        rec.ok(h)
    h = rec.invoke(2, "read", key="k")
    rec.ok(h, 7)
    history = rec.history()
    return history, linearizability.check(history, "kv")


def test_embed_json_cannot_end_the_script_element():
    text = embed_json({"s": HOSTILE, "n": float("nan")})
    assert "<" not in text and ">" not in text and "&" not in text
    assert "\u2028" not in text
    assert json.loads(text)["s"] == HOSTILE


def test_page_is_self_contained_and_data_round_trips():
    page = render_report(trace(), None, [], schedule="seed 3\nkill n1 1s\n", title=HOSTILE)
    assert page.count("</script>") == 2  # the data block and the script, nothing injected
    assert "<script src" not in page and "<link" not in page and "@import" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    g = data_block(page)["diagram"]
    assert g["types"] == [HOSTILE]
    assert any(HOSTILE[:20] in d for d in g["ev"]["det"])
    assert "kill n1 1s" in page
    assert g["counts"]["offending"] == 1


def test_linearizability_explanation_names_key_unplaced_ops_and_prefix():
    history, result = lin_failure()
    assert result.verdict == "not-linearizable"
    page = render_report([], history, [result], replay_command="hbfuzz replay x.bundle")
    assert "key: <code>&#x27;k&#x27;</code>" in page
    for op in result.unplaced:
        assert html.escape(op.describe()) in page
    assert f"longest linearisable prefix: {len(result.prefix)} op(s)" in page
    assert "hbfuzz replay x.bundle" in page
    g = data_block(page)["diagram"]
    assert g["counts"]["offending_ops"] == len(result.unplaced) >= 1


def test_render_bundle_from_a_saved_bundle(tmp_path):
    history, result = lin_failure()
    v = violated("invariant", "bad", "n2 asserted", [trace()[-1]])
    path = save_bundle(
        tmp_path / "f.bundle",
        config={"target": {"name": "toy"}, "cluster": {"nodes": 2, "name_prefix": "n"}},
        seed=42,
        schedule="seed 42\npartition isolate n2 1s\n",
        signature="invariant/bad/abc",
        verdicts=bundle_fields([v]),
        trace=tuple(to_plain(e) for e in trace()),
        history=tuple([op.process, op.type, op.f, op.value, op.key, op.time] for op in history.ops),
        replay={"rate": 0.8},
    )
    bundle = load_bundle(path)
    page = render_bundle(bundle, path)
    assert f"hbfuzz replay {path}" in page and "invariant/bad/abc" in page
    assert "hbfuzz finding: toy" in page and "partition isolate n2 1s" in page
    assert "reproduction rate" in page
    g = data_block(page)["diagram"]
    assert g["lanes"] == ["n1", "n2"] and g["counts"]["events"] == 4
    assert g["counts"]["offending"] == 1 and len(g["ops"]["x0"]) == 3
