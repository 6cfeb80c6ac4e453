"""``hbfuzz check-history``: check history files for linearizability.

Prints ``FILE<TAB>linearizable|not-linearizable|unknown`` per file and returns
the exit code: 0 if all are linearizable, 1 if any is not, 3 if any is unknown
(time budget spent) and none is not-linearizable. An unknown model or format is
a :class:`UsageError`; a malformed file an :class:`InputError` (both exit 2).
"""

from __future__ import annotations

import sys
from typing import TextIO

from fuzzer.checkers.linearizability import LINEARIZABLE, NOT_LINEARIZABLE, check
from fuzzer.checkers.models import MODELS, get_model, model_names
from fuzzer.errors import CheckerError, InputError, UsageError
from fuzzer.workload.importers import FORMATS, load_history

__all__ = ["check_history"]

EXIT_OK = 0
EXIT_NOT_LINEARIZABLE = 1
EXIT_UNKNOWN = 3


def check_history(
    files: list[str],
    model: str,
    fmt: str,
    timeout: float,
    *,
    out: TextIO | None = None,
) -> int:
    """Check each file with ``model``, reading it as ``fmt``; see module doc."""
    out = out or sys.stdout
    if model not in MODELS:
        raise UsageError(f"unknown model {model!r}; valid models: {', '.join(model_names())}")
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    if timeout <= 0:
        raise UsageError(f"--timeout must be positive, got {timeout}")
    m = get_model(model)
    verdicts = []
    for path in files:
        history = load_history(path, fmt)
        try:
            result = check(history, m, timeout)
        except CheckerError as exc:
            raise InputError(str(exc), path=path) from None
        verdicts.append(result.verdict)
        print(f"{path}\t{result.verdict}", file=out, flush=True)
    if NOT_LINEARIZABLE in verdicts:
        return EXIT_NOT_LINEARIZABLE
    if all(v == LINEARIZABLE for v in verdicts):
        return EXIT_OK
    return EXIT_UNKNOWN
