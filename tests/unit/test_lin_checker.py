"""The linearizability checker on hand-built classic histories, its report
fields, its time budget and its async wrapper."""

from __future__ import annotations

import asyncio
import threading

import pytest

from fuzzer.checkers.linearizability import LinearizabilityResult, check, check_async
from fuzzer.errors import CheckerError, InputError
from fuzzer.workload.history import History, HistoryRecorder, Op


def h(*events) -> History:
    """Events as (process, type, f, value[, key]) in real-time order."""
    return History(tuple(Op(e[0], e[1], e[2], e[3], e[4] if len(e) > 4 else None) for e in events))


def verdict(history, model="cas-register") -> str:
    return check(history, model, timeout=10).verdict


def test_empty_and_sequential():
    assert verdict(History()) == "linearizable"
    seq = h(
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (0, "invoke", "read", None),
        (0, "ok", "read", 1),
    )
    assert verdict(seq) == "linearizable"


def test_register_starts_absent():
    assert verdict(h((0, "invoke", "read", None), (0, "ok", "read", None))) == "linearizable"
    assert verdict(h((0, "invoke", "read", None), (0, "ok", "read", 0))) == "not-linearizable"


@pytest.mark.parametrize("seen", [None, 1])
def test_read_concurrent_with_write_sees_either(seen):
    hist = h(
        (0, "invoke", "write", 1),
        (1, "invoke", "read", None),
        (1, "ok", "read", seen),
        (0, "ok", "write", 1),
    )
    assert verdict(hist) == "linearizable"


def test_reads_cannot_flip_back_during_a_write():
    # r1 sees the new value and completes; a later read then sees the old one
    hist = h(
        (0, "invoke", "write", 1),
        (1, "invoke", "read", None),
        (1, "ok", "read", 1),
        (2, "invoke", "read", None),
        (2, "ok", "read", None),
        (0, "ok", "write", 1),
    )
    assert verdict(hist) == "not-linearizable"


def test_stale_read_after_completed_write():
    hist = h(
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (1, "invoke", "read", None),
        (1, "ok", "read", None),
    )
    r = check(hist, "cas-register")
    assert r.verdict == "not-linearizable" and not r.ok
    assert r.key is None
    assert [(o.f, o.value) for o in r.prefix] == [("write", 1)]
    assert [(o.f, o.output) for o in r.unplaced] == [("read", None)]
    assert "could not be placed" in r.describe()


def test_info_write_may_take_effect_later():
    hist = h(
        (0, "invoke", "write", 1),
        (0, "info", "write", None),
        (1, "invoke", "read", None),
        (1, "ok", "read", None),
        (1, "invoke", "read", None),
        (1, "ok", "read", 1),
    )
    assert verdict(hist) == "linearizable"


def test_info_write_takes_effect_at_most_once():
    hist = h(
        (0, "invoke", "write", 1),
        (0, "info", "write", None),
        (1, "invoke", "read", None),
        (1, "ok", "read", 1),
        (1, "invoke", "read", None),
        (1, "ok", "read", None),
    )
    assert verdict(hist) == "not-linearizable"


def test_info_write_may_never_happen_and_uncompleted_invoke_is_info():
    never = h(
        (0, "invoke", "write", 1),
        (0, "info", "write", None),
        (1, "invoke", "read", None),
        (1, "ok", "read", None),
    )
    assert verdict(never) == "linearizable"
    open_ = h((0, "invoke", "write", 1), (1, "invoke", "read", None), (1, "ok", "read", 1))
    assert verdict(open_) == "linearizable"


def test_info_cannot_take_effect_before_its_invocation():
    hist = h(
        (1, "invoke", "read", None),
        (1, "ok", "read", 1),
        (0, "invoke", "write", 1),
        (0, "info", "write", None),
    )
    assert verdict(hist) == "not-linearizable"


def test_failed_ops_never_happened():
    hist = h(
        (0, "invoke", "write", 1),
        (0, "fail", "write", None),
        (1, "invoke", "read", None),
        (1, "ok", "read", 1),
    )
    assert verdict(hist) == "not-linearizable"


def test_cas():
    ok = h(
        (0, "invoke", "write", 1), (0, "ok", "write", 1),
        (0, "invoke", "cas", (1, 2)), (0, "ok", "cas", (1, 2)),
        (1, "invoke", "cas", (1, 3)), (1, "fail", "cas", (1, 3)),
        (1, "invoke", "read", None), (1, "ok", "read", 2),
    )  # fmt: skip
    assert verdict(ok) == "linearizable"
    bad = h((0, "invoke", "cas", (1, 2)), (0, "ok", "cas", (1, 2)))
    assert verdict(bad) == "not-linearizable"


def test_kv_is_checked_per_key_and_reports_the_key():
    hist = h(
        (0, "invoke", "put", "a", "x"), (0, "ok", "put", "a", "x"),
        (1, "invoke", "append", "b", "y"), (1, "ok", "append", "b", "y"),
        (2, "invoke", "get", None, "x"), (2, "ok", "get", "a", "x"),
        (2, "invoke", "get", None, "y"), (2, "ok", "get", "", "y"),
    )  # fmt: skip
    r = check(hist, "kv")
    assert (r.verdict, r.key, r.partitions) == ("not-linearizable", "y", 2)
    assert [(o.f, o.output) for o in r.unplaced] == [("get", "")]


def test_timeout_gives_unknown_never_a_guess(shared_data):
    from fuzzer.workload.importers import load_history

    hist = load_history(shared_data / "porcupine" / "kv" / "c50-ok.txt", "edn")
    r = check(hist, "kv", timeout=0.0)
    assert (r.verdict, r.reason) == ("unknown", "timeout") and r.key is not None
    cancel = threading.Event()
    cancel.set()
    r = check(hist, "kv", cancel=cancel)
    assert (r.verdict, r.reason) == ("unknown", "cancelled")


def test_bad_input_is_reported():
    with pytest.raises(InputError, match="without an invocation"):
        check(h((0, "ok", "read", 1)), "register")
    with pytest.raises(CheckerError, match="unknown operation :cas"):
        check(h((0, "invoke", "cas", (1, 2)), (0, "ok", "cas", (1, 2))), "register")
    with pytest.raises(CheckerError, match="unknown model"):
        check(History(), "nope")
    from fuzzer.workload.history import Operation

    broken = Operation(0, 0, "read", None, None, 1, "ok", 0, None, 0, None)
    with pytest.raises(CheckerError, match="no completion after its invocation"):
        check([broken], "register")


def test_recorded_history_is_checked():
    rec = HistoryRecorder()
    w = rec.invoke(0, "write", 5)
    r = rec.invoke(1, "read")
    rec.ok(r, 5)
    rec.ok(w, 5)
    assert check(rec.history(), "register").verdict == "linearizable"


def test_check_async_runs_off_the_loop():
    hist = h(
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (1, "invoke", "read", None),
        (1, "ok", "read", None),
    )

    async def main() -> tuple[LinearizabilityResult, int]:
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        async with asyncio.TaskGroup() as tg:
            t = tg.create_task(ticker())
            result = await check_async(hist, "cas-register", timeout=5)
            t.cancel()
        return result, ticks

    result, ticks = asyncio.run(main())
    assert result.verdict == "not-linearizable" and ticks > 0


def test_memory_guard_gives_unknown(shared_data):
    from fuzzer.workload.importers import load_history

    hist = load_history(shared_data / "porcupine" / "kv" / "c50-ok.txt", "edn")
    r = check(hist, "kv", timeout=60, max_configs=1000)
    assert (r.verdict, r.reason) == ("unknown", "memory")


def test_cancelled_check_async_stops_its_worker(shared_data):
    import time

    from fuzzer.checkers.models import KVModel
    from fuzzer.workload.importers import load_history

    hist = load_history(shared_data / "porcupine" / "kv" / "c50-bad.txt", "edn")
    hard = [op for op in hist.operations() if op.key == "0"]  # a slow partition

    class Counting(KVModel):
        steps = 0

        def step(self, state, op_input, op_output):
            Counting.steps += 1
            return super().step(state, op_input, op_output)

    async def main() -> None:
        task = asyncio.create_task(check_async(hard, Counting(), timeout=None))
        while Counting.steps < 10_000:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    last, still = -1, 0
    for _ in range(400):  # bounded: at most ~20 s
        if Counting.steps == last:
            still += 1
            if still >= 5:
                break
        else:
            last, still = Counting.steps, 0
        time.sleep(0.05)
    assert still >= 5, "the search kept running after cancellation"
