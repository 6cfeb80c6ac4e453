"""``python -m instrumentation [options] -- script.py args...``: instrument an unmodified node.

Why a launcher: any Python node gets branch coverage, a reporter, exit/SIGTERM
flushing and clock-skew faults without a line of change. The script runs
with runpy as ``__main__`` with ``sys.argv`` and ``sys.path[0]`` set as
``python script.py`` would set them (``-m module`` works as well).
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys

import instrumentation
from instrumentation import clockfault, protocol


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m instrumentation",
        description="Run a Python program with hbfuzz coverage and event reporting.",
    )
    p.add_argument(
        "--modules",
        help="comma-separated module prefixes or directories to cover "
        f"(default ${protocol.ENV_COVERAGE}, else the script's directory)",
    )
    p.add_argument("--node", help=f"node name (default ${protocol.ENV_NODE})")
    p.add_argument("--tracker", help=f"tracker host:port (default ${protocol.ENV_TRACKER})")
    p.add_argument("--execution", help=f"execution id (default ${protocol.ENV_EXECUTION})")
    p.add_argument("--no-coverage", action="store_true", help="report events only")
    p.add_argument("--edges-out", help="write the covered edge ids here at exit (one per line)")
    p.add_argument("-m", dest="module", help="run a module instead of a script")
    p.add_argument("argv", nargs=argparse.REMAINDER, help="-- script.py args...")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    rest = list(args.argv)
    if rest and rest[0] == "--":
        rest = rest[1:]
    if args.module is None and not rest:
        _parser().error("give a script (-- script.py args...) or -m module")
    try:
        clockfault.install_from_env()
    except clockfault.ClockFaultError as exc:
        print(f"python -m instrumentation: {exc}", file=sys.stderr)
        return 2

    if args.module is not None:
        target_dir = os.getcwd()
        sys.argv = [args.module, *rest]
        sys.path[0] = target_dir
    else:
        script = os.path.abspath(rest[0])
        if not os.path.exists(script):
            print(f"python -m instrumentation: {rest[0]}: no such file", file=sys.stderr)
            return 2
        target_dir = os.path.dirname(script)
        sys.argv = [rest[0], *rest[1:]]
        sys.path[0] = target_dir

    env = os.environ
    tracker = args.tracker if args.tracker is not None else env.get(protocol.ENV_TRACKER, "")
    modules = args.modules or env.get(protocol.ENV_COVERAGE) or target_dir
    if args.node or args.tracker is not None or args.execution or not instrumentation.enabled():
        instrumentation.configure(
            node=args.node, tracker=tracker, execution=args.execution, coverage=""
        )
    cov = None
    if not args.no_coverage and (instrumentation.enabled() or args.edges_out):
        instrumentation.stop_coverage()
        cov = instrumentation.start_coverage(modules)

    code = 0
    reason = "exit"
    try:
        if args.module is not None:
            runpy.run_module(args.module, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        c = exc.code
        code = c if c is None or isinstance(c, int) else 1
        raise
    except BaseException:
        code, reason = 1, "exception"
        raise
    finally:
        instrumentation.exit_event(reason, code)
        if cov is not None and args.edges_out:
            try:
                with open(args.edges_out, "w") as f:
                    f.writelines(f"{e}\n" for e in sorted(cov.edges))
            except OSError as exc:
                print(f"python -m instrumentation: {args.edges_out}: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
