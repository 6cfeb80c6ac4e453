"""The ``hbfuzz`` command line. Thin: parses arguments, then calls the modules.

Exit codes: 0 success / nothing found, 1 findings (or a not-linearizable
history), 2 usage or input error, 3 unknown verdict (checker ran out of time).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from fuzzer import __version__
from fuzzer.errors import HbfuzzError, InputError, UsageError

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_UNKNOWN = 3

EPILOG = """\
exit codes:
  0  success, no findings
  1  findings (check-history: not linearizable)
  2  usage, config or input error
  3  unknown verdict (check-history: time budget exhausted)
"""

RUN_EPILOG = """\
exit codes:
  0  the campaign found nothing
  1  findings (safety in OUT/crashes/, liveness in OUT/hangs/)
  2  usage or config error (or the campaign directory could not be written)

campaign directory: OUT/queue/ (schedules with new HB coverage), OUT/crashes/ and
OUT/hangs/ (reproducer bundles), OUT/scheduler/ (learned state), OUT/campaign.toml
(resolved config and seed), OUT/fuzzer_stats, OUT/plot_data.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep one line
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)



def _add_trust_arguments(p: argparse.ArgumentParser) -> None:
    """--target/--trust of replay and minimize: whose commands and code a bundle runs."""
    p.add_argument("--target", metavar="PATH",
                   help="the local target.toml (or its directory) whose commands and code run "
                   "(default: targets/NAME/target.toml of this checkout, NAME from the bundle)")
    p.add_argument("--trust", action="store_true",
                   help="run the bundle's own commands and code (cluster.command, target.setup, "
                   "env, module:attr...) instead of refusing when they differ from the local "
                   "target's: only for bundles you trust")

def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hbfuzz",
        description="A greybox fuzzer for distributed systems, guided by happens-before coverage.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hbfuzz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser(
        "check-history",
        help="check a client history for linearizability",
        description="Check a client history for linearizability. Prints FILE<TAB>verdict.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--model", required=True, help="register, cas-register, kv, counter, set")
    p.add_argument("--format", default="hbfuzz", help="jepsen-log, edn or hbfuzz (default)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per file (default 60)")
    p.set_defaults(handler=_check_history)

    p = sub.add_parser(
        "check-config",
        help="validate a target config and summarise it",
        description="Validate a target.toml. Prints 'FILE: ok' and a summary, or one error line "
        "naming the file and key (exit 2).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", metavar="TARGET.toml")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (repeatable), e.g. --set schedule.step=1.5s",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="print only 'FILE: ok'")
    p.set_defaults(handler=_check_config)

    p = sub.add_parser(
        "targets",
        help="list the bundled targets",
        description="List the targets bundled under targets/ (name, description, config file).",
    )
    p.set_defaults(handler=_targets)

    p = sub.add_parser(
        "run",
        help="run a fuzzing campaign (or --resume one)",
        description="Run a campaign on TARGET.toml: executions back to back, guided by the "
        "scheduler, writing queue/, crashes/, hangs/, fuzzer_stats and plot_data to OUT. "
        "Ctrl-C (or SIGTERM) stops cleanly: the running execution is torn down and a summary "
        "printed. With --resume OUT, TARGET.toml is optional (OUT/campaign.toml is used).",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", metavar="TARGET.toml", nargs="?")
    p.add_argument("-o", "--output", metavar="OUT", help="campaign directory (default: out)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--duration", metavar="TIME",
                        help="stop after TIME of fuzzing, e.g. 90s, 30m, 2h, 1d")
    budget.add_argument("--executions", type=int, metavar="N",
                        help="stop after N executions (this session)")
    p.add_argument("--seed", type=int, help="campaign seed (default: random; recorded)")
    p.add_argument("--scheduler", choices=("qlearning", "random", "power"),
                   help="fault scheduler (default: qlearning)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (repeatable), e.g. --set schedule.step=1.5s; "
        "scheduler.KEY=VALUE sets a scheduler parameter (e.g. scheduler.alpha=0.3)",
    )
    p.add_argument("--resume", metavar="OUT", help="continue the campaign in OUT")
    p.add_argument("--no-ui", action="store_true",
                   help="no status screen: print a progress line every few seconds")
    p.add_argument("--progress-interval", type=float, default=5.0, metavar="SECONDS",
                   help=argparse.SUPPRESS)
    p.add_argument("--keep-traces", type=int, default=5, metavar="N",
                   help="full event traces kept for the last N executions (default 5)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="run N executions at once, each with its own cluster (default 1)")
    p.add_argument("--ray", metavar="auto|ADDRESS",
                   help="run the executions as Ray tasks (pip install 'hbfuzz[ray]'): auto "
                   "joins the cluster RAY_ADDRESS names, else starts a local one (127.0.0.1 "
                   "only); ADDRESS joins that cluster; see docs/scaling.md")
    p.add_argument("--sync-dir", metavar="DIR",
                   help="exchange queue entries and findings with other campaigns in DIR")
    role = p.add_mutually_exclusive_group()
    role.add_argument("-M", dest="main", metavar="NAME",
                      help="this campaign's name in --sync-dir, as the main (imports findings)")
    role.add_argument("-S", dest="secondary", metavar="NAME",
                      help="this campaign's name in --sync-dir, as a secondary")
    p.add_argument("--sync-interval", type=float, default=30.0, metavar="SECONDS",
                   help="seconds between syncs (default 30)")
    p.set_defaults(handler=_run)

    p = sub.add_parser(
        "stats",
        help="print a campaign's fuzzer_stats and findings",
        description="Print OUT/fuzzer_stats and the findings table (exit 1 if any findings).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out", metavar="OUT")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(handler=_stats)

    p = sub.add_parser(
        "plot",
        help="plot a campaign's coverage and findings over time (PNG)",
        description="Render OUT/plot_data as a PNG (default OUT/plot.png).",
    )
    p.add_argument("out", metavar="OUT")
    p.add_argument("-o", "--output", metavar="PNG", help="where to write the PNG")
    p.set_defaults(handler=_plot)

    p = sub.add_parser(
        "show",
        help="render a finding (or a campaign) as a self-contained HTML report",
        description="Write an HTML report: for a bundle, the space-time diagram, the oracle's "
        "explanation, the schedule and how to replay (plus ShiViz and EDN exports); for a "
        "campaign directory, a summary with a report per finding. Prints the page's path.",
    )
    from fuzzer.report.command import add_show_arguments

    add_show_arguments(p)
    p.set_defaults(handler=_show)

    p = sub.add_parser(
        "replay",
        help="re-run a finding's bundle N times: reproduction rate, HB similarity",
        description="Re-run BUNDLE N times with its recorded choices fed back by key; report "
        "how many runs gave the same finding signature and how close each run's HB coverage "
        "was to the original (Jaccard). The rate is stored back in the bundle. The commands "
        "and code that run come from the local target (targets/NAME/target.toml or --target); "
        "a bundle whose own differ is refused (exit 2) unless --trust.",
        epilog="exit codes:\n  0  the finding did not reproduce\n  1  it reproduced in at "
        "least one run\n  2  usage or input error\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("bundle", metavar="BUNDLE")
    p.add_argument("--times", type=int, default=5, metavar="N", help="runs (default 5)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--no-order", dest="order", action="store_false",
                   help="do not enforce the recorded message delivery order (for comparison)")
    p.add_argument("--order-timeout", type=float, default=None, metavar="SECONDS",
                   help="how long a message may be held for its recorded predecessors "
                   "before enforcement gives up (default 0.2)")
    _add_trust_arguments(p)
    p.set_defaults(handler=_replay)

    p = sub.add_parser(
        "minimize",
        help="shrink a finding's bundle to the smallest run that still fails",
        description="Delta-debug BUNDLE's schedule (ddmin over steps), then simplify each step "
        "(shorter, smaller partitions, pause instead of kill, one link instead of a "
        "partition), then the workload (fewer clients, keys, ops). A candidate still fails if "
        "the same signature reproduces in at least one of K runs, K adapted to the measured "
        "reproduction rate. Writes the minimal bundle next to the original (never over it). "
        "Runs the local target's commands and code, as replay does (--target, --trust).",
        epilog="exit codes:\n  0  minimal bundle written\n  2  usage or input error\n"
        "  3  the finding did not reproduce; nothing written\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("bundle", metavar="BUNDLE")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="minimal bundle path (default: BUNDLE's name with .min)")
    p.add_argument("--budget", default="30m", metavar="TIME",
                   help="stop trying candidates after TIME (default 30m)")
    p.add_argument("--times", type=int, metavar="K",
                   help="runs per candidate (default: adapted to the reproduction rate)")
    p.add_argument("--measure", type=int, default=5, metavar="N",
                   help="runs measuring the rate when the bundle has none (default 5)")
    p.add_argument("--verify", type=int, default=5, metavar="N",
                   help="runs of the minimal bundle for its rate (default 5)")
    p.add_argument("--max-tries", type=int, metavar="N", help="at most N candidates")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    _add_trust_arguments(p)
    p.set_defaults(handler=_minimize)

    return parser


def _check_history(args: argparse.Namespace) -> int:
    from fuzzer.checkers.command import check_history

    return check_history(args.files, model=args.model, fmt=args.format, timeout=args.timeout)


def _check_config(args: argparse.Namespace) -> int:
    from fuzzer.config import load_config, summary

    cfg = load_config(args.config, args.overrides)
    print(f"{args.config}: ok")
    if not args.quiet:
        for line in summary(cfg):
            print(f"  {line}")
    return EXIT_OK


def _deferred(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """A handler that imports ``module.name`` only when its subcommand runs.

    Why: ``hbfuzz --help`` and the light subcommands stay fast, without loading
    the campaign, report and repro machinery they do not need.
    """

    def handler(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), name)(args)

    return handler


_run = _deferred("fuzzer.campaign.commands", "run_command")
_stats = _deferred("fuzzer.campaign.commands", "stats_command")
_plot = _deferred("fuzzer.campaign.commands", "plot_command")
_show = _deferred("fuzzer.report.command", "show_command")
_replay = _deferred("fuzzer.repro.commands", "replay_command")
_minimize = _deferred("fuzzer.repro.commands", "minimize_command")


def _targets(args: argparse.Namespace) -> int:
    from fuzzer.config import REPO, bundled_targets

    for t in bundled_targets():
        rel = t.path.relative_to(REPO) if t.path.is_relative_to(REPO) else t.path
        desc = f"(unreadable: {t.error})" if t.error else t.description
        print(f"{t.name:<12} {rel}  {desc}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args))
    except (UsageError, InputError) as exc:
        print(f"hbfuzz: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except HbfuzzError as exc:
        print(f"hbfuzz: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("hbfuzz: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`hbfuzz targets | head -1`): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
