"""Template target module: the Python side of a target (copy with target.toml and fill in).

target.toml names what it uses from here as ``module:attr``. Everything is
optional; delete what your target does not need. Loaded by path, only from
the target's own directory (never from a bundle), once per fuzzer process.
See docs/writing-a-target.md for a worked example.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from instrumentation.protocol import STATE

# Framing codecs for [network] codec = "<name>": name -> factory(**codec_params).
# A factory returns a fuzzer.network.codecs.Codec (e.g. a LengthPrefixedCodec
# subclass). Codecs only cut frames and name message types; never decode payloads.
CODECS: dict[str, Any] = {}


def client(node: str, ports: tuple[int, ...], **params: Any) -> Any:
    """[workload] client = "module:client": a client for one node's client port.

    Return an object with async ``read(key)``, ``write(key, value)`` and
    ``cas(key, expected, new)`` methods that raise on a definite failure and
    time out on an indefinite one (see docs/writing-a-target.md)."""
    raise NotImplementedError("template: write a client for your system")


async def role_probe(nodes: Mapping[str, tuple[int, ...]], timeout: float) -> dict[str, str]:
    """[roles] function = "module:role_probe": ``{node name: role}`` now.

    ``nodes`` maps node names to their leased ports; ask each node's status
    endpoint and return "leader", "follower", "candidate"... for those that
    answered within ``timeout`` seconds."""
    return {}


def no_negative_term(event: Any, ctx: Any) -> str | None:
    """[[oracles.invariants]] name = "module:no_negative_term": a function invariant.

    Called for every event; return a message to report a violation."""
    if event.kind != STATE or event.field("key") != "term":
        return None
    value = event.field("value")
    if isinstance(value, int) and value < 0:
        return f"negative term {value}"
    return None
