"""Findings deduplicated by signature: one bundle per new signature, counts for repeats.

Why a separate pure index: the same bug is usually found again and again in
a long campaign; users want one reproducer per distinct bug plus how often it
came back. The signature (oracle, invariant or anomaly, abstract HB context)
is computed by whoever judged the execution; this index only decides "new or
repeat" and keeps the counts, and round-trips through the campaign state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from fuzzer.errors import InputError

__all__ = ["FindingRecord", "FindingIndex", "signature_hash"]


def signature_hash(signature: str) -> str:
    """8 hex digits naming a signature in file names."""
    return hashlib.blake2b(signature.encode("utf-8", "replace"), digest_size=4).hexdigest()


@dataclass(frozen=True)
class FindingRecord:
    """One distinct finding: its bundle file, kind and how often it was seen."""

    id: int
    signature: str
    kind: str  # "safety" or "liveness"
    file: str  # bundle file name inside crashes/ or hangs/
    count: int = 1
    first_exec: int = 0
    last_exec: int = 0
    first_time: float = 0.0
    last_time: float = 0.0
    line: str = ""  # the verdict's one-line explanation

    def to_list(self) -> list[Any]:
        return [self.id, self.signature, self.kind, self.file, self.count, self.first_exec,
                self.last_exec, self.first_time, self.last_time, self.line]

    @classmethod
    def from_list(cls, x: Any, where: str = "findings") -> FindingRecord:
        try:
            i, sig, kind, file, count, fe, le, ft, lt, line = x
            return cls(int(i), str(sig), str(kind), str(file), int(count), int(fe), int(le),
                       float(ft), float(lt), str(line))
        except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: int(inf)
            raise InputError(f"{where}: bad finding record ({exc})") from None


class FindingIndex:
    """Signature -> :class:`FindingRecord`; ids are allocated in order of discovery."""

    def __init__(self, records: Iterable[FindingRecord] = ()) -> None:
        self._by_sig: dict[str, FindingRecord] = {}
        self._next_id = 0
        for r in records:
            self._put(r)

    def _put(self, r: FindingRecord) -> None:
        self._by_sig[r.signature] = r
        self._next_id = max(self._next_id, r.id + 1)

    def __len__(self) -> int:
        return len(self._by_sig)

    def __contains__(self, signature: object) -> bool:
        return signature in self._by_sig

    def get(self, signature: str) -> FindingRecord | None:
        return self._by_sig.get(signature)

    def records(self) -> list[FindingRecord]:
        return sorted(self._by_sig.values(), key=lambda r: r.id)

    def next_id(self) -> int:
        return self._next_id

    def count(self, kind: str | None = None) -> int:
        """Distinct findings (of ``kind`` if given)."""
        return sum(1 for r in self._by_sig.values() if kind is None or r.kind == kind)

    def total(self) -> int:
        """Executions that found something, repeats included."""
        return sum(r.count for r in self._by_sig.values())

    def files(self) -> set[str]:
        return {r.file for r in self._by_sig.values()}

    def add_new(self, record: FindingRecord) -> None:
        """Register a new signature (its bundle is already on disk)."""
        if record.signature in self._by_sig:
            raise ValueError(f"signature {record.signature!r} is already known")
        self._put(record)

    def repeat(self, signature: str, exec_no: int, t: float) -> FindingRecord:
        """Count one more occurrence of a known signature."""
        r = self._by_sig[signature]
        r = replace(r, count=r.count + 1, last_exec=exec_no, last_time=t)
        self._by_sig[signature] = r
        return r

    def to_list(self) -> list[list[Any]]:
        return [r.to_list() for r in self.records()]

    @classmethod
    def from_list(cls, data: Any) -> FindingIndex:
        if not isinstance(data, list):
            raise InputError("findings: expected a list")
        return cls(FindingRecord.from_list(x, f"findings[{i}]") for i, x in enumerate(data))
