"""The campaign summary page and ``hbfuzz show`` on bundles and campaign directories."""

from __future__ import annotations

import json
import re

from fuzzer.campaign.findings import FindingIndex, FindingRecord, signature_hash
from fuzzer.campaign.outdir import CampaignDir, FindingName
from fuzzer.campaign.stats import plot_header, plot_row, stats_lines
from fuzzer.cli import main
from fuzzer.report.summary import render_summary, svg_chart
from fuzzer.report.synthetic import synthetic_run
from fuzzer.repro.bundle import bundle_fields, save_bundle, to_plain


def make_bundle(path, run, signature="invariant/one-leader-per-term/1a2b"):
    return save_bundle(
        path,
        config={"target": {"name": "toy"}, "cluster": {"nodes": 5}},
        seed=7,
        schedule=run.schedule,
        signature=signature,
        verdicts=bundle_fields(run.verdicts),
        trace=tuple(to_plain(e) for e in run.events),
        history=tuple([o.process, o.type, o.f, o.value, o.key, o.time] for o in run.history.ops),
    )


def make_campaign(root, rng):
    cd = CampaignDir(root)
    cd.create()
    run = synthetic_run(rng, events=800, nodes=3)
    sig = "invariant/one-leader-per-term/1a2b"
    name = FindingName(0, signature_hash(sig), 61_000, 12, "safety")
    make_bundle(cd.finding_path("safety", name), run, sig)
    index = FindingIndex()
    index.add_new(FindingRecord(0, sig, "safety", name.text(), 3, 12, 40, 1.7e9 + 61, 1.7e9 + 300,
                                "two leaders in term 7"))
    cd.save_state({"findings": index.to_list(), "progress": {}, "queue": [], "seed": 7,
                   "scheduler": "qlearning"})
    (root / "fuzzer_stats").write_text(stats_lines({
        "start_time": 1_700_000_000, "execs_done": 40, "hb_coverage": 900, "target": "toy"}))
    lines = [plot_header()] + [
        plot_row(t, t // 10, 100 + 8 * t, 50 + t, 1 + t // 30, 1 if t > 60 else 0, 0)
        for t in range(0, 300, 15)]
    (root / "plot_data").write_text("\n".join(lines) + "\n")
    return cd, name


def test_svg_chart_draws_each_series_and_handles_no_rows():
    rows = [{"relative_time": t, "hb_coverage": t * 3, "saved_crashes": t // 50}
            for t in range(0, 200, 10)]
    svg = svg_chart(rows, ("hb_coverage", "saved_crashes"), title="t", step=("saved_crashes",))
    assert svg.count("<polyline") == 2 and "HB coverage (max 570" in svg
    assert "no plot_data rows yet" in svg_chart([], ("hb_coverage",), title="t")


def test_render_summary_lists_findings_with_links():
    page = render_summary(
        [{"id": 0, "signature": "a/b/<c>", "kind": "safety", "count": 4, "first_exec": 3,
          "first_time": 70.0, "line": "x", "report": "finding-000000.html", "bundle": "b"}],
        [{"relative_time": 0, "hb_coverage": 1}, {"relative_time": 60, "hb_coverage": 9}],
        {"start_time": "0", "execs_done": "10"})
    assert 'href="finding-000000.html"' in page and "a/b/&lt;c&gt;" in page
    assert "<script" not in page


def test_show_campaign_writes_summary_and_finding_reports(tmp_path, rng, capsys):
    root = tmp_path / "out"
    _, name = make_campaign(root, rng)
    assert main(["show", str(root)]) == 0
    index = root / "report" / "index.html"
    assert capsys.readouterr().out.strip() == str(index)
    page = index.read_text()
    assert 'href="finding-000000.html"' in page and name.text() in page
    assert "exec 12, 61s" in page and "<polyline" in page
    report = (root / "report" / "finding-000000.html").read_text()
    m = re.search(r'id="hb-data">(.*?)</script>', report, re.S)
    g = json.loads(m.group(1))["diagram"]
    assert g["counts"]["offending"] == 1 and g["lanes"] == ["n1", "n2", "n3"]
    assert 'href="finding-000000.shiviz.log"' in report
    assert (root / "report" / "finding-000000.shiviz.log").exists()
    assert (root / "report" / "finding-000000.history.edn").exists()


def test_show_bundle_and_errors(tmp_path, rng, capsys):
    run = synthetic_run(rng, events=400, nodes=3)
    b = make_bundle(tmp_path / "x.bundle", run)
    assert main(["show", str(b)]) == 0
    assert (tmp_path / "x.html").exists() and (tmp_path / "x.shiviz.log").exists()
    out = tmp_path / "sub" / "r.html"
    assert main(["show", str(b), "-o", str(out), "--no-exports"]) == 0
    assert out.exists() and not (tmp_path / "sub" / "r.shiviz.log").exists()
    capsys.readouterr()
    assert main(["show", str(tmp_path / "missing.bundle")]) == 2
    (tmp_path / "junk.bundle").write_bytes(b"not a bundle")
    assert main(["show", str(tmp_path / "junk.bundle")]) == 2
    assert main(["show", str(tmp_path / "sub")]) == 2  # a directory but no campaign
    err = capsys.readouterr().err
    assert "missing.bundle" in err and "junk.bundle" in err and "not a campaign" in err


def test_show_a_saved_trace_with_its_history(tmp_path, rng, capsys):
    import lz4.frame
    import msgpack

    from fuzzer.execution.trace import save_trace
    from fuzzer.workload.history import save

    run = synthetic_run(rng, events=300, nodes=3)
    trace = save_trace(run.events, tmp_path / "exec.trace")
    save(run.history, tmp_path / "h.history")
    assert main(["show", str(trace), "--history", str(tmp_path / "h.history")]) == 0
    page = (tmp_path / "exec.html").read_text()
    g = json.loads(re.search(r'id="hb-data">(.*?)</script>', page, re.S).group(1))["diagram"]
    assert g["counts"]["events"] == 300 and len(g["ops"]["x0"]) > 0
    assert "nothing to replay" in page
    # a campaign's traces/exec:*.msgpack.lz4 form: an lz4 frame of a msgpack list
    raw = tmp_path / "exec:000001.msgpack.lz4"
    raw.write_bytes(lz4.frame.compress(msgpack.packb(
        [[e.node, e.seq, e.lamport, e.wall_ns, e.mono_ns, e.kind, list(e.fields)]
         for e in run.events], use_bin_type=True)))
    assert main(["show", str(raw), "-o", str(tmp_path / "raw.html")]) == 0
    assert (tmp_path / "raw.html").exists()
