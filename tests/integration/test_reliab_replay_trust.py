"""``hbfuzz replay``/``minimize`` run the LOCAL target's commands, not a bundle's
(fuzzer/repro/trust.py), and a campaign's trace files load with ``load_trace``.

One real Maelstrom pb_kv campaign (the settings of tests/e2e/campaign_helpers.py)
gives a real finding bundle and real OUT/traces files. Then:

* the unmodified bundle replays without ``--trust`` (a verdict, no warning);
* a copy whose ``cluster.command`` was edited to also create a marker file is
  refused by replay and by minimize (exit 2, one line naming the bundle and
  ``cluster.command``) and the marker is never created; with ``--trust`` it
  runs (marker created, a warning line);
* every OUT/traces file and the bundle's own trace load as events.

The cheaper refusals (no local target, a ``--target`` of another target, an
edited ``target.setup``) use a bundle built from the target's resolved config.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from fuzzer.config import load_config
from fuzzer.execution.trace import events_from_rows, load_trace, save_trace
from fuzzer.repro.bundle import Bundle, load_bundle, save_bundle
from fuzzer.repro.replay import trace_events
from instrumentation.protocol import Event

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
MAELSTROM = ROOT / "targets" / "maelstrom" / "target.toml"
PB_KV = [  # a campaign that finds pb_kv's stale read within an execution or two
    "--set", "target.node=nodes/pb_kv.py", "--set", "workload.name=lin-kv",
    "--set", "schedule.length=4", "--set", "schedule.step=1.5s",
    "--set", "faults.allowed=['partition', 'wait']", "--set", "workload.keys=2",
    "--set", "workload.clients=6",
]


def hbfuzz(python: str, *args: str, timeout: float = 150) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "fuzzer", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, start_new_session=True)


def campaign(python: str, out: Path, seed: int) -> Path:
    """Run the pb_kv campaign until it saved a finding (bounded); its first bundle."""
    args = ["run", str(MAELSTROM), *PB_KV, "-o", str(out), "--seed", str(seed)]
    for attempt in range(3):
        extra = ["--resume", str(out)] if attempt else []
        r = hbfuzz(python, *(args if not attempt else ["run"]), *extra, "--executions", "2",
                   "--no-ui")
        assert r.returncode in (0, 1), r.stderr[-2000:]
        bundles = sorted((out / "crashes").glob("*")) + sorted((out / "hangs").glob("*"))
        bundles = [b for b in bundles if b.is_file() and not b.name.startswith((".", "README"))]
        if bundles:
            return bundles[0]
    pytest.fail("six executions of the pb_kv campaign saved no finding")


def edited(src: Path, dst: Path, marker: Path) -> Bundle:
    """A copy of the bundle whose cluster.command also touches ``marker``."""
    b = load_bundle(src)
    cfg = json.loads(json.dumps(b.config))
    cmd = cfg["cluster"]["command"]
    cfg["cluster"]["command"] = ["sh", "-c", f'touch {marker}; exec "$0" "$@"', *cmd]
    out = replace(b, config=cfg)
    save_bundle(dst, out)
    return out


def test_real_bundle_replays_and_an_edited_one_is_refused(tmp_path, python, seed):
    out = tmp_path / "out"
    bundle = campaign(python, out, seed)
    original = load_bundle(bundle)

    # 3. the campaign's trace files and the bundle's trace load as events
    traces = sorted((out / "traces").glob("exec:*"))
    assert traces, "the campaign kept no trace"
    for t in traces:
        events = load_trace(t)
        assert events and all(isinstance(e, Event) for e in events)
        assert {"n1", "n2", "n3"} <= {e.node for e in events}
    assert original.trace, "the bundle holds no trace"
    events = events_from_rows(original.trace, str(bundle))
    assert events == trace_events(original.trace, str(bundle))
    assert load_trace(save_trace(events, tmp_path / "again.trace")) == events

    # 1a. the unmodified bundle replays without --trust
    r = hbfuzz(python, "replay", str(bundle), "--times", "1", "--json")
    assert r.returncode in (0, 1), r.stderr[-2000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["runs"] == 1 and report["target"] == original.signature
    assert "--trust" not in r.stderr

    # 1b. an edited cluster.command is refused, by replay and by minimize; nothing runs
    marker = tmp_path / "marker"
    bad = tmp_path / "edited.hbfz"
    edited(bundle, bad, marker)
    before = bad.read_bytes()
    for cmd in (["replay", str(bad), "--times", "1"], ["minimize", str(bad), "--max-tries", "1"]):
        r = hbfuzz(python, *cmd, timeout=60)
        assert r.returncode == 2, (cmd, r.returncode, r.stderr[-2000:])
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert str(bad) in lines[0] and "cluster.command" in lines[0] and "--trust" in lines[0]
        assert not marker.exists()
    assert bad.read_bytes() == before  # a refused replay writes nothing
    assert not list(tmp_path.glob("edited.min*"))

    # 1c. with --trust the bundle's own command runs (as `hbfuzz run` would run it)
    r = hbfuzz(python, "replay", str(bad), "--times", "1", "--json", "--trust")
    assert r.returncode in (0, 1), r.stderr[-2000:]
    assert marker.exists()
    warn = [line for line in r.stderr.splitlines() if "warning: --trust" in line]
    assert len(warn) == 1 and "cluster.command" in warn[0]
    assert json.loads(r.stdout.strip().splitlines()[-1])["runs"] == 1


def _bundle_of(config: dict) -> Bundle:
    return Bundle(config=config, seed=1, schedule="wait 500ms\n", signature="sig")


def test_refusals_that_need_no_run(tmp_path, python):
    cfg = load_config(MAELSTROM, ["target.node=nodes/pb_kv.py", "workload.name=lin-kv"],
                      load_module=False).to_dict()
    marker = tmp_path / "setup-ran"

    # a target.setup added by the bundle: refused; the setup never runs
    setup = json.loads(json.dumps(cfg))
    setup["target"]["setup"] = ["/bin/sh", "-c", f"touch {marker}"]
    save_bundle(tmp_path / "setup.hbfz", _bundle_of(setup))
    r = hbfuzz(python, "replay", str(tmp_path / "setup.hbfz"), "--times", "1", timeout=60)
    assert r.returncode == 2 and "target.setup" in r.stderr and not marker.exists()

    # a target this checkout does not have: refused, naming where it looked
    other = json.loads(json.dumps(cfg))
    other["target"]["name"] = "nosuchtarget"
    save_bundle(tmp_path / "other.hbfz", _bundle_of(other))
    r = hbfuzz(python, "replay", str(tmp_path / "other.hbfz"), timeout=60)
    assert r.returncode == 2 and "no local target named 'nosuchtarget'" in r.stderr
    assert "--target" in r.stderr

    # --target naming another target: its name differs, refused
    r = hbfuzz(python, "replay", str(tmp_path / "other.hbfz"), "--target",
               str(MAELSTROM.parent), timeout=60)
    assert r.returncode == 2 and "target.name" in r.stderr
    # --target of a file that is not there
    r = hbfuzz(python, "replay", str(tmp_path / "other.hbfz"), "--target",
               str(tmp_path / "nope.toml"), timeout=60)
    assert r.returncode == 2 and "no such target.toml" in r.stderr
