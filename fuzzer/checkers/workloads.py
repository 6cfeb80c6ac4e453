"""Checkers for the Maelstrom workloads (and generic targets with the same APIs).

Why these and why so: each Maelstrom workload states its own correctness
condition (``/work/shared/maelstrom-protocol.md``), and a fuzzer finding is only
believable if the checker allows exactly what the semantics allow. So every
checker here takes indefinite (``info``) operations into account the Jepsen
way — an ``info`` op may or may not have taken effect — and reports the ops
that prove a violation, not just a boolean.

Every checker has the signature ``check(history, **params) -> Verdict`` and is
found by workload name in :data:`CHECKERS` (:func:`get_checker`,
:func:`check_workload`). Common parameters of the checkers that judge "final
reads": ``nodes`` (the nodes that must each have a final read; a node without
one makes the verdict ``unknown``), ``node_of`` (``Operation -> node``, which
node a call went to; default: its client ``process``) and ``healed_at``
(only reads invoked at or after this history time are final; default: the last
``ok`` read per node is its final read).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from itertools import accumulate, filterfalse
from typing import Any

from fuzzer.checkers.pairing import (
    FAIL,
    INFO,
    OK,
    NodeOf,
    by_process,
    final_reads,
    freeze,
    operations,
)
from fuzzer.checkers.verdict import Verdict, ok, unknown, violated
from fuzzer.errors import CheckerError, UsageError
from fuzzer.workload.history import Operation

Checker = Callable[..., Verdict]
MAX_LISTED = 100  # at most this many items of each anomaly list go into details


def _listed(items: Iterable) -> list:
    return sorted(items, key=repr)[:MAX_LISTED]


def _final_read_checker(
    name: str, doc: str, core: Callable[..., Verdict], **fixed: str
) -> Checker:
    """A public checker taking the common final-read parameters, bound to one workload.

    Why a factory: broadcast and g-set (and the two counters) are one core each
    judged for different workloads; their public functions differ only in the
    fixed arguments they pass, so one signature serves all of them.
    """

    def check(
        history: Any,
        *,
        nodes: Sequence | None = None,
        node_of: NodeOf = by_process,
        healed_at: float | None = None,
    ) -> Verdict:
        return core(history, nodes=nodes, node_of=node_of, healed_at=healed_at, **fixed)

    check.__name__ = check.__qualname__ = name
    check.__doc__ = doc
    return check


# --- echo ---------------------------------------------------------------------------


def check_echo(history: Any) -> Verdict:
    """Every ``ok`` echo returns exactly the payload it was sent."""
    calls = operations(history)
    bad = [c for c in calls if c.status == OK and freeze(c.output) != freeze(c.value)]
    oracle = "workload:echo"
    if bad:
        return violated(
            oracle,
            "echo-mismatch",
            f"{len(bad)} echo reply(ies) differ from the payload sent",
            tuple(bad)[:MAX_LISTED],
            mismatches=[{"sent": c.value, "got": c.output} for c in bad][:MAX_LISTED],
        )
    n = sum(c.status == OK for c in calls)
    return ok(oracle, "echo", f"{n} echo(es) answered with their payload", checked=n)


# --- unique-ids -----------------------------------------------------------------------


def check_unique_ids(history: Any, *, f: str = "generate") -> Verdict:
    """All ids returned by ``ok`` generate ops are distinct."""
    calls = [c for c in operations(history) if c.f == f and c.status == OK]
    by_id: dict[Any, list[Operation]] = defaultdict(list)
    for c in calls:
        by_id[freeze(c.output)].append(c)
    dups = {k: v for k, v in by_id.items() if len(v) > 1}
    oracle = "workload:unique-ids"
    if dups:
        bad = [c for v in dups.values() for c in v]
        return violated(
            oracle,
            "duplicate-id",
            f"{len(dups)} id(s) returned more than once, e.g. {next(iter(dups))!r}",
            tuple(bad)[:MAX_LISTED],
            duplicates={repr(k): len(v) for k, v in list(dups.items())[:MAX_LISTED]},
        )
    return ok(oracle, "unique-ids", f"{len(calls)} generated ids are distinct", ids=len(calls))


def _no_final_read(oracle: str, workload: str, any_final: bool, details: dict) -> Verdict:
    """``unknown``: no node, or not every node named in ``nodes``, has a final read."""
    why = (
        "no final read"
        if not any_final
        else f"no final read on {details['nodes_without_final_read']}"
    )
    return unknown(oracle, workload, f"cannot judge: {why}", **details)


# --- sets: broadcast and g-set ---------------------------------------------------------


def _check_set(
    history: Any,
    *,
    workload: str,
    add_f: str,
    read_f: str,
    thing: str,
    nodes: Sequence | None,
    node_of: NodeOf,
    healed_at: float | None,
) -> Verdict:
    """Shared core of broadcast and g-set: a grow-only set read per node.

    lost: acknowledged adds missing from some node's final read (violation).
    unexpected: elements read that no (non-failed) add ever invoked (violation).
    stale: acknowledged adds that a non-final read begun after the add's
    acknowledgement missed (reported, allowed: eventual consistency).
    never-read: indefinite adds absent from every read (reported, allowed).
    """
    oracle = f"workload:{workload}"
    calls = operations(history)
    adds = [c for c in calls if c.f == add_f]
    reads = [c for c in calls if c.f == read_f and c.status == OK]
    acked = {freeze(c.value): c for c in adds if c.status == OK}
    possible = {freeze(c.value) for c in adds if c.status != FAIL}
    finals = final_reads(calls, f=read_f, node_of=node_of, healed_at=healed_at)
    read_sets = {id(c): set(map(freeze, c.output or ())) for c in reads}

    lost: dict[Any, list] = defaultdict(list)
    for node, r in finals.items():
        for elem in filterfalse(read_sets[id(r)].__contains__, acked):
            lost[elem].append(node)

    unexpected: dict[Any, list[Operation]] = defaultdict(list)
    ever_read: set = set()
    for r in reads:
        for elem in read_sets[id(r)]:
            ever_read.add(elem)
            if elem not in possible:
                unexpected[elem].append(r)

    final_ids = {id(r) for r in finals.values()}
    by_ack = sorted(acked.items(), key=lambda kv: kv[1].complete_index)
    ack_points = [a.complete_index for _, a in by_ack]
    ack_elems = [e for e, _ in by_ack]
    stale: set = set()
    for r in reads:
        if id(r) not in final_ids:  # acknowledged before this read began, yet missing
            k = bisect_left(ack_points, r.invoke_index)
            stale.update(filterfalse(read_sets[id(r)].__contains__, ack_elems[:k]))
    indefinite = {freeze(c.value) for c in adds if c.status == INFO}
    never_read = indefinite - ever_read

    missing_nodes = [n for n in (nodes or ()) if n not in finals]
    details = {
        "attempted": len(adds),
        "acknowledged": len(acked),
        "indefinite": len(indefinite),
        "final_reads": len(finals),
        "lost_count": len(lost),
        "lost": {repr(k): sorted(map(str, v)) for k, v in list(lost.items())[:MAX_LISTED]},
        "unexpected_count": len(unexpected),
        "unexpected": _listed(map(repr, unexpected)),
        "stale_count": len(stale),
        "stale": _listed(map(repr, stale)),
        "never_read_count": len(never_read),
        "nodes_without_final_read": sorted(map(str, missing_nodes)),
    }
    if unexpected:
        bad = [r for rs in unexpected.values() for r in rs]
        elem = next(iter(unexpected))
        return violated(
            oracle,
            f"unexpected-{thing}",
            f"{len(unexpected)} {thing}(s) read that were never added, e.g. {elem!r}",
            tuple(bad)[:MAX_LISTED],
            **details,
        )
    if lost:
        bad_reads = [finals[n] for n in {n for ns in lost.values() for n in ns}]
        bad = [acked[e] for e in lost] + sorted(bad_reads, key=lambda c: c.invoke_index)
        elem, where = next(iter(lost.items()))
        return violated(
            oracle,
            f"lost-{thing}",
            f"{len(lost)} acknowledged {thing}(s) missing from final reads, "
            f"e.g. {elem!r} on {', '.join(map(str, where))}",
            tuple(bad)[:MAX_LISTED],
            **details,
        )
    if not finals or missing_nodes:
        return _no_final_read(oracle, workload, bool(finals), details)
    return ok(
        oracle,
        workload,
        f"all {len(acked)} acknowledged {thing}(s) read by {len(finals)} node(s)",
        **details,
    )


check_broadcast = _final_read_checker(
    "check_broadcast",
    "Every acknowledged broadcast message is in every node's final read.",
    _check_set,
    workload="broadcast",
    add_f="broadcast",
    read_f="read",
    thing="message",
)

check_g_set = _final_read_checker(
    "check_g_set",
    "Every acknowledged add is in every final read; nothing never added is read.",
    _check_set,
    workload="g-set",
    add_f="add",
    read_f="read",
    thing="element",
)


# --- counters -----------------------------------------------------------------------


def _delta(c: Operation) -> int:
    d = c.value
    if isinstance(d, bool) or not isinstance(d, (int, float)):
        raise CheckerError(f"history op {c.invoke_index}: add delta {d!r} is not a number")
    return d


def _check_counter(
    history: Any,
    *,
    workload: str,
    nodes: Sequence | None,
    node_of: NodeOf,
    healed_at: float | None,
) -> Verdict:
    """Final reads within [ok sum + negative info deltas, ok sum + positive info deltas];
    every read within what the adds invoked before it completed could have produced."""
    oracle = f"workload:{workload}"
    calls = operations(history)
    adds = [c for c in calls if c.f == "add" and c.status != FAIL]
    if workload == "g-counter":
        neg = [c for c in adds if _delta(c) < 0]
        if neg:
            raise CheckerError(
                f"history op {neg[0].invoke_index}: g-counter add with negative delta {neg[0].value!r}"
            )
    sure = sum(_delta(c) for c in adds if c.status == OK)
    lo = sure + sum(min(_delta(c), 0) for c in adds if c.status == INFO)
    hi = sure + sum(max(_delta(c), 0) for c in adds if c.status == INFO)

    # Any read: bounded by the non-failed adds invoked before the read completed.
    by_invoke = sorted(adds, key=lambda c: c.invoke_index)
    starts = [c.invoke_index for c in by_invoke]
    neg_prefix = [0, *accumulate(min(_delta(c), 0) for c in by_invoke)]
    pos_prefix = [0, *accumulate(max(_delta(c), 0) for c in by_invoke)]
    reads = [c for c in calls if c.f == "read" and c.status == OK]
    impossible = []
    for r in reads:
        k = bisect_left(starts, r.complete_index)
        v = r.output
        if not isinstance(v, (int, float)) or not (neg_prefix[k] <= v <= pos_prefix[k]):
            impossible.append((r, neg_prefix[k], pos_prefix[k]))

    finals = final_reads(calls, node_of=node_of, healed_at=healed_at)
    off = {n: r for n, r in finals.items() if not (lo <= r.output <= hi)} if not impossible else {}
    missing_nodes = [n for n in (nodes or ()) if n not in finals]
    details = {
        "acknowledged_sum": sure,
        "lower": lo,
        "upper": hi,
        "adds": len(adds),
        "indefinite": sum(c.status == INFO for c in adds),
        "final_values": {str(n): r.output for n, r in finals.items()},
        "nodes_without_final_read": sorted(map(str, missing_nodes)),
    }
    if impossible:
        r, a, b = impossible[0]
        return violated(
            oracle,
            "impossible-read",
            f"{len(impossible)} read(s) outside anything the adds could produce, "
            f"e.g. {r.output!r} not in [{a}, {b}]",
            tuple(c for c, _, _ in impossible),
            **details,
        )
    if off:
        n, r = next(iter(off.items()))
        return violated(
            oracle,
            "wrong-final-value",
            f"final read {r.output!r} on {n} is outside [{lo}, {hi}] (acknowledged sum {sure})",
            tuple(off.values()),
            **details,
        )
    if not finals or missing_nodes:
        return _no_final_read(oracle, workload, bool(finals), details)
    return ok(oracle, workload, f"{len(finals)} final read(s) within [{lo}, {hi}]", **details)


check_g_counter = _final_read_checker(
    "check_g_counter",
    "Final reads in [sum of ok deltas, sum of ok + info deltas]; deltas are >= 0.",
    _check_counter,
    workload="g-counter",
)

check_pn_counter = _final_read_checker(
    "check_pn_counter",
    "Final reads in [ok sum + negative info deltas, ok sum + positive info deltas].",
    _check_counter,
    workload="pn-counter",
)


# --- lin-kv -----------------------------------------------------------------------------


def check_lin_kv(history: Any, *, model: Any = "kv", timeout: float = 30.0) -> Verdict:
    """Linearizability per key, by :func:`fuzzer.checkers.linearizability.check`.

    Blocking: call it from a worker thread when on the event loop.
    """
    from fuzzer.checkers import linearizability

    oracle = "workload:lin-kv"
    result = linearizability.check(operations(history), model, timeout)
    verdict = str(result.verdict)
    details = {"key": _plain_key(getattr(result, "key", None))}
    if verdict == "linearizable":
        return ok(oracle, "lin-kv", "history is linearizable per key", **details)
    if verdict == "not-linearizable":
        unplaced = tuple(getattr(result, "unplaced", None) or ())
        prefix = getattr(result, "prefix", None) or ()
        details["prefix_length"] = len(prefix)
        details["prefix_tail"] = [op.describe() for op in prefix[-10:]]
        return violated(
            oracle,
            "not-linearizable",
            f"key {details['key']!r}: no linearization; {len(unplaced)} op(s) could not be "
            f"placed after a linearizable prefix of {len(prefix)}",
            unplaced,
            **details,
        )
    return unknown(oracle, "lin-kv", f"linearizability undecided within {timeout} s", **details)


def _plain_key(k: Any) -> Any:
    return k if k is None or isinstance(k, (str, int, float)) else repr(k)


# --- registry -----------------------------------------------------------------------------

CHECKERS: dict[str, Checker] = {
    "echo": check_echo,
    "unique-ids": check_unique_ids,
    "broadcast": check_broadcast,
    "g-counter": check_g_counter,
    "pn-counter": check_pn_counter,
    "g-set": check_g_set,
    "lin-kv": check_lin_kv,
}


def get_checker(name: str) -> Checker:
    """The checker of a workload; :class:`UsageError` listing the valid names otherwise."""
    try:
        return CHECKERS[name]
    except KeyError:
        raise UsageError(
            f"unknown workload checker {name!r}; valid: {', '.join(sorted(CHECKERS))}"
        ) from None


def check_workload(name: str, history: Any, **params: Any) -> Verdict:
    """Run the checker of workload ``name`` on ``history`` with its parameters."""
    return get_checker(name)(history, **params)


async def check_workload_async(name: str, history: Any, **params: Any) -> Verdict:
    """:func:`check_workload` in a worker thread, so the event loop keeps running."""
    import asyncio

    checker = get_checker(name)
    return await asyncio.to_thread(checker, history, **params)
