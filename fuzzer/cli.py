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

    return parser


def _check_history(args: argparse.Namespace) -> int:
    from fuzzer.checkers.command import check_history

    return check_history(args.files, model=args.model, fmt=args.format, timeout=args.timeout)


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
