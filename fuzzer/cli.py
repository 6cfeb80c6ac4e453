"""The ``hbfuzz`` command line. Thin: parses arguments, then calls the modules.

Exit codes: 0 success / nothing found, 1 findings (or a not-linearizable
history), 2 usage or input error, 3 unknown verdict (checker ran out of time).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep one line
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


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


if __name__ == "__main__":
    sys.exit(main())
