"""The workload of an execution, whatever its kind, behind one small interface.

Why: the execution runs clients in the background during the steps, stops
them before the final heal's checks, probes liveness through them, runs a
final phase and hands the history to an oracle. Maelstrom workloads
(fuzzer/workload/maelstrom.py) and the ``kv`` register workload (kvload.py)
do this differently; :class:`MaelstromLoad` and :class:`KvLoad` give both
the same calls, and each picks its own oracle (the Maelstrom checker of the
workload; linearizability under ``oracles.model`` for ``kv``).

``cancel_to_stop``: a Maelstrom client loop only stops at a deadline fixed
when it starts, so the execution cancels it (an op in flight stays an
invocation without completion, which a history reads as ``info``); the kv
clients stop cleanly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

from fuzzer.checkers import linearizability
from fuzzer.checkers.verdict import Verdict, ok, unknown, violated
from fuzzer.checkers.workloads import check_workload_async
from fuzzer.execution.kvload import KvWorkload
from fuzzer.workload.history import History
from fuzzer.workload.maelstrom import GeneratedOp, MaelstromWorkload

__all__ = ["Load", "MaelstromLoad", "KvLoad", "FOREVER", "lin_verdict"]

FOREVER = 10.0 * 365 * 86400  # "until cancelled" for a Maelstrom client loop


class Load(Protocol):
    cancel_to_stop: bool

    async def run(self) -> None: ...
    def stop(self) -> None: ...
    async def probe(self) -> bool: ...
    async def final(self) -> None: ...
    def history(self) -> History: ...
    def choices(self) -> dict[tuple[int, int], GeneratedOp]: ...
    def summary(self) -> dict[str, int]: ...
    async def check(self) -> list[Verdict]: ...


class MaelstromLoad:
    """A :class:`MaelstromWorkload` as a :class:`Load`; ``checker``: its checker name."""

    cancel_to_stop = True

    def __init__(self, wl: MaelstromWorkload, checker: str | None, checker_timeout: float,
                 final_timeout: float) -> None:
        self.wl = wl
        self.checker = checker
        self.checker_timeout = checker_timeout
        self.final_timeout = final_timeout
        self._probes = 0

    async def run(self) -> None:
        await self.wl.run(FOREVER)

    def stop(self) -> None:
        pass  # cancelled by the execution

    async def probe(self) -> bool:
        """One op on the next node through a fresh process: its read if it has one."""
        wl = self.wl
        k = self._probes
        self._probes += 1
        op = wl.next_op(-2, k)
        if wl.read_f is not None and op.f != wl.read_f:
            op = dataclasses.replace(op, f=wl.read_f, value=None)
        op = dataclasses.replace(op, think=0.0)
        process = wl._new_process(wl.nodes[k % len(wl.nodes)])
        status, _ = await wl.perform(process, op, record=False)
        return status == "ok"

    async def final(self) -> None:
        await self.wl.final(self.final_timeout)

    def history(self) -> History:
        return self.wl.history()

    def choices(self) -> dict[tuple[int, int], GeneratedOp]:
        return self.wl.choices()

    def summary(self) -> dict[str, int]:
        return self.wl.summary()

    async def check(self) -> list[Verdict]:
        if not self.checker:
            return []
        params: dict[str, Any] = dict(self.wl.check_params())
        if self.checker == "lin-kv":
            params["timeout"] = self.checker_timeout
        return [await check_workload_async(self.checker, self.history(), **params)]


def lin_verdict(result: linearizability.LinearizabilityResult, model: str) -> Verdict:
    """A linearizability result as the ``linearizability`` oracle's verdict."""
    oracle = "linearizability"
    key = result.key if result.key is None or isinstance(result.key, str | int) else repr(result.key)
    if result.ok:
        return ok(oracle, model, f"linearizable per key ({result.partitions} key(s))")
    if result.verdict == linearizability.NOT_LINEARIZABLE:
        return violated(
            oracle,
            "not-linearizable",
            f"model {model}, key {key!r}: {len(result.unplaced)} op(s) could not be placed "
            f"after a linearizable prefix of {len(result.prefix)}",
            result.unplaced,
            key=key,
            prefix_length=len(result.prefix),
            prefix_tail=[op.describe() for op in result.prefix[-10:]],
        )
    return unknown(oracle, model, f"undecided ({result.reason or 'unknown'})", key=key)


class KvLoad:
    """A :class:`KvWorkload` as a :class:`Load`, checked for linearizability per key."""

    cancel_to_stop = False

    def __init__(self, wl: KvWorkload, model: str | None, checker_timeout: float) -> None:
        self.wl = wl
        self.model = model
        self.checker_timeout = checker_timeout

    async def run(self) -> None:
        await self.wl.run()

    def stop(self) -> None:
        self.wl.stop()

    async def probe(self) -> bool:
        return await self.wl.probe()

    async def final(self) -> None:
        pass

    def history(self) -> History:
        return self.wl.history()

    def choices(self) -> dict[tuple[int, int], GeneratedOp]:
        return self.wl.choices()

    def summary(self) -> dict[str, int]:
        return self.wl.summary()

    async def check(self) -> list[Verdict]:
        if not self.model:
            return []
        result = await linearizability.check_async(self.history(), self.model,
                                                   self.checker_timeout)
        return [lin_verdict(result, self.model)]


def maelstrom_config(params: Mapping[str, Any]) -> dict[str, Any]:
    """Extra :class:`fuzzer.workload.maelstrom.WorkloadConfig` fields from ``workload.params``."""
    allowed = {"values", "max_delta", "topology", "final_timeout", "final_interval"}
    return {k: v for k, v in params.items() if k in allowed}
