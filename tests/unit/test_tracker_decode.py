"""decode_batch's fast validation path accepts and rejects exactly what the plain checks do."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from instrumentation import protocol as p
from instrumentation.errors import ProtocolError


def reference_error(events: list) -> str | None:
    """The per-event checks decode_batch documents, written plainly."""
    for ev in events:
        if type(ev) is not list or len(ev) < 5:
            return "event is not an array of at least 5 elements"
        kind = ev[4]
        n = len(p.FIELDS[kind]) if type(kind) is int and kind in p.FIELDS else None
        if n is None:
            return f"unknown event kind {kind!r}"
        if len(ev) != 5 + n:
            return f"{p.KIND_NAMES[kind]} event has {len(ev) - 5} fields, expected {n}"
        if type(ev[0]) is not int or type(ev[1]) is not int:
            return "event seq and lamport must be ints"
    return None


scalar = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.floats(allow_nan=False),
)
kinds = st.one_of(st.sampled_from(sorted(p.FIELDS)), st.integers(-2, 20), st.booleans(), st.none())


@st.composite
def event(draw):
    if draw(st.integers(0, 20)) == 0:
        return draw(
            st.one_of(
                scalar,
                st.lists(scalar, max_size=4),
                st.dictionaries(st.text(max_size=2), scalar, max_size=2),
            )
        )
    kind = draw(kinds)
    n = len(p.FIELDS[kind]) if type(kind) is int and kind in p.FIELDS else 2
    n += draw(st.sampled_from([0, 0, 0, 0, -1, 1]))
    head = [
        draw(st.one_of(st.integers(0, 99), scalar)),
        draw(st.one_of(st.integers(0, 99), scalar)),
        0,
        0,
        kind,
    ]
    return head + [draw(scalar) for _ in range(max(n, 0))]


@settings(max_examples=200, deadline=None)
@given(st.lists(event(), max_size=6))
def test_fast_validation_matches_reference(events):
    data = p.encode_batch("n1", "e", 0, 0, events)
    want = reference_error(events)
    try:
        b = p.decode_batch(data)
    except ProtocolError as exc:
        assert want is not None and str(exc) == want
    else:
        assert want is None and b.events == events
