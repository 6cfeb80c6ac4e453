"""The replicated state machine: a dict with get/put/cas/delete (node side only).

Why a ``SyncObjConsumer`` rather than attributes of the SyncObj subclass: the
consumer exists before SyncObj's tick thread starts (so replaying the journal
at start-up never finds it half-built), and PySyncObj's log compaction dumps
exactly the consumer's data (``self.data``), nothing of the instrumentation.

Every operation, reads included, goes through the Raft log (``@replicated``)
so that a completed ``get`` is linearizable; ``read_local`` is the cheap,
possibly stale local read. Commands are pickled by PySyncObj itself (that is
its wire format); our arguments are JSON values.
"""

from __future__ import annotations

from pysyncobj import SyncObjConsumer, replicated


class KVStore(SyncObjConsumer):
    """A replicated dict; methods run on every node when their entry is applied."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict = {}

    @replicated
    def get(self, key):
        return self.data.get(key)

    @replicated
    def put(self, key, value):
        self.data[key] = value
        return value

    @replicated
    def cas(self, key, expected, new):
        current = self.data.get(key)
        if current != expected:
            return [False, current]
        self.data[key] = new
        return [True, new]

    @replicated
    def delete(self, key):
        return self.data.pop(key, None)

    def read_local(self, key):
        return self.data.get(key)
