"""Steps and Schedules: a fault vocabulary (faults.py) put in time order.

Why separate from the vocabulary: a Schedule is what corpus files, bundles,
the scheduler and the minimiser exchange; its forms (a readable text form,
one step per line, e.g. ``partition majority-minority 2.5s``, and a msgpack
form for bundles) and files evolve with their own version
(:data:`SCHEDULE_VERSION`), while the faults only define what one line means.
Everything here is also importable from :mod:`fuzzer.faults`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fuzzer.durations import TokenError as _Bad
from fuzzer.durations import check_duration as _check_duration
from fuzzer.durations import format_duration, parse_duration
from fuzzer.errors import InputError
from fuzzer.faults import Fault, parse_tokens

__all__ = ["SCHEDULE_VERSION", "Schedule", "Step", "parse_step", "parse_step_tokens"]

SCHEDULE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Step:
    """A fault applied at the start of the step, then ``duration`` seconds of running."""

    fault: Fault
    duration: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.fault, Fault):
            raise ValueError(f"a step needs a Fault, not {self.fault!r}")
        _check_duration("step duration", self.duration)

    def to_text(self) -> str:
        return f"{self.fault.to_text()} {format_duration(self.duration)}"

    def __str__(self) -> str:
        return self.to_text()


def parse_step_tokens(tokens: list[str]) -> Step:
    """A step from its whitespace-split text form (TokenError if malformed)."""
    if len(tokens) < 2:
        raise _Bad(
            f"expected '<fault> [args] <duration>', e.g. 'kill leader 1s', got {' '.join(tokens)!r}"
        )
    try:
        duration = parse_duration(tokens[-1])
    except _Bad:
        raise _Bad(f"expected the step duration (like 2.5s) last, got {tokens[-1]!r}") from None
    return Step(parse_tokens(tokens[:-1]), duration)


def parse_step(text: str, path: str = "<step>") -> Step:
    """One step from its text form, e.g. ``partition majority-minority 2.5s``."""
    try:
        return parse_step_tokens(text.split("#", 1)[0].split())
    except _Bad as exc:
        raise InputError(str(exc), path=path) from None


@dataclass(frozen=True, slots=True)
class Schedule:
    """Steps in order plus the seed that drew everything not in the steps."""

    steps: tuple[Step, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))
        if type(self.seed) is not int or not 0 <= self.seed < 2**64:
            raise ValueError(f"schedule seed must be an int in [0, 2**64), not {self.seed!r}")
        for s in self.steps:
            if not isinstance(s, Step):
                raise ValueError(f"schedule steps must be Steps, not {s!r}")

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.steps)

    # -- text -------------------------------------------------------------

    def to_text(self) -> str:
        lines = [f"# hbfuzz schedule v{SCHEDULE_VERSION}", f"seed {self.seed}"]
        lines += [s.to_text() for s in self.steps]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse_text(cls, text: str, path: str = "<schedule>") -> Schedule:
        """Parse the text form; :class:`InputError` names ``path`` and the line."""
        steps: list[Step] = []
        seed: int | None = None
        for lineno, raw in enumerate(text.splitlines(), 1):
            tokens = raw.split("#", 1)[0].split()
            if not tokens:
                continue
            try:
                if tokens[0] == "seed":
                    if len(tokens) != 2 or not tokens[1].isdigit():
                        raise _Bad("expected 'seed <non-negative integer>'")
                    if seed is not None:
                        raise _Bad("the seed is given twice")
                    seed = int(tokens[1])
                    if seed >= 2**64:
                        raise _Bad("the seed must be below 2**64")
                    continue
                steps.append(parse_step_tokens(tokens))
            except _Bad as exc:
                raise InputError(str(exc), path=path, where=f"line {lineno}") from None
        return cls(tuple(steps), seed or 0)

    # -- msgpack ----------------------------------------------------------

    def to_msgpack(self) -> bytes:
        import msgpack

        return msgpack.packb(
            {
                "format": "hbfuzz-schedule",
                "v": SCHEDULE_VERSION,
                "seed": self.seed,
                "steps": [[s.fault.to_text(), float(s.duration)] for s in self.steps],
            },
            use_bin_type=True,
        )

    @classmethod
    def from_msgpack(cls, data: bytes, path: str = "<schedule>") -> Schedule:
        import msgpack

        try:
            obj = msgpack.unpackb(data, raw=False)
        except Exception as exc:
            raise InputError(f"not a msgpack schedule ({exc})", path=path) from None
        if not isinstance(obj, dict) or obj.get("format") != "hbfuzz-schedule":
            raise InputError("not an hbfuzz schedule (missing format marker)", path=path)
        if obj.get("v") != SCHEDULE_VERSION:
            raise InputError(
                f"schedule format version {obj.get('v')!r} is not supported "
                f"(expected {SCHEDULE_VERSION})",
                path=path,
            )
        steps = []
        items = obj.get("steps", [])
        if not isinstance(items, list):
            raise InputError("schedule 'steps' is not an array", path=path, where="steps")
        for i, item in enumerate(items):
            try:
                text, duration = item
                if not isinstance(text, str) or not isinstance(duration, int | float):
                    raise _Bad("a step is [fault text, duration seconds]")
                steps.append(Step(parse_tokens(text.split()), float(duration)))
            except (_Bad, ValueError, TypeError) as exc:
                raise InputError(str(exc), path=path, where=f"step {i}") from None
        try:
            return cls(tuple(steps), obj.get("seed", 0))
        except ValueError as exc:
            raise InputError(str(exc), path=path, where="seed") from None

    # -- files ------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> Schedule:
        """Read a schedule file: msgpack if it ends in .msgpack, else the text form."""
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read schedule ({exc.strerror})", path=str(p)) from None
        if p.suffix == ".msgpack":
            return cls.from_msgpack(data, str(p))
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"not UTF-8 text (byte {exc.start})", path=str(p)) from None
        return cls.parse_text(text, str(p))

    def save(self, path: str | Path) -> None:
        p = Path(path)
        if p.suffix == ".msgpack":
            p.write_bytes(self.to_msgpack())
        else:
            p.write_text(self.to_text(), encoding="utf-8")
