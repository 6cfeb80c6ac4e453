"""One error hierarchy for the whole fuzzer.

Every error raised on purpose derives from :class:`HbfuzzError`. The CLI maps
:class:`UsageError` and :class:`InputError` (bad config, schedule, history,
bundle) to exit code 2 with a one-line message naming the file and the key or
line at fault.
"""

from __future__ import annotations

from instrumentation.errors import HbfuzzError, ProtocolError

__all__ = [
    "HbfuzzError",
    "ProtocolError",
    "UsageError",
    "InputError",
    "ConfigError",
    "ClusterError",
    "NetworkError",
    "CheckerError",
]


class UsageError(HbfuzzError):
    """The command line asks for something that does not exist or does not fit."""


class InputError(HbfuzzError):
    """An input file is malformed. The message names the file and key or line."""

    def __init__(self, message: str, *, path: str | None = None, where: str | None = None):
        self.path = path
        self.where = where
        prefix = ""
        if path is not None:
            prefix = f"{path}"
            if where is not None:
                prefix += f": {where}"
            prefix += ": "
        super().__init__(prefix + message)


class ConfigError(InputError):
    """A target configuration is invalid (names file and key)."""


class ClusterError(HbfuzzError):
    """A node could not be started, became unready, or a process operation failed."""


class NetworkError(HbfuzzError):
    """The network mediator could not bind, route or decode traffic."""


class CheckerError(HbfuzzError):
    """An oracle was given something it cannot check (unknown model, bad history)."""
