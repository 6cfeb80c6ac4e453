"""The root of hbfuzz's error hierarchy.

It lives in ``instrumentation`` (the light package that target nodes import)
so that the wire-format decoder shared by nodes and tracker can raise it
without pulling the fuzzer into target processes. ``fuzzer.errors`` re-exports
it and builds the rest of the hierarchy on top.
"""


class HbfuzzError(Exception):
    """Base of every error hbfuzz raises on purpose."""


class ProtocolError(HbfuzzError):
    """An event batch is malformed, truncated, oversized or of another version."""
