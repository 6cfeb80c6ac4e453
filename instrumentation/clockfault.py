"""Clock-skew faults for Python nodes: make the node's clocks run offset and/or scaled.

Why patch the ``time`` module: a Python node (and asyncio, which reads
``time.monotonic()`` through the module) only sees time through it, so
replacing ``time.time``/``time.monotonic`` and their ``_ns`` variants skews
election timeouts, leases and timestamps without touching the node's code.
The launcher (``python -m instrumentation``) applies it from the environment
before the node's code runs, so ``from time import time`` in the node also
gets the skewed function. Limits: C code reading the clock directly
(``datetime.now()``, ``time.sleep``, ``threading`` timeouts bound at import)
is not affected.

Skewed time is ``origin + (real - origin) * rate + offset`` where ``origin``
is the real time when the skew was installed: the clock jumps by ``offset``
seconds at install and then runs ``rate`` times as fast. ``rate`` must be
> 0, so ``monotonic`` stays monotonic (a negative offset only shifts it).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

from instrumentation import protocol
from instrumentation.errors import HbfuzzError

_PATCHED = ("time", "time_ns", "monotonic", "monotonic_ns")
_real = {name: getattr(time, name) for name in _PATCHED}


class ClockFaultError(HbfuzzError):
    """A clock-skew setting is invalid (names the environment variable)."""


@dataclass(frozen=True)
class Skew:
    """An offset (seconds) and a rate multiplier for a node's clocks."""

    offset: float = 0.0
    rate: float = 1.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.offset):
            raise ClockFaultError(f"{protocol.ENV_CLOCK_OFFSET}: offset must be finite")
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ClockFaultError(f"{protocol.ENV_CLOCK_RATE}: rate must be a finite number > 0")

    @property
    def identity(self) -> bool:
        return self.offset == 0.0 and self.rate == 1.0

    def at(self, real: float, origin: float) -> float:
        """Skewed seconds for real seconds ``real`` (skew installed at ``origin``)."""
        return origin + (real - origin) * self.rate + self.offset

    def at_ns(self, real_ns: int, origin_ns: int) -> int:
        """Skewed nanoseconds, in integer arithmetic for the base."""
        return origin_ns + round((real_ns - origin_ns) * self.rate) + round(self.offset * 1e9)


def skew_from_env(environ: Mapping[str, str] | None = None) -> Skew | None:
    """The skew requested by HBFUZZ_CLOCK_OFFSET / HBFUZZ_CLOCK_RATE, or None."""
    env = os.environ if environ is None else environ
    raw_off = env.get(protocol.ENV_CLOCK_OFFSET, "").strip()
    raw_rate = env.get(protocol.ENV_CLOCK_RATE, "").strip()
    if not raw_off and not raw_rate:
        return None
    values = []
    for name, raw, default in (
        (protocol.ENV_CLOCK_OFFSET, raw_off, 0.0),
        (protocol.ENV_CLOCK_RATE, raw_rate, 1.0),
    ):
        try:
            values.append(float(raw) if raw else default)
        except ValueError:
            raise ClockFaultError(f"{name}: {raw!r} is not a number") from None
    skew = Skew(values[0], values[1])
    return None if skew.identity else skew


def install(skew: Skew) -> None:
    """Patch the time module so this process sees ``skew``. Replaces any earlier skew."""
    uninstall()
    o_time = _real["time"]()
    o_time_ns = _real["time_ns"]()
    o_mono = _real["monotonic"]()
    o_mono_ns = _real["monotonic_ns"]()
    r_time, r_time_ns = _real["time"], _real["time_ns"]
    r_mono, r_mono_ns = _real["monotonic"], _real["monotonic_ns"]
    at, at_ns = skew.at, skew.at_ns

    def skewed_time() -> float:
        return at(r_time(), o_time)

    def skewed_time_ns() -> int:
        return at_ns(r_time_ns(), o_time_ns)

    def skewed_monotonic() -> float:
        return at(r_mono(), o_mono)

    def skewed_monotonic_ns() -> int:
        return at_ns(r_mono_ns(), o_mono_ns)

    time.time = skewed_time
    time.time_ns = skewed_time_ns
    time.monotonic = skewed_monotonic
    time.monotonic_ns = skewed_monotonic_ns


def uninstall() -> None:
    """Restore the real clocks."""
    for name, fn in _real.items():
        setattr(time, name, fn)


def install_from_env(environ: Mapping[str, str] | None = None) -> Skew | None:
    """Install the skew the environment asks for; returns it (None: clocks untouched)."""
    skew = skew_from_env(environ)
    if skew is not None:
        install(skew)
    return skew
