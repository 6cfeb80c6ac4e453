"""``fuzzer_stats`` and ``plot_data``: the campaign's figures, in AFL++'s formats.

Why AFL's formats: users and their scripts already read ``key : value``
lines and a plot_data CSV. :class:`Progress` holds the running counters (it
round-trips through the campaign state, so a resumed campaign keeps counting
where it stopped); :func:`stats_lines` and :func:`plot_row` format them
(pure); :func:`parse_stats` and :func:`read_plot` read them back for
``hbfuzz stats`` / ``hbfuzz plot`` and tolerate a torn last line.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from fuzzer.errors import InputError

__all__ = [
    "Progress",
    "STATS_KEYS",
    "PLOT_COLUMNS",
    "stats_lines",
    "plot_row",
    "plot_header",
    "parse_stats",
    "read_stats",
    "read_plot",
]

STATS_KEYS = (
    "start_time", "last_update", "run_time", "fuzzer_pid", "execs_done", "execs_per_hour",
    "execs_per_sec", "hb_coverage", "code_edges", "corpus_count", "saved_crashes",
    "saved_hangs", "unique_findings", "total_findings", "last_find", "last_new_cov",
    "stability", "exec_errors", "policy_entropy", "exploration", "states_seen", "scheduler",
    "seed", "target", "target_version", "hbfuzz_version", "command_line",
)
PLOT_COLUMNS = (
    "relative_time", "execs_done", "hb_coverage", "code_edges", "corpus_count",
    "saved_crashes", "saved_hangs",
)


@dataclass
class Progress:
    """Running counters of a campaign (times are ``time.time()`` seconds; 0 = never).

    ``run_time`` accumulates over sessions (a resumed campaign adds to it);
    ``session_start`` is when this process started fuzzing.
    """

    start_time: float = 0.0
    run_time_before: float = 0.0  # run time of earlier sessions
    session_start: float = 0.0
    execs_done: int = 0
    exec_errors: int = 0
    hb_coverage: int = 0
    code_edges: int = 0
    corpus_count: int = 0
    last_find: float = 0.0
    last_new_cov: float = 0.0
    current_exec: int = 0
    current_step: int = 0
    current_schedule: list[str] = field(default_factory=list)

    def run_time(self, now: float | None = None) -> float:
        now = time.time() if now is None else now
        live = now - self.session_start if self.session_start else 0.0
        return self.run_time_before + max(0.0, live)

    def execs_per_hour(self, now: float | None = None) -> float:
        rt = self.run_time(now)
        return self.execs_done * 3600.0 / rt if rt > 0 else 0.0

    def stability(self) -> float:
        """Percent of executions that ran without a harness error (cluster failed to
        start, an internal error): the campaign's analogue of AFL's stability."""
        if self.execs_done == 0:
            return 100.0
        return 100.0 * (self.execs_done - self.exec_errors) / self.execs_done

    _SAVED = ("start_time", "execs_done", "exec_errors", "hb_coverage", "code_edges",
              "corpus_count", "last_find", "last_new_cov")

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self._SAVED}
        d["run_time"] = self.run_time(now)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Progress:
        p = cls()
        names = {f.name: f.type for f in fields(cls)}
        for k in cls._SAVED:
            if k in d:
                v = d[k]
                if (isinstance(v, bool) or not isinstance(v, int | float)
                        or (isinstance(v, float) and not math.isfinite(v))):
                    raise InputError(f"progress.{k}: expected a number, got {v!r}")
                setattr(p, k, int(v) if names[k] in ("int", int) else float(v))
        rt = d.get("run_time", 0.0)
        if isinstance(rt, int | float) and not isinstance(rt, bool):
            p.run_time_before = float(rt)
        return p

    def snapshot(self) -> dict[str, Any]:
        return asdict(self)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return "0"
        return f"{v:.2f}" if abs(v) < 1e6 else f"{v:.0f}"
    return str(v).replace("\n", " ")


def stats_lines(values: Mapping[str, Any]) -> str:
    """``key : value`` lines (AFL's fuzzer_stats), known keys first in a fixed order."""
    keys = [k for k in STATS_KEYS if k in values] + sorted(k for k in values
                                                           if k not in STATS_KEYS)
    width = max((len(k) for k in keys), default=0)
    return "".join(f"{k.ljust(width)} : {_fmt(values[k])}\n" for k in keys)


def parse_stats(text: str, path: str = "fuzzer_stats") -> dict[str, str]:
    """Parse ``key : value`` lines; a line without `` : `` is an InputError naming it."""
    out: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if " : " not in line:
            raise InputError("expected 'key : value'", path=path, where=f"line {lineno}")
        k, v = line.split(" : ", 1)
        out[k.strip()] = v.strip()
    return out


def read_stats(path: str | Path) -> dict[str, str]:
    p = Path(path)
    try:
        return parse_stats(p.read_text(encoding="utf-8"), str(p))
    except FileNotFoundError:
        raise InputError("no fuzzer_stats here (not a campaign directory, or it has not "
                         "written stats yet)", path=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read ({exc})", path=str(p)) from None


def plot_header() -> str:
    return "# " + ", ".join(PLOT_COLUMNS)


def plot_row(relative_time: float, execs_done: int, hb_coverage: int, code_edges: int,
             corpus_count: int, saved_crashes: int, saved_hangs: int) -> str:
    return (f"{int(relative_time)}, {execs_done}, {hb_coverage}, {code_edges}, "
            f"{corpus_count}, {saved_crashes}, {saved_hangs}")


def read_plot(path: str | Path) -> list[dict[str, int]]:
    """The rows of a plot_data file; malformed or torn lines are skipped."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise InputError("no plot_data here", path=str(p)) from None
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", path=str(p)) from None
    rows = []
    lines = text.split("\n")
    if not text.endswith("\n"):
        lines = lines[:-1]  # a torn last line
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        parts = [x.strip() for x in line.split(",")]
        if len(parts) != len(PLOT_COLUMNS):
            continue
        try:
            rows.append(dict(zip(PLOT_COLUMNS, (int(float(x)) for x in parts), strict=True)))
        except ValueError:
            continue
    return rows
