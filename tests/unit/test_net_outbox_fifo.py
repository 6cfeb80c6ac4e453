"""A TCP stream's outbox never lets a later message overtake an earlier one."""

from __future__ import annotations

import asyncio
import random

from fuzzer.network.model import Fate
from fuzzer.network.outbox import Outbox


def _run(fifo: bool, fates: list[Fate]) -> list[int]:
    async def main() -> list[int]:
        out: list[int] = []
        box = Outbox(out.extend, fifo=fifo)
        task = asyncio.create_task(box.run())
        for i, fate in enumerate(fates):
            box.put(i, fate, "a->b")
            await asyncio.sleep(0.001)
        box.finish()
        await asyncio.wait_for(task, 5)
        return out

    return asyncio.run(main())


def test_a_delay_that_ends_does_not_let_later_messages_overtake():
    # messages 0-2 under a 50 ms delay, then the delay is lifted (3-5 deliver at once)
    fates = [Fate("delay", 0.05)] * 3 + [Fate("deliver")] * 3
    assert _run(True, fates) == [0, 1, 2, 3, 4, 5]
    assert _run(False, fates)[:3] == [3, 4, 5]  # what a message-level network may do


def test_fifo_holds_for_any_mix_of_delays(rng: random.Random):
    fates = [Fate("delay", rng.choice((0.0, 0.002, 0.02))) if rng.random() < 0.6
             else Fate("deliver") for _ in range(30)]
    assert _run(True, fates) == list(range(30))


def test_in_order_config_refuses_faults_tcp_cannot_produce():
    from pathlib import Path

    import pytest

    from fuzzer.config import load_config
    from fuzzer.errors import ConfigError

    target = Path(__file__).resolve().parents[2] / "targets" / "pysyncobj" / "target.toml"
    assert load_config(target, load_module=False).network.in_order is False
    with pytest.raises(ConfigError, match="faults.allowed") as e:
        load_config(target, ["network.in_order=true"], load_module=False)
    assert "link-duplicate" in str(e.value) or "link-reorder" in str(e.value)
    ok = load_config(target, ["network.in_order=true",
                              "faults.allowed=['partition', 'heal', 'kill', 'start', "
                              "'link-delay', 'link-drop']"], load_module=False)
    assert ok.network.in_order is True and ok.network.to_dict()["in_order"] is True
