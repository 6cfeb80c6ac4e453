"""``--jobs``/``--ray``/``--sync-dir`` on the command line, and the sync exchange between
two real (opened, not fuzzing) campaign directories."""

from __future__ import annotations

import pytest

from fuzzer.campaign.commands import build_campaign
from fuzzer.campaign.loop import Budget
from fuzzer.campaign.outdir import QueueName
from fuzzer.campaign.setup import CampaignMeta
from fuzzer.campaign.sync import SyncDir, file_bundle
from fuzzer.checkers.verdict import violated
from fuzzer.cli import main
from fuzzer.config import load_config
from fuzzer.errors import UsageError
from fuzzer.faults import Schedule
from fuzzer.repro.bundle import Bundle, bundle_fields, dumps_bundle, load_bundle
from fuzzer.schedule import parse_step

MAELSTROM = "targets/maelstrom/target.toml"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", MAELSTROM, "--jobs", "0"], "--jobs must be >= 1"),
        (["run", MAELSTROM, "-M", "a"], "give --sync-dir DIR"),
        (["run", MAELSTROM, "--sync-dir", "{tmp}/s"], "needs -M NAME"),
        (["run", MAELSTROM, "--sync-dir", "{tmp}/s", "-S", "../x"], "sync name"),
        (["run", MAELSTROM, "--sync-dir", "{tmp}/s", "-M", "a", "--sync-interval", "0"],
         "--sync-interval must be positive"),
    ],
)
def test_scale_usage_errors_exit_2(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main([*argv, "-o", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err


def test_main_and_secondary_together_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["run", MAELSTROM, "--sync-dir", str(tmp_path), "-M", "a", "-S", "b"])
    assert e.value.code == 2


def _campaign(tmp_path, name, scheduler, seed):
    cfg = load_config(MAELSTROM)
    meta = CampaignMeta(seed=seed, scheduler=scheduler)
    return build_campaign(cfg, tmp_path / name, meta, Budget(executions=1))


def _bundle(signature: str, seed: int) -> bytes:
    return dumps_bundle(Bundle(config={}, seed=seed, schedule="seed 1\nwait 1s\n",
                               signature=signature, kind="safety",
                               verdicts=bundle_fields([violated("t", "x", "it broke")])))


def test_sync_exports_imports_and_dedups(tmp_path, rng):
    sync = tmp_path / "sync"
    a = _campaign(tmp_path, "a", "random", rng.randrange(2**32))
    b = _campaign(tmp_path, "b", "power", rng.randrange(2**32))
    c = _campaign(tmp_path, "c", "qlearning", rng.randrange(2**32))
    steps = [parse_step(t) for t in rng.sample(["wait 1s", "kill leader 1s", "pause n1 2s",
                                                "partition majority-minority 1s"], 3)]
    a.dir.write_queue_entry(QueueName(0, None, 5, 1, "gen"),
                            Schedule(tuple(steps), 7).to_text())
    a.queue_ids.append(0)
    assert file_bundle(a, 0, "t/x[a]", "safety", "it broke", _bundle("t/x[a]", 1))
    assert file_bundle(b, 0, "t/x[b]", "safety", "it broke", _bundle("t/x[b]", 2))
    assert file_bundle(c, 0, "t/x[a]", "safety", "same bug", _bundle("t/x[a]", 3))
    sa, sb, sc = (SyncDir(sync, "a", "secondary"), SyncDir(sync, "b", "main"),
                  SyncDir(sync, "c", "main"))
    sa.exchange(a)
    sb.exchange(b)
    sc.exchange(c)
    # power imports a's queue entry as a seed, Q-learning as a schedule to run
    assert any(e.schedule.steps == tuple(steps) for e in b.scheduler.queue)
    assert c.next_imported() == steps and c.next_imported() is None
    # mains import findings, deduplicated by signature; the secondary does not
    assert {r.signature for r in b.findings.records()} == {"t/x[a]", "t/x[b]"}
    assert {r.signature for r in c.findings.records()} == {"t/x[a]", "t/x[b]"}
    assert len(c.dir.entries("crashes")) == 2
    sa.exchange(a)
    assert {r.signature for r in a.findings.records()} == {"t/x[a]"}
    assert sb.stats_values()["sync_imported_findings"] == 1
    for _, p in b.dir.entries("crashes"):
        assert load_bundle(p).signature in {"t/x[a]", "t/x[b]"}
    # nothing is imported twice, also after a restart (.synced markers)
    again = SyncDir(sync, "c", "main")
    again.exchange(c)
    assert c.next_imported() is None and len(c.dir.entries("crashes")) == 2
    assert (c.dir.root / ".synced" / "a").read_text().strip() == "0"


def test_sync_names_are_checked(tmp_path):
    for bad in ("", ".hidden", "a/b", "x" * 65):
        with pytest.raises(UsageError):
            SyncDir(tmp_path, bad)
    with pytest.raises(UsageError):
        SyncDir(tmp_path, "a", "boss")
