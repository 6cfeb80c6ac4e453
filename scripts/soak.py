"""Soak test of a long campaign: does the fuzzer leak or slow down over time?

Why a separate script (not a test): a soak is only meaningful over many
minutes, longer than the suite's budget. It starts ``hbfuzz run`` as a child
process (its own session, ``--no-ui``), samples the fuzzer once per
``--interval`` from /proc and the campaign directory, and at the end judges
the samples:

* resident memory (VmRSS), open file descriptors, threads, descendant
  processes (each the peak of probes every 2 s since the previous sample: they
  rise and fall with every execution) and campaign directory size must not
  grow without bound: the
  least-squares slope per hour over the **second half** of the run (after
  warm-up: imports, caches, the first coverage) must stay under a limit
  (``--max-rss-mb-h`` etc., defaults below);
* the execution rate (execs/h from ``execs_done`` in fuzzer_stats) of the
  last quarter must be at least ``1 - --max-rate-decay`` (default 80%) of
  the first quarter's.

Exit 0 if every rule holds, 1 if one fails (or the campaign is still running
``max(120 s, duration/4)`` after its duration: hung, stopped with SIGTERM, then
SIGKILL), 2 if the campaign could not be run. Prints one line per sample (``--quiet`` to silence) and, last, one JSON
object (``--json``) with the samples' summary, the slopes and the verdicts.

    .venv/bin/python scripts/soak.py --duration 1h --target targets/pysyncobj/target.toml --json
    .venv/bin/python scripts/soak.py --duration 10m --interval 30s --json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fuzzer.campaign.commands import parse_budget  # noqa: E402
from fuzzer.campaign.outdir import CampaignDir  # noqa: E402
from fuzzer.errors import InputError  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Sample:
    """One look at the fuzzer process and its campaign directory."""

    t: float  # seconds since the campaign started
    rss_mb: float
    fds: int
    threads: int
    children: int  # all descendants (nodes, mediator helpers, the reaper)
    dir_mb: float
    execs_done: int


def _proc_status(pid: int) -> tuple[float, int]:
    rss_kb, threads = 0, 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss_kb / 1024.0, threads


def _descendants(pid: int) -> int:
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        parent[int(d.name)] = int(fields[1])
    n = 0
    for p in parent:
        q, hops = p, 0
        while q in parent and hops < 64:
            q = parent[q]
            hops += 1
            if q == pid:
                n += 1
                break
    return n


def _dir_mb(root: Path) -> float:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total / 1e6


def _execs_done(out: Path) -> int:
    """Executions committed (state.msgpack is rewritten right after each one)."""
    try:
        st = CampaignDir(out).load_state() or {}
        return int(st.get("progress", {}).get("execs_done", 0))
    except (InputError, TypeError, ValueError, AttributeError):
        return 0


PROBE = 2.0  # seconds between probes of the process figures (peaks per sample)


def probe(pid: int) -> tuple[float, int, int, int]:
    """(RSS MB, fds, threads, descendants) of the fuzzer now."""
    rss, threads = _proc_status(pid)
    return rss, len(os.listdir(f"/proc/{pid}/fd")), threads, _descendants(pid)


def peak(a: tuple[float, int, int, int] | None, b: tuple[float, int, int, int]
         ) -> tuple[float, int, int, int]:
    """Element-wise maximum. Why peaks: fds and child processes go up and down with
    every execution (start-up, teardown); a sample at a random phase makes a sawtooth
    whose slope is noise. The peak over each interval is what must not grow."""
    return b if a is None else (max(a[0], b[0]), max(a[1], b[1]), max(a[2], b[2]),
                                max(a[3], b[3]))


def sample(pid: int, out: Path, t: float,
           peaks: tuple[float, int, int, int] | None = None) -> Sample:
    """One sample: the peaks of the process figures since the last one, the campaign
    directory size and the executions done now."""
    rss, fds, threads, children = peak(peaks, probe(pid))
    return Sample(round(t, 1), round(rss, 2), fds, threads, children,
                  round(_dir_mb(out), 3), _execs_done(out))


def slope_per_hour(ts: list[float], ys: list[float]) -> float:
    """Least-squares slope of ``ys`` over ``ts`` (seconds), per hour (0 with < 2 points)."""
    n = len(ts)
    if n < 2:
        return 0.0
    mt, my = sum(ts) / n, sum(ys) / n
    var = sum((t - mt) ** 2 for t in ts)
    if var == 0:
        return 0.0
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / var * 3600.0


def quarter_rate(done_at: list[float], t0: float, t1: float, first: bool) -> float:
    """Executions per hour in the first (or last) quarter of ``[t0, t1]``, from the
    times executions finished: (completions - 1) over the span between the first and
    the last of them (not a count per quarter, which a 25 s execution quantises)."""
    q = (t1 - t0) / 4.0
    lo, hi = (t0, t0 + q) if first else (t1 - q, t1)
    sel = [t for t in done_at if lo <= t <= hi]
    if len(sel) < 2 or sel[-1] <= sel[0]:
        return 0.0
    return (len(sel) - 1) * 3600.0 / (sel[-1] - sel[0])


LIMITS = {  # per hour, over the second half
    "rss_mb": 64.0,
    "fds": 60.0,
    "threads": 30.0,
    "children": 10.0,
    "dir_mb": 500.0,
}


def judge(samples: list[Sample], done_at: list[float], limits: dict[str, float],
          max_decay: float) -> dict:
    """Slopes (whole run and second half), the execution-rate quarters and the verdicts."""
    half = [s for s in samples if s.t >= samples[-1].t / 2] if samples else []
    slopes, slopes_all, failures = {}, {}, []
    for k, lim in limits.items():
        ts = [s.t for s in half]
        slopes[k] = round(slope_per_hour(ts, [float(getattr(s, k)) for s in half]), 3)
        slopes_all[k] = round(slope_per_hour([s.t for s in samples],
                                             [float(getattr(s, k)) for s in samples]), 3)
        if slopes[k] > lim:
            failures.append(f"{k} grows {slopes[k]:.2f}/h over the second half (limit {lim}/h)")
    t0, t1 = (samples[0].t, samples[-1].t) if samples else (0.0, 0.0)
    r1, r4 = quarter_rate(done_at, t0, t1, True), quarter_rate(done_at, t0, t1, False)
    decay = (1.0 - r4 / r1) if r1 > 0 else 0.0
    if r1 > 0 and decay > max_decay:
        failures.append(f"execution rate fell {decay:.0%} from the first to the last quarter "
                        f"({r1:.0f}/h -> {r4:.0f}/h, limit {max_decay:.0%})")
    if r1 <= 0:
        failures.append("no execution finished in the first quarter")
    return {
        "slopes_per_hour_second_half": slopes,
        "slopes_per_hour_whole_run": slopes_all,
        "limits_per_hour": limits,
        "rate_first_quarter_per_h": round(r1, 1),
        "rate_last_quarter_per_h": round(r4, 1),
        "rate_decay": round(decay, 4),
        "max_rate_decay": max_decay,
        "failures": failures,
        "ok": not failures,
    }


def _range(samples: list[Sample], k: str) -> dict[str, float]:
    v = [float(getattr(s, k)) for s in samples]
    return {"first": v[0], "last": v[-1], "min": min(v), "max": max(v)} if v else {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="targets/pysyncobj/target.toml")
    ap.add_argument("--duration", default="1h")
    ap.add_argument("--interval", default="1m", help="sampling period (default 1m)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scheduler", default="qlearning")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="passed to hbfuzz run --set (repeatable)")
    ap.add_argument("-o", "--output", help="campaign directory (default: a temp dir, removed)")
    ap.add_argument("--max-rate-decay", type=float, default=0.20)
    for k, v in LIMITS.items():
        ap.add_argument(f"--max-{k.replace('_', '-')}-h", dest=f"lim_{k}", type=float, default=v,
                        help=f"max slope of {k} per hour over the second half (default {v})")
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    duration = parse_budget(args.duration)
    interval = parse_budget(args.interval)
    limits = {k: getattr(args, f"lim_{k}") for k in LIMITS}

    tmp = tempfile.TemporaryDirectory(prefix="hbfuzz-soak-")
    out = Path(args.output) if args.output else Path(tmp.name) / "out"
    logpath = Path(tmp.name) / "fuzzer.log"
    cmd = [sys.executable, "-m", "fuzzer", "run", args.target, "-o", str(out), "--duration",
           f"{duration:.0f}s", "--seed", str(args.seed), "--scheduler", args.scheduler,
           "--no-ui", *(x for o in args.overrides for x in ("--set", o))]
    log = open(logpath, "wb")  # noqa: SIM115 (closed in finally)
    t_start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    grace = max(120.0, 0.25 * duration)  # the last execution may finish after the budget
    overrun = False
    samples: list[Sample] = []
    done_at: list[float] = []  # when each execution was committed (polled every 0.5 s)
    last_done = 0
    peaks: tuple[float, int, int, int] | None = None
    next_probe = 0.0
    try:
        next_at = t_start + interval
        while proc.poll() is None:
            time.sleep(max(0.0, min(0.5, next_at - time.monotonic())))
            n = _execs_done(out)
            if n > last_done:
                done_at.extend([time.monotonic() - t_start] * (n - last_done))
                last_done = n
            if time.monotonic() - t_start > duration + grace:  # hung: stop it, fail
                overrun = True
                break
            if time.monotonic() >= next_probe:  # peaks between samples: see peak()
                next_probe = time.monotonic() + PROBE
                try:
                    peaks = peak(peaks, probe(proc.pid))
                except (OSError, ValueError):
                    pass
            if time.monotonic() < next_at:
                continue
            next_at += interval
            try:
                s = sample(proc.pid, out, time.monotonic() - t_start, peaks)
            except (OSError, ValueError):
                continue  # the fuzzer just ended
            peaks = None
            samples.append(s)
            if not args.quiet:
                print(json.dumps(asdict(s)), flush=True)
        if not overrun:
            rc = proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
    wall = time.monotonic() - t_start
    if overrun:
        rc = proc.returncode
    if overrun or rc not in (0, 1) or len(samples) < 4:
        tail = b""
        try:
            tail = logpath.read_bytes()[-1500:]
        except OSError:
            pass
        err = (f"campaign still running {grace:.0f}s after its duration (hung?), stopped"
               if overrun else f"campaign exited {rc} with {len(samples)} samples")
        res = {"benchmark": "soak", "ok": False, "error": err, "overrun": overrun,
               "samples": [asdict(x) for x in samples], "log_tail": tail.decode("utf-8", "replace")}
        print(json.dumps(res) if args.json else res["error"])
        tmp.cleanup()
        return 1 if overrun else 2
    verdict = judge(samples, done_at, limits, args.max_rate_decay)
    stats = {}
    try:
        for line in (out / "fuzzer_stats").read_text().splitlines():
            k, _, v = line.partition(":")
            stats[k.strip()] = v.strip()
    except OSError:
        pass
    res = {
        "benchmark": "soak",
        "target": args.target,
        "duration_s": round(wall, 1),
        "interval_s": interval,
        "samples": len(samples),
        "exit_code": rc,
        "execs_done": max(last_done, samples[-1].execs_done),
        "exec_errors": int(stats.get("exec_errors", "0") or 0),
        "saved_crashes": int(stats.get("saved_crashes", "0") or 0),
        "saved_hangs": int(stats.get("saved_hangs", "0") or 0),
        **{k: _range(samples, k) for k in LIMITS},
        **verdict,
        "unit": "slopes per hour; rss MB, dir MB, rate execs/h",
    }
    tmp.cleanup()
    if args.json:
        print(json.dumps(res, sort_keys=True))
    else:
        for f in res["failures"]:
            print("FAIL:", f)
        print("soak", "ok" if res["ok"] else "FAILED", json.dumps(verdict["slopes_per_hour_second_half"]))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
