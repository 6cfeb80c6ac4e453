"""Reproducer bundles: one file holding everything needed to re-run a finding.

Why one self-contained file: findings travel between machines and people
(issue 8: "untrusted bundles"), and a replay must not depend on the campaign
directory it came from. A bundle holds the resolved config snapshot with
versions, the execution seed, the schedule in its text form, the recorded
choices, the workload, the event trace, the client history, the verdicts,
the deduplication signature and the hbfuzz version.

File layout (all integers big-endian)::

    magic    8 bytes  b"HBFZBNDL"
    version  u16      BUNDLE_VERSION
    size     u64      length of the msgpack payload once decompressed
    body     lz4 block (no stored size) of the msgpack payload

Why this layout: the format version is read before anything is decompressed
(a newer bundle gives a clear message), and the decompressed size is known
and bounded *before* decompressing, so a tiny file that would inflate to
gigabytes (an lz4 bomb) is refused up front. Loading never executes code
(msgpack only, no pickle, no eval) and validates every top-level key and its
type; errors are :class:`~fuzzer.errors.InputError` naming the file and key.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import lz4.block
import msgpack

from fuzzer import __version__
from fuzzer.checkers.verdict import plain
from fuzzer.errors import HbfuzzError, InputError
from instrumentation.protocol import Event

__all__ = [
    "BUNDLE_VERSION",
    "MAGIC",
    "MAX_BUNDLE_BYTES",
    "MAX_PAYLOAD_BYTES",
    "Bundle",
    "dumps_bundle",
    "loads_bundle",
    "save_bundle",
    "load_bundle",
    "to_plain",
]

MAGIC = b"HBFZBNDL"
BUNDLE_VERSION = 1
_HEADER = struct.Struct(">8sHQ")
MAX_BUNDLE_BYTES = 256 * 2**20  # compressed file size accepted by load_bundle
MAX_PAYLOAD_BYTES = 1024 * 2**20  # decompressed size accepted (lz4 bomb guard)
KINDS = ("safety", "liveness")


_PRIMITIVE = (str, int, float, bool, bytes, type(None))


def to_plain(x: Any) -> Any:
    """Values (events, ops, verdicts, dataclasses, tuples) as msgpack-friendly data.
    Events keep their positional wire form (a list), not a dict per event."""
    if isinstance(x, _PRIMITIVE):
        return x
    t = type(x)
    if t is list or t is tuple:
        return [to_plain(v) for v in x]
    if t is dict:
        return {(k if isinstance(k, str | int) else str(k)): to_plain(v) for k, v in x.items()}
    if isinstance(x, Event):
        return [to_plain(v) for v in x]
    return plain(x)


@dataclass(frozen=True)
class Bundle:
    """A finding and everything needed to reproduce it (see module docstring).

    ``config`` is ``TargetConfig.to_dict()`` (data, never code: ``hbfuzz replay``
    takes its commands and ``module:attr`` references from the local target
    unless ``--trust``, fuzzer/repro/trust.py); ``schedule``
    the schedule's text form; ``choices`` the recorded choices
    (``RecordedChoices.to_msgpack()`` bytes; since the delivery-order replay
    they may hold the original run's message delivery order under
    ``"order"``, fuzzer/network/ordering.py; older bundles simply lack it);
    ``history`` op rows
    ``[process, type, f, value, key, time]``; ``trace`` events in their
    positional wire form; ``verdicts`` ``Verdict.to_dict()`` dicts;
    ``replay`` is filled in by ``hbfuzz replay`` (reproduction rate).
    """

    config: dict[str, Any]
    seed: int
    schedule: str
    signature: str
    kind: str = "safety"
    verdicts: tuple[dict[str, Any], ...] = ()
    choices: bytes = b""
    workload: dict[str, Any] = field(default_factory=dict)
    trace: tuple[Any, ...] = ()
    history: tuple[Any, ...] = ()
    versions: dict[str, str] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    replay: dict[str, Any] = field(default_factory=dict)
    hbfuzz_version: str = __version__
    created: float = 0.0

    def schedule_obj(self, path: str = "<bundle>") -> Any:
        """The schedule as a :class:`~fuzzer.faults.Schedule` (parsed, validated)."""
        from fuzzer.faults import Schedule

        return Schedule.parse_text(self.schedule, path=f"{path}: schedule")

    def choices_obj(self, path: str = "<bundle>") -> Any:
        """The recorded choices as ``fuzzer.execution.result.RecordedChoices``."""
        from fuzzer.execution.result import RecordedChoices

        if not self.choices:
            return RecordedChoices()
        return RecordedChoices.from_msgpack(self.choices, f"{path}: choices")

    def history_obj(self, path: str = "<bundle>") -> Any:
        """The client history as a :class:`fuzzer.workload.history.History`."""
        from fuzzer.workload.history import History, Op

        ops = []
        for i, row in enumerate(self.history):
            try:
                process, type_, f, value, key, t = row
                ops.append(Op(process, type_, f, value, key, t))
            except (TypeError, ValueError, HbfuzzError) as exc:
                raise InputError(f"bad op ({exc})", path=path, where=f"history[{i}]") from None
        return History(tuple(ops), source=path)

    def config_obj(self, path: str = "<bundle>", load_module: bool = False) -> Any:
        """The config snapshot validated as a ``TargetConfig``. By default the target
        module is not imported (bundles are data); ``load_module=True`` imports the
        module the snapshot names, i.e. runs code from a path the bundle chose: only
        for bundles you trust, or after checking ``config['target']`` yourself."""
        from fuzzer.config import config_from_dict

        return config_from_dict(_drop_none(self.config), f"{path}: config", Path("."),
                                load_module=load_module)

    def with_replay(self, **facts: Any) -> Bundle:
        """A copy with ``replay`` facts merged in (e.g. a measured reproduction rate)."""
        return replace(self, replay={**self.replay, **facts})

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "hbfuzz-bundle",
            "hbfuzz_version": self.hbfuzz_version,
            "created": float(self.created),
            "config": to_plain(self.config),
            "versions": {str(k): str(v) for k, v in self.versions.items()},
            "seed": int(self.seed),
            "schedule": self.schedule,
            "choices": bytes(self.choices),
            "workload": to_plain(self.workload),
            "trace": to_plain(list(self.trace)),
            "history": to_plain(list(self.history)),
            "verdicts": to_plain(list(self.verdicts)),
            "signature": self.signature,
            "kind": self.kind,
            "stats": to_plain(self.stats),
            "replay": to_plain(self.replay),
        }


def _drop_none(x: Any) -> Any:
    """What a TOML round trip does to ``to_dict()`` output: None values vanish."""
    if isinstance(x, dict):
        return {k: _drop_none(v) for k, v in x.items() if v is not None}
    if isinstance(x, list):
        return [_drop_none(v) for v in x if v is not None]
    return x


# --------------------------------------------------------------------------- schema

# key -> (python types accepted, required)
_SCHEMA: dict[str, tuple[tuple[type, ...], bool]] = {
    "format": ((str,), True),
    "hbfuzz_version": ((str,), True),
    "created": ((float, int), False),
    "config": ((dict,), True),
    "versions": ((dict,), False),
    "seed": ((int,), True),
    "schedule": ((str,), True),
    "choices": ((bytes,), False),
    "workload": ((dict,), False),
    "trace": ((list,), False),
    "history": ((list,), False),
    "verdicts": ((list,), True),
    "signature": ((str,), True),
    "kind": ((str,), True),
    "stats": ((dict,), False),
    "replay": ((dict,), False),
}
_VERDICT_KEYS = {"oracle": str, "status": str, "name": str, "kind": str}


def _type_name(types: tuple[type, ...]) -> str:
    names = {dict: "a table", list: "a list", str: "a string", int: "an integer",
             float: "a number", bytes: "bytes"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _validate(obj: Any, path: str) -> Bundle:
    def err(where: str, msg: str) -> InputError:
        return InputError(msg, path=path, where=where)

    if not isinstance(obj, dict):
        raise InputError("not an hbfuzz bundle (the payload is not a table)", path=path)
    if obj.get("format") != "hbfuzz-bundle":
        raise err("format", "not an hbfuzz bundle (missing format marker)")
    for k in obj:
        if k not in _SCHEMA:
            raise err(str(k), "unknown key in bundle")
    for k, (types, required) in _SCHEMA.items():
        if k not in obj:
            if required:
                raise err(k, "is required")
            continue
        v = obj[k]
        if isinstance(v, bool) or not isinstance(v, types):
            raise err(k, f"expected {_type_name(types)}, got {type(v).__name__}")
    if not 0 <= obj["seed"] < 2**64:
        raise err("seed", "must be an integer in [0, 2**64)")
    if obj["kind"] not in KINDS:
        raise err("kind", f"expected one of {', '.join(KINDS)}, got {obj['kind']!r}")
    if not obj["signature"]:
        raise err("signature", "must not be empty")
    for section in ("config", "versions", "workload", "stats", "replay"):
        if any(not isinstance(k, str) for k in obj.get(section, {})):
            raise err(section, "keys must be strings")
    for k, v in obj.get("versions", {}).items():
        if not isinstance(v, str):
            raise err(f"versions.{k}", "expected a string")
    for i, v in enumerate(obj["verdicts"]):
        if not isinstance(v, dict):
            raise err(f"verdicts[{i}]", "expected a table")
        for key, typ in _VERDICT_KEYS.items():
            if not isinstance(v.get(key), typ):
                raise err(f"verdicts[{i}].{key}", "is required (a string)")
    if obj.get("choices"):
        try:
            from fuzzer.execution.result import RecordedChoices
        except ImportError:  # pragma: no cover - the execution package is optional here
            RecordedChoices = None  # noqa: N806
        if RecordedChoices is not None:
            RecordedChoices.from_msgpack(obj["choices"], f"{path}: choices")
    for i, e in enumerate(obj.get("trace", [])):
        if not isinstance(e, list | dict):
            raise err(f"trace[{i}]", "expected an event (a list or table)")
    for i, op in enumerate(obj.get("history", [])):
        if not isinstance(op, list) or len(op) != 6:
            raise err(f"history[{i}]", "expected an op row [process, type, f, value, key, time]")
    # the schedule must parse: a replay will need it
    from fuzzer.faults import Schedule

    Schedule.parse_text(obj["schedule"], path=f"{path}: schedule")
    return Bundle(
        config=obj["config"],
        seed=obj["seed"],
        schedule=obj["schedule"],
        signature=obj["signature"],
        kind=obj["kind"],
        verdicts=tuple(obj["verdicts"]),
        choices=obj.get("choices", b""),
        workload=obj.get("workload", {}),
        trace=tuple(obj.get("trace", [])),
        history=tuple(obj.get("history", [])),
        versions=obj.get("versions", {}),
        stats=obj.get("stats", {}),
        replay=obj.get("replay", {}),
        hbfuzz_version=obj["hbfuzz_version"],
        created=float(obj.get("created", 0.0)),
    )


# --------------------------------------------------------------------------- bytes


def dumps_bundle(bundle: Bundle) -> bytes:
    """The bundle as bytes (header + lz4 block of msgpack)."""
    payload = msgpack.packb(bundle.to_dict(), use_bin_type=True)
    body = lz4.block.compress(payload, store_size=False)
    return _HEADER.pack(MAGIC, BUNDLE_VERSION, len(payload)) + body


def loads_bundle(data: bytes, path: str = "<bundle>",
                 max_payload: int = MAX_PAYLOAD_BYTES) -> Bundle:
    """Parse and validate untrusted bundle bytes; :class:`InputError` names ``path``."""
    if len(data) < _HEADER.size:
        raise InputError(f"not an hbfuzz bundle (only {len(data)} bytes)", path=path)
    magic, version, size = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise InputError("not an hbfuzz bundle (bad magic bytes)", path=path)
    if version != BUNDLE_VERSION:
        newer = "newer" if version > BUNDLE_VERSION else "older"
        raise InputError(
            f"bundle format version {version} is not supported by hbfuzz {__version__} "
            f"(it reads version {BUNDLE_VERSION}; the bundle was written by a {newer} hbfuzz)",
            path=path,
        )
    if size > max_payload:
        raise InputError(
            f"bundle payload would decompress to {size} bytes, over the {max_payload}-byte "
            "limit (refused before decompressing)", path=path)
    body = data[_HEADER.size:]
    # lz4 expands at most ~255x; a body that cannot produce `size` bytes is corrupt
    if size > 255 * len(body) + 64:
        raise InputError("bundle is truncated or its size field is wrong", path=path)
    try:
        payload = lz4.block.decompress(body, uncompressed_size=size)
    except Exception as exc:  # lz4 raises LZ4BlockError / ValueError on corrupt input
        raise InputError(f"bundle body is corrupt (lz4: {exc})", path=path) from None
    if len(payload) != size:
        raise InputError("bundle body is corrupt (wrong decompressed size)", path=path)
    try:
        obj = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception as exc:  # ExtraData, FormatError, StackError, UnicodeDecodeError...
        raise InputError(f"bundle payload is not valid msgpack ({exc})", path=path) from None
    return _validate(obj, path)


def save_bundle(path: str | Path, bundle: Bundle | None = None, **fields: Any) -> Path:
    """Write a bundle atomically (temp file, fsync, rename, fsync the directory).

    Pass a :class:`Bundle`, or its fields as keywords (``config=...,
    seed=..., schedule=..., signature=..., ...``)."""
    if bundle is None:
        fields.setdefault("created", time.time())
        bundle = Bundle(**fields)
    elif fields:
        raise TypeError("save_bundle takes a Bundle or its fields, not both")
    from fuzzer.campaign.outdir import atomic_write

    p = Path(path)
    atomic_write(p, dumps_bundle(bundle))
    return p


def load_bundle(path: str | Path, max_bytes: int = MAX_BUNDLE_BYTES,
                max_payload: int = MAX_PAYLOAD_BYTES) -> Bundle:
    """Read and validate a bundle file (untrusted input; see module docstring)."""
    p = Path(path)
    try:
        size = os.stat(p).st_size
    except OSError as exc:
        raise InputError(f"cannot read bundle ({exc.strerror})", path=str(p)) from None
    if size > max_bytes:
        raise InputError(f"bundle file is {size} bytes, over the {max_bytes}-byte limit",
                         path=str(p))
    try:
        with open(p, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise InputError(f"cannot read bundle ({exc.strerror})", path=str(p)) from None
    if len(data) > max_bytes:
        raise InputError(f"bundle file is over the {max_bytes}-byte limit", path=str(p))
    return loads_bundle(data, str(p), max_payload)


def bundle_fields(verdicts: Sequence[Any]) -> tuple[dict[str, Any], ...]:
    """Verdict values as bundle verdict dicts."""
    out = []
    for v in verdicts:
        d = v.to_dict() if hasattr(v, "to_dict") else dict(v)
        out.append(to_plain(d))
    return tuple(out)
