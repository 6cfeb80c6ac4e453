"""The PySyncObj target: a replicated key-value store on the PySyncObj Raft library.

Modules (see README.md in this directory):

- ``envs``: one virtualenv per PySyncObj version under ``.targets/pysyncobj/``;
- ``node``: the node process (a SyncObj with a replicated dict, journal on,
  a newline-JSON client port); runs inside a version's virtualenv;
- ``store``: the replicated dict (a SyncObjConsumer); node side only;
- ``hooks``: runtime instrumentation of the unmodified library (Lamport
  stamps on every Raft message, STATE/APPLY events); node side only;
- ``codec``: the mediator codec for PySyncObj's TCP framing (never unpickles);
- ``client``: the asyncio client for the node's client port;
- ``wire``: the client protocol's constants, shared by node and client.

Nothing is imported here, so importing the package costs nothing and does not
need PySyncObj installed.
"""
