"""``hbfuzz replay`` and ``hbfuzz minimize``: the thin shells over replay.py and minimize.py.

Why here and not in cli.py: cli.py only parses; these functions load the
bundle, pick a scratch directory for the runs (removed afterwards), print
progress and the summary, write results (the replay facts back into the
bundle, the minimal bundle next to the original, never over it) and turn
the outcome into an exit code.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from fuzzer.errors import UsageError

__all__ = ["replay_command", "minimize_command", "EXIT_REPRODUCED", "EXIT_NOT_REPRODUCED"]

EXIT_OK = 0
EXIT_REPRODUCED = 1  # replay: the finding came back (like "findings")
EXIT_NOT_REPRODUCED = 3  # minimize: the finding never came back, nothing written


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _scratch(bundle_path: Path, what: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"hbfuzz-{what}-{bundle_path.stem[:20]}-"))


def _resolve(bundle: Any, path: Path, args: Any) -> Any:
    """The config to run (fuzzer/repro/trust.py): the bundle's data with the local
    target's commands and code, or with ``--trust`` the bundle's own (warned)."""
    from fuzzer.repro.trust import resolve_config

    trust = bool(getattr(args, "trust", False))
    res = resolve_config(bundle.config, str(path), target=getattr(args, "target", None),
                         trust=trust)
    if res.trusted:
        what = (f"differs from {res.local} in {', '.join(res.differing)}" if res.differing
                else f"matches {res.local}" if res.local else "no local target compared")
        _err(f"hbfuzz: warning: --trust: running the commands and code of {path}'s own "
             f"config ({what})")
    return res


def replay_command(args: Any) -> int:
    """``hbfuzz replay BUNDLE [--times N] [--json] [--no-order] [--order-timeout S]
    [--target PATH] [--trust]``."""
    from fuzzer.network.ordering import DEFAULT_TIMEOUT
    from fuzzer.repro.bundle import load_bundle, save_bundle
    from fuzzer.repro.replay import replay_bundle

    path = Path(args.bundle)
    bundle = load_bundle(path)
    if args.times < 1:
        raise UsageError(f"--times must be >= 1, not {args.times}")
    resolved = _resolve(bundle, path, args)
    quiet = args.json
    order = getattr(args, "order", True)
    order_timeout = getattr(args, "order_timeout", None)
    if order_timeout is None:
        order_timeout = DEFAULT_TIMEOUT
    elif not order_timeout > 0:
        raise UsageError(f"--order-timeout must be > 0 seconds, not {order_timeout}")

    if order and not quiet and not bundle.choices_obj(str(path)).order:
        _err("the bundle records no delivery order (written by an older hbfuzz, or a "
             "minimised bundle): replaying without order enforcement")

    def on_run(i: int, out: Any) -> None:
        if not quiet:
            got = "reproduced" if bundle.signature in out.signatures else (
                ", ".join(out.signatures) or "no finding")
            _err(f"run {i}/{args.times}: {got} ({out.seconds:.1f}s)")

    work = _scratch(path, "replay")
    try:
        report = asyncio.run(replay_bundle(bundle, str(path), args.times, work, on_run=on_run,
                                           order=order, order_timeout=order_timeout,
                                           config=resolved.config))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    save_bundle(path, bundle.with_replay(**report.facts()))
    if args.json:
        print(json.dumps({"bundle": str(path), **report.to_dict()}, sort_keys=True))
    else:
        print("\n".join(report.lines()))
        print(f"stored in {path} (replay.rate = {report.rate:.2f})")
    return EXIT_REPRODUCED if report.hits else EXIT_OK


def minimize_command(args: Any) -> int:
    """``hbfuzz minimize BUNDLE [-o OUT] [--budget 30m] [--times K] [--target PATH]
    [--trust]``."""
    from fuzzer.campaign.commands import parse_budget
    from fuzzer.repro.bundle import load_bundle, save_bundle
    from fuzzer.repro.ddmin import Budget
    from fuzzer.repro.minimize import MinimizeOptions, MinimizeProgress, minimize
    from fuzzer.repro.replay import (
        BundleRunner,
        config_nodes,
        minimal_bundle,
        minimal_path,
        plan_from_bundle,
        workload_values,
    )

    path = Path(args.bundle)
    bundle = load_bundle(path)
    out = Path(args.output) if args.output else minimal_path(path)
    if out.resolve() == path.resolve():
        raise UsageError(f"-o {out}: the minimal bundle is never written over the original")
    try:
        seconds = parse_budget(args.budget) if args.budget else None
    except UsageError:
        raise UsageError(f"--budget: expected a duration like 90s, 30m or 2h, got {args.budget!r}"
                         ) from None
    if args.times is not None and args.times < 1:
        raise UsageError(f"--times must be >= 1, not {args.times}")
    resolved = _resolve(bundle, path, args)
    rate = bundle.replay.get("rate")
    rate = float(rate) if isinstance(rate, int | float) and 0 < rate <= 1 else None
    names = config_nodes(resolved.config, str(path))
    plan = plan_from_bundle(bundle, str(path), nodes=names)
    nodes = len(names)
    options = MinimizeOptions(
        rate=rate, measure_runs=args.measure, times=args.times, verify_runs=args.verify,
        n_nodes=nodes, workload=workload_values(bundle),
    )
    budget = Budget(seconds=seconds, tries=args.max_tries)
    _err(f"minimising {path}: {plan.size} steps, finding {bundle.signature}")
    _err("reproduction rate: " + (f"{rate:.0%} (from the last replay)" if rate is not None
                                  else f"measuring with {args.measure} runs"))

    def progress(p: MinimizeProgress) -> None:
        _err(f"[{p.elapsed:6.0f}s] {p.phase:<8} size {p.size:>3}  left ~{p.left:<3} "
             f"tried {p.tried:<4} runs {p.runs:<4} K={p.k}")

    work = _scratch(path, "minimize")

    async def go() -> Any:
        async with BundleRunner(bundle, str(path), work, config=resolved.config) as runner:
            return await minimize(plan, runner, bundle.signature, options, budget=budget,
                                  progress=progress)

    try:
        result = asyncio.run(go())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not result.reproduced:
        _err(f"the finding did not reproduce in {result.runs} runs; nothing written")
        for note in result.notes:
            _err(note)
        if args.json:
            print(json.dumps({"bundle": str(path), "written": None, **result.to_dict()}))
        return EXIT_NOT_REPRODUCED
    save_bundle(out, minimal_bundle(bundle, result))
    if args.json:
        print(json.dumps({"bundle": str(path), "written": str(out), **result.to_dict()},
                         sort_keys=True))
    else:
        print("\n".join(result.summary()))
        print("minimal schedule:")
        print(result.minimal.schedule.to_text().rstrip())
        print(f"written to {out}")
        print(f"replay it: hbfuzz replay {out}")
    return EXIT_OK
