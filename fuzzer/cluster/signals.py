"""SIGINT/SIGTERM in the fuzzer: kill every cluster now, then unwind cleanly.

Why shared: ``loop.add_signal_handler`` keeps one handler per signal, so
several Supervisors (parallel executions) asking for it would replace each
other's. One guard per process holds them all: on the signal it tells each
member (which SIGKILLs its node groups at once, synchronously) and cancels
the task that registered it, so ``async with Supervisor`` blocks close and
re-raise. Handlers are removed when the last member leaves.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Member(Protocol):
    def on_signal(self, signum: int) -> None: ...


class SignalGuard:
    """One asyncio signal handler per signal for every registered member."""

    def __init__(self) -> None:
        self._members: dict[Member, asyncio.Task | None] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._installed: set[int] = set()

    def add(self, member: Member, signals: tuple[int, ...]) -> None:
        """Register ``member`` with the running loop's current task."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._uninstall()
            self._members.clear()
            self._loop = loop
        for s in signals:
            if s not in self._installed:
                loop.add_signal_handler(s, self._fire, s)
                self._installed.add(s)
        self._members[member] = asyncio.current_task()

    def remove(self, member: Member) -> None:
        self._members.pop(member, None)
        if not self._members:
            self._uninstall()

    def _uninstall(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            for s in self._installed:
                self._loop.remove_signal_handler(s)
        self._installed.clear()
        self._loop = None

    def _fire(self, signum: int) -> None:
        for member, task in list(self._members.items()):
            member.on_signal(signum)
            if task is not None and not task.done():
                task.cancel()


GUARD = SignalGuard()
