"""The node's client protocol: newline-delimited JSON on 127.0.0.1, one object a line.

Why its own tiny protocol: the workload client and the role probe need
get/put/cas and a status view with a clear outcome per request (Jepsen's
ok / fail / info), which PySyncObj's own utility port does not give.

Request::

    {"id": 7, "op": "put", "key": "k", "value": 3, "timeout": 2.0}
    ops: get (key[, local]), put (key, value), cas (key, expected, new),
         delete (key), status, ping

Reply (same ``id``; requests on one connection may be answered out of order)::

    {"id": 7, "type": "ok" | "fail" | "info", "value": ..., "error": str | null,
     "leader": "n1" | null, "node": "n2"}

``type`` is the operation's outcome for the history: ``ok`` it happened
(value is the result), ``fail`` it certainly did not happen (cas mismatch,
bad request, PySyncObj reported the command was never appended), ``info``
unknown (timeout, leader changed while waiting): it may still take effect.
"""

from __future__ import annotations

OPS = ("get", "put", "cas", "delete", "status", "ping")
DEFAULT_TIMEOUT = 5.0  # seconds a request may wait for its command to be applied
MAX_TIMEOUT = 60.0
MAX_LINE = 1 << 20

OK, FAIL, INFO = "ok", "fail", "info"

# pysyncobj.config.FAIL_REASON codes -> (outcome, name). Codes absent from a
# version (UNKNOWN_OUTCOME is new in 0.3.14+) simply never occur there.
FAIL_REASONS: dict[int, tuple[str, str]] = {
    0: (OK, "success"),
    1: (FAIL, "queue_full"),  # never entered the queue
    2: (FAIL, "missing_leader"),  # no leader known: never appended
    3: (FAIL, "discarded"),  # its log slot was taken by another entry: never applied
    4: (FAIL, "not_leader"),  # the node it was forwarded to refused it (not appended)
    5: (INFO, "leader_changed"),  # forwarded, then the leader changed: may commit later
    6: (FAIL, "request_denied"),
    7: (INFO, "unknown_outcome"),
}


def outcome(err: int) -> tuple[str, str]:
    """PySyncObj's callback error code -> (history type, error name)."""
    return FAIL_REASONS.get(err, (INFO, f"fail_reason_{err}"))


ROLES = {0: "follower", 1: "candidate", 2: "leader"}
