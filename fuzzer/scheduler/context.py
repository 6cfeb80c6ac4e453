"""What the nemesis has done so far in this execution, as a coarse, hashable context.

Why: the tracker's window signature says what the *cluster* did (roles, message
types), not what the *fault schedule* left behind. Two windows with the same
signature call for different faults when one has a node down and a partition
in place and the other has neither: after ``kill leader`` the valuable next
step is often ``start``/``heal``-like, after a heal it is a new fault. Adding a
few capped counters of the faults in force makes the learner's state closer to
Markov without fragmenting it (at most 4 x 3 x 2 x 3 x 2 = 144 contexts, far
fewer in practice).

Pure and cheap: :meth:`FaultContext.after` returns a new value; nothing here
looks at the cluster (the counters follow the faults chosen, which is what the
scheduler controls).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["FaultContext", "contextual_signature"]

_DOWN = {"kill": 1, "stop": 1, "restart": -1, "start": -1}
_PAUSE = {"pause": 1, "resume": -1}
_LINK = ("link-delay", "link-drop", "link-duplicate", "link-reorder")
# the last fault's family: 0 none/wait, 1 process fault, 2 network fault, 3 recovery
_FAMILY = {
    "kill": 1, "stop": 1, "pause": 1, "wipe": 1, "clock-skew": 1,
    "partition": 2, "link-delay": 2, "link-drop": 2, "link-duplicate": 2, "link-reorder": 2,
    "heal": 3, "restart": 3, "start": 3, "resume": 3,
}


@dataclass(frozen=True, slots=True)
class FaultContext:
    """Capped counters of the faults in force, plus the last fault's family."""

    last: int = 0  # family of the last fault (see _FAMILY)
    down: int = 0  # nodes killed/stopped and not yet restarted (0..2)
    partitioned: int = 0  # a partition is in force (0/1)
    links: int = 0  # link faults in force (0..2)
    paused: int = 0  # nodes paused and not yet resumed (0/1)

    def after(self, verb: str) -> FaultContext:
        """The context once a fault with ``verb`` was applied."""
        down = min(2, max(0, self.down + _DOWN.get(verb, 0)))
        paused = min(1, max(0, self.paused + _PAUSE.get(verb, 0)))
        part, links = self.partitioned, self.links
        if verb == "partition":
            part = 1
        elif verb == "heal":
            part, links = 0, 0
        elif verb in _LINK:
            links = min(2, links + 1)
        return FaultContext(_FAMILY.get(verb, 0), down, part, links, paused)

    def key(self) -> tuple[int, int, int, int, int]:
        return (self.last, self.down, self.partitioned, self.links, self.paused)


def contextual_signature(signature: int, ctx: FaultContext) -> int:
    """A stable 63-bit state id for (window signature, context): the same in every
    process (no Python ``hash``, which is salted per process for strings)."""
    text = f"{int(signature)}|{','.join(map(str, ctx.key()))}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") >> 1
