"""Clock skew for a node, as environment variables.

Why env: a clock fault must survive into the node process without the
fuzzer touching it afterwards. Python nodes read HBFUZZ_CLOCK_OFFSET and
HBFUZZ_CLOCK_RATE through the instrumentation; native binaries get
libfaketime (Debian package ``faketime``) through LD_PRELOAD. libfaketime
does not affect statically linked binaries and Go binaries (Go reads the
clock through the vDSO without libc). Monotonic clocks are left alone
(DONT_FAKE_MONOTONIC=1) so timeouts inside the node keep working.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass

from fuzzer.errors import ClusterError
from instrumentation.protocol import ENV_CLOCK_OFFSET, ENV_CLOCK_RATE

_FAKETIME_GLOBS = (
    "/usr/lib/*/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
    "/usr/lib64/faketime/libfaketime.so.1",
)


@dataclass(frozen=True)
class ClockSetting:
    """Offset (seconds added to wall time) and rate (1.0 = real speed)."""

    offset: float = 0.0
    rate: float = 1.0

    @property
    def is_real(self) -> bool:
        return self.offset == 0.0 and self.rate == 1.0


def find_libfaketime() -> str | None:
    for pattern in _FAKETIME_GLOBS:
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[0]
    return None


def faketime_spec(clock: ClockSetting) -> str:
    """The FAKETIME value: ``+3.5s`` or ``-10s x2``."""
    spec = f"{clock.offset:+g}s"
    if clock.rate != 1.0:
        spec += f" x{clock.rate:g}"
    return spec


def clock_env(mode: str, clock: ClockSetting, base_env: dict[str, str]) -> dict[str, str]:
    """Environment additions that apply ``clock`` to a node started with ``base_env``."""
    if clock.rate <= 0:
        raise ClusterError(f"clock rate must be > 0, got {clock.rate}")
    if clock.is_real:
        return {}
    if mode == "env":
        return {
            ENV_CLOCK_OFFSET: repr(float(clock.offset)),
            ENV_CLOCK_RATE: repr(float(clock.rate)),
        }
    lib = find_libfaketime()
    if lib is None:
        raise ClusterError(
            "libfaketime not found for a clock fault (install it: apt-get install faketime)"
        )
    preload = base_env.get("LD_PRELOAD", "")
    return {
        "LD_PRELOAD": f"{lib} {preload}".strip() if preload else lib,
        "FAKETIME": faketime_spec(clock),
        "FAKETIME_NO_CACHE": "1",
        "DONT_FAKE_MONOTONIC": "1",
    }
