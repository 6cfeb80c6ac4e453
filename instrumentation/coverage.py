"""Branch coverage for Python nodes with ``sys.monitoring``, first hit then DISABLE.

Why this design: coverage has to run inside every node for hours, so its
steady-state cost must be near zero. ``sys.monitoring`` lets a callback
return ``DISABLE`` to switch its event off at that code location, so each
branch costs one callback when first seen and nothing afterwards.

* Code is filtered per code object: a global ``PY_START`` callback decides
  once per code object whether its file is under one of the configured
  module prefixes (or directories); matching code gets local branch events,
  every other code object gets ``DISABLE`` and is never seen again.
* An edge id is a stable 32-bit int: a hash of (file path relative to its
  package root, code qualname, first line, source offset, destination
  offset), so the same program gives the same ids in every run and process.
* Python 3.14+ has ``BRANCH_LEFT``/``BRANCH_RIGHT``, one event per direction,
  each disabled on its first hit: exact and free after warm-up.
* Python 3.12/3.13 only has ``BRANCH``, and DISABLE there switches off *both*
  directions of the branch. So a site is disabled once both directions were
  seen; a site that keeps taking one direction is *parked* (disabled) after
  :data:`PARK_AFTER` hits, and :meth:`BranchCoverage.rearm` (called by the
  reporter thread with exponential backoff) re-enables parked sites with
  ``sys.monitoring.restart_events()`` so a later first hit of the other
  direction is still seen. Known limit: a direction taken only while its
  site is parked is missed until the next re-arm.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence

PARK_AFTER = 64  # one-sided hits before a 3.12/3.13 branch site is parked
REARM_MIN = 0.01  # seconds; backoff between re-arms doubles up to REARM_MAX
REARM_MAX = 1.0

_OWN_DIR = os.path.dirname(os.path.abspath(__file__))


def edge_id(relname: str, qualname: str, firstlineno: int, src: int, dst: int) -> int:
    """The stable 32-bit id of the branch edge ``src -> dst`` in one code object."""
    key = f"{relname}\0{qualname}\0{firstlineno}\0{src}\0{dst}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "big")


def split_prefixes(spec: str | Iterable[str]) -> list[str]:
    """``"a.b, c"`` or ``["a.b", "c"]`` -> ``["a.b", "c"]`` (blank entries dropped)."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    return [s.strip() for s in items if s and s.strip()]


class CodeFilter:
    """Decides which source files are covered and names them stably.

    A prefix is either a dotted module prefix (``raft`` covers ``raft`` and
    ``raft.log``, not ``raftx``) resolved against ``search_path`` (sys.path),
    or a directory / file path (contains a path separator or exists on disk),
    which covers every file below it. :meth:`relname` returns the file's name
    relative to the root it was found under, which keeps edge ids identical
    across checkouts in different directories.
    """

    def __init__(self, prefixes: Sequence[str], search_path: Sequence[str] | None = None) -> None:
        self.modules: list[str] = []
        self.paths: list[str] = []
        for p in prefixes:
            if os.sep in p or p.endswith(".py") or os.path.isdir(p):
                self.paths.append(os.path.abspath(p))
            else:
                self.modules.append(p)
        roots = sys.path if search_path is None else search_path
        self.roots = sorted({os.path.abspath(r or os.curdir) for r in roots}, key=len, reverse=True)
        self._cache: dict[str, str | None] = {}

    def relname(self, filename: str) -> str | None:
        """The stable relative name of a covered file, or None if not covered."""
        hit = self._cache.get(filename, "")
        if hit != "":
            return hit
        result = self._decide(filename)
        self._cache[filename] = result
        return result

    def _decide(self, filename: str) -> str | None:
        if not filename or filename.startswith("<"):
            return None
        path = os.path.abspath(filename)
        if path.startswith(_OWN_DIR + os.sep):
            return None  # never cover the instrumentation itself
        for root in self.paths:
            if path == root:
                return os.path.basename(path)
            if path.startswith(root.rstrip(os.sep) + os.sep):
                return os.path.relpath(path, os.path.dirname(root.rstrip(os.sep))).replace(
                    os.sep, "/"
                )
        if not self.modules:
            return None
        for root in self.roots:
            if not path.startswith(root.rstrip(os.sep) + os.sep):
                continue
            rel = os.path.relpath(path, root)
            mod = rel[:-3] if rel.endswith(".py") else rel
            mod = mod.replace(os.sep, ".")
            if mod.endswith(".__init__"):
                mod = mod[: -len(".__init__")]
            for prefix in self.modules:
                if mod == prefix or mod.startswith(prefix + "."):
                    return rel.replace(os.sep, "/")
        return None


def _free_tool_id() -> int:
    mon = sys.monitoring
    if mon.get_tool(mon.COVERAGE_ID) is None:
        return mon.COVERAGE_ID
    for tool in range(6):
        if mon.get_tool(tool) is None:
            return tool
    raise RuntimeError("no free sys.monitoring tool id")


class BranchCoverage:
    """Branch-edge coverage of the code a :class:`CodeFilter` selects.

    ``on_edge(edge_id)`` is called once per new edge, on the thread that hit
    it; it must be cheap and must not raise. :attr:`edges` holds every edge
    seen so far.
    """

    def __init__(self, code_filter: CodeFilter, on_edge: Callable[[int], None] | None = None):
        self.filter = code_filter
        self.on_edge = on_edge
        self.edges: set[int] = set()
        self.tool: int | None = None
        self.parked = 0  # sites parked since the last re-arm (3.12/3.13)
        self.rearms = 0
        self._codes: dict[int, tuple] = {}  # id(code) -> (code, relname, sites)
        self._split = hasattr(sys.monitoring.events, "BRANCH_LEFT")
        self._next_rearm = 0.0
        self._backoff = REARM_MIN

    @property
    def active(self) -> bool:
        return self.tool is not None

    def start(self) -> BranchCoverage:
        mon = sys.monitoring
        ev = mon.events
        tool = _free_tool_id()
        mon.use_tool_id(tool, "hbfuzz-coverage")
        self.tool = tool
        mon.register_callback(tool, ev.PY_START, self._on_start)
        if self._split:
            mon.register_callback(tool, ev.BRANCH_LEFT, self._on_branch_split)
            mon.register_callback(tool, ev.BRANCH_RIGHT, self._on_branch_split)
            self._local = ev.BRANCH_LEFT | ev.BRANCH_RIGHT
        else:
            mon.register_callback(tool, ev.BRANCH, self._on_branch)
            self._local = ev.BRANCH
        mon.set_events(tool, ev.PY_START)
        return self

    def stop(self) -> None:
        """Switch every event off and free the tool id."""
        tool = self.tool
        if tool is None:
            return
        self.tool = None
        mon = sys.monitoring
        ev = mon.events
        try:
            mon.set_events(tool, ev.NO_EVENTS)
            for code, _rel, _sites in self._codes.values():
                mon.set_local_events(tool, code, ev.NO_EVENTS)
            for e in (
                ev.PY_START,
                ev.BRANCH,
                getattr(ev, "BRANCH_LEFT", 0),
                getattr(ev, "BRANCH_RIGHT", 0),
            ):
                if e:
                    mon.register_callback(tool, e, None)
        finally:
            mon.free_tool_id(tool)

    # -- callbacks (hot only on first hits) -----------------------------------

    def _on_start(self, code, offset):
        if self.tool is None:
            return sys.monitoring.DISABLE
        key = id(code)
        if key not in self._codes:
            rel = self.filter.relname(code.co_filename)
            if rel is None:
                return sys.monitoring.DISABLE
            self._codes[key] = (code, (rel, code.co_qualname, code.co_firstlineno), {})
            sys.monitoring.set_local_events(self.tool, code, self._local)
        return sys.monitoring.DISABLE

    def _new_edge(self, name: tuple, src: int, dst: int) -> None:
        eid = edge_id(name[0], name[1], name[2], src, dst)
        if eid not in self.edges:
            self.edges.add(eid)
            if self.on_edge is not None:
                self.on_edge(eid)

    def _on_branch_split(self, code, src, dst):
        entry = self._codes.get(id(code))
        if entry is not None:
            self._new_edge(entry[1], src, dst)
        return sys.monitoring.DISABLE

    def _on_branch(self, code, src, dst):
        entry = self._codes.get(id(code))
        if entry is None:
            return sys.monitoring.DISABLE
        sites = entry[2]
        site = sites.get(src)
        if site is None:
            sites[src] = [dst, -1, 1]  # first dst, second dst, one-sided hits
            self._new_edge(entry[1], src, dst)
            return None
        if dst == site[0] or dst == site[1]:
            if site[1] != -1:
                return sys.monitoring.DISABLE  # both directions known
            site[2] += 1
            if site[2] >= PARK_AFTER:
                site[2] = 0
                self.parked += 1
                return sys.monitoring.DISABLE
            return None
        site[1] = dst
        self._new_edge(entry[1], src, dst)
        return sys.monitoring.DISABLE

    # -- re-arming parked sites (3.12/3.13) ------------------------------------

    def rearm(self, now: float | None = None) -> bool:
        """Re-enable parked sites if their backoff has passed; True if it did.

        Call periodically from any thread (the reporter does). Backoff starts
        at :data:`REARM_MIN` and doubles up to :data:`REARM_MAX` while sites
        keep getting parked, so a program in steady state pays almost nothing.
        """
        if self.tool is None or self._split or not self.parked:
            return False
        now = time.monotonic() if now is None else now
        if now < self._next_rearm:
            return False
        self.parked = 0
        self.rearms += 1
        sys.monitoring.restart_events()
        self._next_rearm = now + self._backoff
        self._backoff = min(REARM_MAX, self._backoff * 2)
        return True
