"""hbfuzz instrumentation: what target nodes import to report to the fuzzer.

Kept light on purpose (msgpack, lz4 and grpcio only, imported lazily), since
it runs inside target processes. See docs/event-protocol.md.
"""
