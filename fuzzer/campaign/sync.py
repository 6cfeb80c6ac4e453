"""``--sync-dir DIR -M NAME | -S NAME``: AFL-style sync between independent campaigns.

Why engine-free sync besides Ray: a user with a few machines and a shared
directory (NFS, a synced folder, or one machine running several campaigns)
needs no cluster software. Each campaign periodically exports its new queue
entries and findings into ``DIR/<name>/{queue,crashes,hangs}/`` (atomic
writes, AFL++ file names) and imports the other campaigns':

- queue entries: as seeds of the power scheduler (``add_seed``), or, for the
  Q-learning and random schedulers, as schedules to run as they are (the
  Q-table learns from their transitions: Q-learning is off-policy). Per peer,
  the highest imported id is kept in ``OUT/.synced/<peer>`` (AFL's
  ``.synced``), so a resumed campaign does not import twice.
- findings (``-M`` main only): each peer bundle whose signature is new here
  is copied into our ``crashes/``/``hangs/`` (deduplicated by signature, the
  same key as our own findings), so the main's directory holds the team's
  findings. Secondaries (``-S``) import queue entries only.

A sync problem (unreadable entry, full disk) is logged and skipped; the
campaign goes on.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

from fuzzer.campaign.outdir import atomic_write, entries_in
from fuzzer.errors import InputError, UsageError
from fuzzer.faults import Schedule

__all__ = ["SyncDir", "file_bundle", "ROLES"]

log = logging.getLogger("hbfuzz.campaign")
ROLES = ("main", "secondary")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_IMPORTED = 256  # schedules waiting to run, at most
MAX_STEPS = 64


class SyncDir:
    """This campaign's place in a sync directory (see module docstring)."""

    def __init__(self, root: str | Path, name: str, role: str = "secondary",
                 interval: float = 30.0) -> None:
        if not _NAME_RE.match(name or "") or name.startswith("."):
            raise UsageError(f"sync name {name!r}: use letters, digits, '_', '-', '.' "
                             "(at most 64, not starting with '.')")
        if role not in ROLES:
            raise UsageError(f"sync role {role!r}: expected main (-M) or secondary (-S)")
        if interval <= 0:
            raise UsageError("--sync-interval must be positive")
        self.root = Path(root)
        self.name = name
        self.role = role
        self.interval = float(interval)
        self.own = self.root / name
        self.exported = 0
        self.imported_queue = 0
        self.imported_findings = 0
        self.last_sync = 0.0
        self._done: set[tuple[str, str]] = set()  # (peer, file) seen already
        self._exported: set[str] = set()

    # -- the exchange ----------------------------------------------------------------

    def exchange(self, c: Any) -> None:
        """Export, then import; commit the campaign state if anything came in."""
        self.export(c)
        changed = self.import_from_peers(c)
        self.last_sync = time.time()
        if changed:
            c._commit()

    def export(self, c: Any) -> int:
        n = 0
        try:
            for sub in ("queue", "crashes", "hangs"):
                (self.own / sub).mkdir(parents=True, exist_ok=True)
            atomic_write(self.own / ".role", self.role + "\n")
        except OSError as exc:
            raise UsageError(f"--sync-dir {self.root}: cannot write ({exc.strerror})") from None
        for sub in ("queue", "crashes", "hangs"):
            for _, p in c.dir.entries(sub):
                key = f"{sub}/{p.name}"
                if key in self._exported:
                    continue
                dst = self.own / sub / p.name
                if not dst.exists():
                    atomic_write(dst, p.read_bytes())
                    n += 1
                self._exported.add(key)
        self.exported += n
        return n

    def peers(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir()
                      if p.is_dir() and p.name != self.name and _NAME_RE.match(p.name)
                      and not p.name.startswith("."))

    def import_from_peers(self, c: Any) -> bool:
        changed = False
        for peer in self.peers():
            changed |= self._import_queue(c, peer)
            if self.role == "main":
                changed |= self._import_findings(c, peer)
        return changed

    def _synced_path(self, c: Any, peer: str) -> Path:
        return c.dir.root / ".synced" / peer

    def _import_queue(self, c: Any, peer: Path) -> bool:
        marker = self._synced_path(c, peer.name)
        try:
            last = int(marker.read_text().strip())
        except (OSError, ValueError):
            last = -1
        top = last
        add_seed = getattr(c.scheduler, "add_seed", None)
        for i, p in entries_in(peer / "queue"):
            if i <= last:
                continue
            top = max(top, i)
            try:
                sched = Schedule.parse_text(p.read_text(encoding="utf-8"), str(p))
            except (OSError, UnicodeDecodeError, InputError) as exc:
                log.warning("sync: skipping %s: %s", p, exc)
                continue
            steps = list(sched.steps[:MAX_STEPS])
            if not steps:
                continue
            if callable(add_seed):
                add_seed(Schedule(tuple(steps), sched.seed))
            elif len(c.imported) < MAX_IMPORTED:
                c.imported.append(steps)
            else:
                continue
            self.imported_queue += 1
        if top > last:
            marker.parent.mkdir(exist_ok=True)
            atomic_write(marker, f"{top}\n")
            c._note(f"sync: {top - last} queue entries from {peer.name}")
            return True
        return False

    def _import_findings(self, c: Any, peer: Path) -> bool:
        from fuzzer.repro.bundle import loads_bundle

        changed = False
        for sub in ("crashes", "hangs"):
            for _, p in entries_in(peer / sub):
                key = (peer.name, f"{sub}/{p.name}")
                if key in self._done:
                    continue
                self._done.add(key)
                try:
                    data = p.read_bytes()
                    b = loads_bundle(data, str(p))
                except (OSError, InputError) as exc:
                    log.warning("sync: skipping %s: %s", p, exc)
                    continue
                line = b.verdicts[0].get("explanation", "") if b.verdicts else ""
                if file_bundle(c, c.progress.execs_done, b.signature, b.kind, str(line), data,
                               origin=f"sync {peer.name}"):
                    self.imported_findings += 1
                    changed = True
        return changed

    def stats_values(self) -> dict[str, Any]:
        return {
            "sync_dir": str(self.root),
            "sync_name": self.name,
            "sync_role": self.role,
            "sync_exported": self.exported,
            "sync_imported_queue": self.imported_queue,
            "sync_imported_findings": self.imported_findings,
            "last_sync": int(self.last_sync),
        }


def file_bundle(c: Any, n: int, signature: str, kind: str, line: str, data: bytes,
                origin: str = "") -> bool:
    """File a finding that arrives as bundle bytes (a Ray worker's, or another
    campaign's through --sync-dir): a new signature gets a bundle in crashes/ or
    hangs/, a repeat a count (``origin`` set: imported, not counted). True if new."""
    from fuzzer.campaign.findings import FindingRecord, signature_hash
    from fuzzer.campaign.outdir import FindingName, atomic_write, now_ms

    now = time.time()
    kind = "liveness" if kind == "liveness" else "safety"
    if signature in c.findings:
        if not origin:
            c.findings.repeat(signature, n, now)
            c._note(f"exec {n}: repeat of {signature}")
        return False
    fid = c.findings.next_id()
    name = FindingName(fid, signature_hash(signature), now_ms(c.progress.start_time), n + 1,
                       kind)
    path = c.dir.finding_path(kind, name)
    atomic_write(path, data)
    c.findings.add_new(FindingRecord(fid, signature, kind, path.name, 1, n, n, now, now, line))
    c.progress.last_find = now
    c._note(f"{origin or f'exec {n}'}: NEW {kind} finding {signature} -> {path.name}")
    return True


