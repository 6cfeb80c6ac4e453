import pytest

from instrumentation import protocol as p
from instrumentation.errors import ProtocolError


def test_batch_round_trip():
    events = [
        [1, 1, 10, 20, p.SEND, "n2", "append", 7],
        [2, 5, 11, 21, p.RECV, "n3", "vote", 3, 4],
        [3, 6, 12, 22, p.STATE, "role", "leader"],
    ]
    data = p.encode_batch("n1", "e1", 0, 2, events)
    b = p.decode_batch(data)
    assert (b.node, b.execution, b.batch_seq, b.dropped) == ("n1", "e1", 0, 2)
    assert b.events == events
    ev = p.to_event(b.node, b.events[1])
    assert ev.field("sender_lamport") == 4 and ev.field("peer") == "n3"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d[:3],
        lambda d: b"XX" + d[2:],
        lambda d: d[:2] + bytes([9]) + d[3:],
        lambda d: d[:-3],
        lambda d: d[:4] + (2**31).to_bytes(4, "big") + d[8:],
    ],
    ids=["truncated-header", "magic", "version", "truncated-body", "bomb"],
)
def test_bad_batches_raise_protocol_error(mutate):
    data = p.encode_batch("n1", "e1", 0, 0, [[1, 1, 0, 0, p.LOG, "info", "x" * 100]])
    with pytest.raises(ProtocolError):
        p.decode_batch(mutate(data))


def test_wrong_field_count_rejected():
    data = p.encode_batch("n1", "e1", 0, 0, [[1, 1, 0, 0, p.SEND, "n2"]])
    with pytest.raises(ProtocolError, match="fields"):
        p.decode_batch(data)
