"""The liveness oracle: after the final heal, the cluster must serve again.

Why: many real bugs are not wrong answers but a cluster that never recovers
(a stuck election, a lost commit notification, a node that stays partitioned
in its own head). After the last fault is undone the execution runs a
configured *probe* — an async callable such as "write a key and read it
back" — retrying until it succeeds or a time bound runs out. Failure to
recover is a ``hang`` verdict of kind ``liveness``, kept apart from safety
findings because users budget them separately (and because slow machines
make hangs noisier than wrong answers).

Bounded in time and attempts; each attempt has its own timeout; the check is
a plain coroutine, so cancelling the task that awaits it cancels the
in-flight probe (probes must honour cancellation, as asyncio code does).
A probe succeeds by returning anything but ``False``; raising or returning
``False`` counts as a failed attempt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from fuzzer.checkers.verdict import LIVENESS, Verdict, violated
from fuzzer.errors import ConfigError

ORACLE = "liveness"
NAME = "hang"
MAX_LISTED_ATTEMPTS = 20

Probe = Callable[[], Awaitable[Any]]


@dataclass(frozen=True)
class LivenessPolicy:
    """How long the cluster gets to serve the probe again after the final heal.

    ``bound``: seconds from the start of the check to the last moment a probe
    may succeed. ``attempt_timeout``: seconds per attempt (cut to what is left
    of the bound). ``interval``: pause after a failed attempt. ``max_attempts``:
    a hard cap, so a probe that fails instantly cannot spin.
    """

    bound: float = 10.0
    attempt_timeout: float = 2.0
    interval: float = 0.2
    max_attempts: int = 1000

    def __post_init__(self) -> None:
        for name in ("bound", "attempt_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"liveness {name} must be > 0, got {getattr(self, name)!r}")
        if self.interval < 0:
            raise ValueError(f"liveness interval must be >= 0, got {self.interval!r}")
        if self.max_attempts < 1:
            raise ValueError(f"liveness max_attempts must be >= 1, got {self.max_attempts!r}")

    @classmethod
    def from_config(cls, table: Mapping[str, Any], *, source: str = "<config>") -> LivenessPolicy:
        """From a config table like ``{bound = 10, attempt_timeout = 2}``; errors name the key."""
        known = {f.name for f in fields(cls)}
        for key, value in table.items():
            if key not in known:
                raise ConfigError(
                    f"unknown key; valid: {', '.join(sorted(known))}",
                    path=source,
                    where=f"liveness.{key}",
                )
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(
                    f"must be a number, got {value!r}", path=source, where=f"liveness.{key}"
                )
        try:
            return cls(**dict(table))
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc), path=source, where="liveness") from None


@dataclass(frozen=True)
class Attempt:
    """One probe attempt: when it started (seconds into the check), how long it
    took, and how it ended (``ok``, ``timeout``, ``error``, ``refused``)."""

    number: int
    started: float
    elapsed: float
    outcome: str
    error: str = ""


async def check_liveness(
    probe: Probe,
    policy: LivenessPolicy | None = None,
    *,
    probe_name: str = "probe",
    clock: Callable[[], float] = time.monotonic,
) -> Verdict:
    """Retry ``probe`` until it succeeds or ``policy.bound`` runs out.

    Returns an ``ok`` verdict on the first success, else a ``hang`` violation
    (kind ``liveness``) whose offending values are the last attempts.
    """
    policy = policy or LivenessPolicy()
    start = clock()
    deadline = start + policy.bound
    attempts: list[Attempt] = []
    while len(attempts) < policy.max_attempts:
        t0 = clock()
        remaining = deadline - t0
        if remaining <= 0:
            break
        error = ""
        try:
            async with asyncio.timeout(min(policy.attempt_timeout, remaining)):
                result = await probe()
        except TimeoutError:
            outcome = "timeout"
        except Exception as exc:  # any failure of the probe is a failed attempt
            outcome, error = "error", f"{type(exc).__name__}: {exc}"
        else:
            outcome = "refused" if result is False else "ok"
        attempts.append(Attempt(len(attempts) + 1, t0 - start, clock() - t0, outcome, error))
        if outcome == "ok":
            return Verdict(
                ORACLE,
                "ok",
                NAME,
                f"{probe_name} served after {len(attempts)} attempt(s), "
                f"{clock() - start:.2f} s into a bound of {policy.bound} s",
                details=_details(attempts, policy, probe_name, clock() - start),
                kind=LIVENESS,
            )
        pause = min(policy.interval, deadline - clock())
        if pause > 0:
            await asyncio.sleep(pause)
    last = attempts[-1] if attempts else None
    why = f"; last attempt: {last.outcome}" + (f" ({last.error})" if last and last.error else "")
    return violated(
        ORACLE,
        NAME,
        f"{probe_name} not served within {policy.bound} s after {len(attempts)} attempt(s)"
        + (why if last else ""),
        attempts[-MAX_LISTED_ATTEMPTS:],
        kind=LIVENESS,
        **_details(attempts, policy, probe_name, clock() - start),
    )


def _details(attempts: list[Attempt], policy: LivenessPolicy, probe_name: str, elapsed: float):
    counts: dict[str, int] = {}
    for a in attempts:
        counts[a.outcome] = counts.get(a.outcome, 0) + 1
    return {
        "probe": probe_name,
        "attempts": len(attempts),
        "outcomes": counts,
        "elapsed": round(elapsed, 3),
        "bound": policy.bound,
        "last_error": next((a.error for a in reversed(attempts) if a.error), ""),
    }


def tcp_line_probe(
    host: str,
    port: int,
    request: bytes,
    expect: bytes | Callable[[bytes], bool] | None = None,
    *,
    limit: int = 65536,
) -> Probe:
    """A probe that connects, sends ``request``, and reads one reply line.

    Succeeds when a line arrives and matches ``expect`` (the exact line
    without its newline, or a predicate; ``None``: any line). The connection
    is closed after every attempt, also when the attempt is cancelled.
    """

    async def probe() -> bool:
        reader, writer = await asyncio.open_connection(host, port, limit=limit)
        try:
            writer.write(request)
            await writer.drain()
            line = await reader.readline()
            if not line.endswith(b"\n"):
                raise ConnectionError("connection closed before a full reply line")
            line = line.rstrip(b"\r\n")
            if expect is None:
                return True
            return expect(line) if callable(expect) else line == expect
        finally:
            writer.close()

    probe.__name__ = f"tcp_line_probe({host}:{port})"
    return probe
