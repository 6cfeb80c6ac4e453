"""The campaign directory (AFL++ conventions) and crash-safe writes to it.

Layout::

    OUT/campaign.toml     resolved config + [campaign] seed, scheduler, started
    OUT/fuzzer_stats      ``key : value`` lines, rewritten every few seconds
    OUT/plot_data         CSV, one appended row per interval
    OUT/queue/            id:000012,src:000003,time:...,execs:...,op:...  (schedule text)
    OUT/crashes/          safety findings, one bundle per signature
    OUT/hangs/            liveness findings, one bundle per signature
    OUT/scheduler/        state.msgpack (the scheduler's learned state)
    OUT/coverage.bin      the HB-coverage and code-edge maps
    OUT/state.msgpack     counters and the findings index: the commit record
    OUT/traces/           full event traces of the last few executions only
    OUT/.work/            per-execution scratch (cluster data dirs), wiped

Why these rules: a campaign can be killed with SIGKILL at any moment. Every
file is replaced atomically (write a temp file, fsync, rename, fsync the
directory), so a reader sees the old or the new version, never half of one.
Files that several executions add to (queue entries, bundles) are written
*before* ``state.msgpack`` commits the execution; on resume,
:meth:`CampaignDir.reconcile` adopts any entry or bundle that was written
after the last commit, so nothing found is lost. ``plot_data`` is appended
one whole line per write; a torn last line is cut on resume.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from fuzzer.errors import InputError, UsageError

__all__ = [
    "atomic_write",
    "CampaignDir",
    "QueueName",
    "FindingName",
    "STATE_FORMAT",
    "entries_in",
]

STATE_FORMAT = "hbfuzz-campaign-state"
STATE_VERSION = 1
_TMP_PREFIX = ".tmp-"
_ID_RE = re.compile(r"^id:(\d{6,})(?:,|$)")


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Replace ``path`` with ``data`` atomically: temp file in the same directory,
    fsync, rename over, fsync the directory. A crash leaves the old or the new
    file (and at worst a stray ``.tmp-*`` file, removed by :meth:`CampaignDir.open`)."""
    from fuzzer.safeio import write_bytes_atomic  # temp names start with _TMP_PREFIX too

    write_bytes_atomic(path, data.encode("utf-8") if isinstance(data, str) else data)


@dataclass(frozen=True)
class QueueName:
    """The AFL-style name of a queue entry: ``id:000012,src:000003,time:1234,execs:56,op:gen``."""

    id: int
    src: int | None
    time_ms: int
    execs: int
    op: str

    def text(self) -> str:
        src = "none" if self.src is None else f"{self.src:06d}"
        op = re.sub(r"[^A-Za-z0-9_.+-]", "_", self.op) or "gen"
        return f"id:{self.id:06d},src:{src},time:{self.time_ms},execs:{self.execs},op:{op}"


@dataclass(frozen=True)
class FindingName:
    """The name of a finding bundle: ``id:000001,sig:1a2b3c4d,time:...,execs:...,kind:safety.bundle``."""

    id: int
    sig_hash: str
    time_ms: int
    execs: int
    kind: str

    def text(self) -> str:
        return (f"id:{self.id:06d},sig:{self.sig_hash},time:{self.time_ms},"
                f"execs:{self.execs},kind:{self.kind}.bundle")


def entry_id(name: str) -> int | None:
    """The id of a queue/crashes/hangs file name (None for anything else)."""
    m = _ID_RE.match(name)
    return int(m.group(1)) if m else None


def entries_in(d: Path) -> list[tuple[int, Path]]:
    """``(id, path)`` of the AFL-named files (``id:NNNNNN,...``) in directory ``d``, by
    id (none if ``d`` does not exist): this campaign's or a sync peer's."""
    out = []
    if d.is_dir():
        for p in d.iterdir():
            i = entry_id(p.name)
            if i is not None and p.is_file():
                out.append((i, p))
    return sorted(out)


class CampaignDir:
    """Paths, atomic writes and crash recovery of one campaign directory."""

    SUBDIRS = ("queue", "crashes", "hangs", "scheduler", "traces")

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # -- paths ------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.root / "campaign.toml"

    @property
    def stats_path(self) -> Path:
        return self.root / "fuzzer_stats"

    @property
    def plot_path(self) -> Path:
        return self.root / "plot_data"

    @property
    def state_path(self) -> Path:
        return self.root / "state.msgpack"

    @property
    def coverage_path(self) -> Path:
        return self.root / "coverage.bin"

    @property
    def scheduler_path(self) -> Path:
        return self.root / "scheduler" / "state.msgpack"

    @property
    def work_dir(self) -> Path:
        return self.root / ".work"

    def sub(self, name: str) -> Path:
        return self.root / name

    # -- lifecycle ----------------------------------------------------------------------

    def exists(self) -> bool:
        return self.config_path.is_file()

    def create(self) -> None:
        """Make a new campaign directory; refuses one that already holds a campaign."""
        if self.exists():
            raise UsageError(
                f"{self.root} already holds a campaign; continue it with --resume {self.root} "
                "or choose another -o directory")
        if self.root.exists() and not self.root.is_dir():
            raise UsageError(f"{self.root} exists and is not a directory")
        self.open()

    def open(self) -> None:
        """Create missing subdirectories, remove stray temp files and old scratch."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for s in self.SUBDIRS:
                (self.root / s).mkdir(exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create campaign directory {self.root}: {exc.strerror}") \
                from None
        for d in (self.root, *(self.root / s for s in self.SUBDIRS)):
            for p in d.glob(f"{_TMP_PREFIX}*"):
                try:
                    p.unlink()
                except OSError:
                    pass
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def exec_workdir(self, exec_no: int) -> Path:
        """A fresh scratch directory for one execution (cluster data dirs)."""
        d = self.work_dir / f"exec-{exec_no:06d}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        return d

    def drop_workdir(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    # -- entries -------------------------------------------------------------------------

    def entries(self, sub: str) -> list[tuple[int, Path]]:
        """``(id, path)`` of the files of ``queue``/``crashes``/``hangs``, by id."""
        return entries_in(self.root / sub)

    def write_queue_entry(self, name: QueueName, schedule_text: str) -> Path:
        p = self.root / "queue" / name.text()
        atomic_write(p, schedule_text)
        return p

    def finding_path(self, kind: str, name: FindingName) -> Path:
        return self.root / ("hangs" if kind == "liveness" else "crashes") / name.text()

    # -- traces (bounded) ------------------------------------------------------------------

    def write_trace(self, exec_no: int, data: bytes, keep: int) -> Path:
        """Keep the full trace of this execution and only the ``keep`` most recent ones."""
        d = self.root / "traces"
        p = d / f"exec:{exec_no:06d}.msgpack.lz4"
        atomic_write(p, data)
        old = sorted(x for x in d.glob("exec:*.msgpack.lz4"))
        for x in old[: max(0, len(old) - keep)]:
            try:
                x.unlink()
            except OSError:
                pass
        return p

    # -- state (the commit record) ----------------------------------------------------------

    def save_state(self, state: dict[str, Any]) -> None:
        atomic_write(self.state_path, msgpack.packb(
            {"format": STATE_FORMAT, "v": STATE_VERSION, "state": state}, use_bin_type=True))

    def load_state(self) -> dict[str, Any] | None:
        """The last committed state, or None when there is none yet."""
        p = self.state_path
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise InputError(f"cannot read ({exc.strerror})", path=str(p)) from None
        try:
            obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
        except Exception as exc:
            raise InputError(f"not a campaign state ({exc})", path=str(p)) from None
        if not isinstance(obj, dict) or obj.get("format") != STATE_FORMAT:
            raise InputError("not an hbfuzz campaign state (missing format marker)",
                             path=str(p))
        if obj.get("v") != STATE_VERSION or not isinstance(obj.get("state"), dict):
            raise InputError(f"campaign state version {obj.get('v')!r} is not supported",
                             path=str(p))
        return obj["state"]

    # -- plot_data ----------------------------------------------------------------------------

    def append_line(self, path: Path, line: str) -> None:
        """Append one whole line with a single write (a crash tears at most this line)."""
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line.rstrip("\n") + "\n").encode("utf-8"))
        finally:
            os.close(fd)

    def repair_lines(self, path: Path) -> None:
        """Cut a torn last line (no trailing newline) left by a crash mid-append."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            atomic_write(path, data[:cut])

    # -- recovery -------------------------------------------------------------------------------

    def reconcile(self, known_queue: Iterable[int], known_findings: Iterable[str]
                  ) -> tuple[list[tuple[int, Path]], list[Path]]:
        """Files written after the last commit: queue entries whose id is not in
        ``known_queue`` and bundles whose file name is not in ``known_findings``.
        The caller adopts them (nothing found is lost)."""
        kq = set(known_queue)
        kf = set(known_findings)
        new_q = [(i, p) for i, p in self.entries("queue") if i not in kq]
        new_f = [p for sub in ("crashes", "hangs") for _, p in self.entries(sub)
                 if p.name not in kf]
        return new_q, new_f


def now_ms(start: float) -> int:
    """Milliseconds since ``start`` (a ``time.time()``) for entry names."""
    return max(0, int((time.time() - start) * 1000))
