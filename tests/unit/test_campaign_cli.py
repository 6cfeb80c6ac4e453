"""``hbfuzz run/stats/plot`` argument and input errors: one line, exit code 2."""

from __future__ import annotations

import pytest

from fuzzer.campaign.commands import parse_budget
from fuzzer.campaign.outdir import CampaignDir, atomic_write
from fuzzer.campaign.setup import CampaignMeta, campaign_toml, read_campaign_toml
from fuzzer.campaign.stats import plot_header
from fuzzer.cli import main
from fuzzer.config import load_config
from fuzzer.errors import ConfigError, UsageError

MAELSTROM = "targets/maelstrom/target.toml"
PB = ["--set", "target.node=nodes/pb_kv.py", "--set", "workload.name=lin-kv"]


def _campaign(tmp_path, seed):
    cfg = load_config(MAELSTROM, ["target.node=nodes/pb_kv.py", "workload.name=lin-kv"])
    d = CampaignDir(tmp_path / "out")
    d.create()
    atomic_write(d.config_path, campaign_toml(cfg, CampaignMeta(seed=seed, scheduler="power")))
    return d


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200),
                                               ("1d", 86400), ("45", 45), ("1.5m", 90)])
def test_parse_budget(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-1m", "0s", "5 years"])
def test_parse_budget_rejects(text):
    with pytest.raises(UsageError, match="--duration"):
        parse_budget(text)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run"], "run needs TARGET.toml"),
        (["run", MAELSTROM, "--duration", "soon"], "--duration: expected a duration"),
        (["run", MAELSTROM, "--executions", "0"], "--executions must be >= 1"),
        (["run", "nope.toml"], "nope.toml: no such file"),
        (["run", MAELSTROM, "--set", "schedule.lenght=3"], "schedule.lenght"),
        (["run", "--resume", "{tmp}/nothing"], "not a campaign directory"),
        (["stats", "{tmp}/nothing"], "no such directory"),
        (["plot", "{tmp}"], "not a campaign directory"),
    ],
)
def test_usage_errors_exit_2(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") <= 2


def test_existing_campaign_needs_resume(tmp_path, capsys, seed):
    d = _campaign(tmp_path, seed)
    assert main(["run", MAELSTROM, *PB, "-o", str(d.root), "--executions", "1"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["run", "--resume", str(d.root), "--seed", str(seed + 1)]) == 2
    assert f"started with seed {seed}" in capsys.readouterr().err
    assert main(["run", "--resume", str(d.root), "--scheduler", "qlearning"]) == 2
    assert "this campaign uses power" in capsys.readouterr().err


def test_campaign_toml_round_trip_and_errors(tmp_path, seed):
    d = _campaign(tmp_path, seed)
    cfg, meta = read_campaign_toml(d.config_path)
    assert meta.seed == seed and meta.scheduler == "power" and cfg.workload.name == "lin-kv"
    text = d.config_path.read_text().replace(f"seed = {seed}", 'seed = "x"')
    d.config_path.write_text(text)
    with pytest.raises(ConfigError, match=r"campaign.toml: campaign.seed: expected"):
        read_campaign_toml(d.config_path)


def test_stats_and_plot_of_an_empty_campaign(tmp_path, capsys, seed):
    d = _campaign(tmp_path, seed)
    atomic_write(d.plot_path, plot_header() + "\n")
    assert main(["plot", str(d.root)]) == 2
    assert "plot_data has no rows yet" in capsys.readouterr().err
    assert main(["stats", str(d.root)]) == 2
    assert "no fuzzer_stats here" in capsys.readouterr().err
    atomic_write(d.stats_path, "execs_done : 0\nsaved_crashes : 0\nsaved_hangs : 0\n")
    assert main(["stats", str(d.root), "--json"]) == 0
    assert '"execs_done": 0' in capsys.readouterr().out
    d.append_line(d.plot_path, "0, 0, 0, 0, 0, 0, 0")
    d.append_line(d.plot_path, "60, 5, 100, 20, 3, 1, 0")
    assert main(["plot", str(d.root), "-o", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")
