"""Sequential specifications ("models") for the linearizability checker.

A model says what a single, correct, sequential object would do. The checker
searches for an order of the history's operations that the model accepts.

Writing a model (subclass :class:`Model`, decorate with :func:`register_model`)::

    @register_model
    class Flag(Model):
        '''A boolean flag: set, clear, get.'''
        name = "flag"

        def init(self):                       # the initial state (hashable!)
            return False

        def prepare(self, op):                # once per operation, outside the search
            return (op.f, op.value), (UNKNOWN if op.status == "info" else op.output)

        def step(self, state, op_input, op_output):
            f, _ = op_input
            if f == "set":
                return True, True
            if f == "clear":
                return True, False
            return (op_output is UNKNOWN or op_output == state), state   # get

Rules a model must follow:

- States are hashable and immutable (None, ints, strings, tuples, frozensets):
  the checker caches (linearized set, state) pairs and keeps old states on its
  backtracking stack.
- ``step(state, op_input, op_output) -> (ok, new_state)`` is pure and fast: it
  runs in the inner loop. Do the parsing and conversion in :meth:`Model.prepare`,
  which runs once per operation and returns ``(op_input, op_output)``. For an
  ``info`` operation (outcome unknown) ``op_output`` is :data:`UNKNOWN`: accept
  any output then. ``fail`` operations never reach the model (they did not
  happen). Returning ``ok=False`` for an ``info`` op is fine when the op would
  have no effect at this point: the checker may always leave info ops out.
- Optional speed-ups, each must be sound (it may only skip work whose outcome
  is known): :meth:`Model.droppable` (an op that can be left out before the
  search, e.g. an ``info`` read: no effect, no constraint), :meth:`Model.prune`
  (info ops that provably cannot matter), :meth:`Model.overwrites` (a blind
  write, whose result does not depend on the state) and :meth:`Model.impossible`
  (an ok op that no order can make acceptable, found without searching).
- :meth:`Model.partition` splits the history into independent sub-histories
  (P-compositionality); the default splits by ``Operation.key``. A model whose
  objects interact across keys must return one partition.
- Raise :class:`fuzzer.errors.CheckerError` from ``prepare`` for an ``f`` the
  model does not know, naming the op.

Built-in models (see :data:`MODELS`): ``register`` (read/write), ``cas-register``
(read/write/cas, initial value absent = None), ``kv`` (get/put/append on
strings and read/write/cas, per key), ``counter`` (add/read), ``set`` (add/read).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, ClassVar

from fuzzer.errors import CheckerError
from fuzzer.workload.history import Operation

__all__ = [
    "UNKNOWN",
    "Model",
    "RegisterModel",
    "CasRegisterModel",
    "KVModel",
    "CounterModel",
    "SetModel",
    "MODELS",
    "register_model",
    "get_model",
    "model_names",
]


class _Unknown:
    """The output of an operation whose outcome is unknown (``info``)."""

    _instance: ClassVar[_Unknown | None] = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()


class Model:
    """Base class of a sequential specification. See the module docstring."""

    name: ClassVar[str] = ""

    def init(self) -> Hashable:
        """The initial state."""
        return None

    def prepare(self, op: Operation) -> tuple[Any, Any]:
        """Turn an ``ok``/``info`` operation into ``(op_input, op_output)`` once."""
        return (op.f, op.value), (UNKNOWN if op.status == "info" else op.output)

    def step(self, state: Any, op_input: Any, op_output: Any) -> tuple[bool, Any]:
        """Apply one operation: is the output possible here, and the next state."""
        raise NotImplementedError

    def droppable(self, op_input: Any, op_output: Any) -> bool:
        """True if this op can be left out before the search (no effect, no constraint)."""
        return False

    def prune(self, items: list[tuple[Operation, Any, Any]]) -> list[tuple[Operation, Any, Any]]:
        """Leave out ``info`` ops that provably cannot matter, before the search.

        ``items`` are ``(operation, op_input, op_output)`` of one partition. The
        default keeps everything; a model may drop an info op when any
        linearization that uses it stays valid without it (e.g. a write of a
        value nobody ever observes). Only makes the search faster.
        """
        return items

    def overwrites(self, op_input: Any) -> bool:
        """True if this op's effect and acceptance do not depend on the state
        (a blind write). The checker then never tries it right after an info
        op, whose effect it would erase (that info op could be left out).
        Default False: always safe."""
        return False

    def impossible(self, items: list[tuple[Operation, Any, Any]]) -> Operation | None:
        """An ok op that no order could make the model accept (e.g. a read of a
        value nobody wrote), found without searching; None if there is none.
        Optional: it turns a hopeless search into an instant answer."""
        return None

    def partition(self, ops: Sequence[Operation]) -> dict[Hashable, list[Operation]]:
        """Independent sub-histories, by ``Operation.key`` (order preserved)."""
        parts: dict[Hashable, list[Operation]] = {}
        for op in ops:
            parts.setdefault(op.key, []).append(op)
        return parts

    def describe(self, state: Any) -> str:
        """A short human-readable form of a state, for reports."""
        return repr(state)

    def describe_op(self, op_input: Any, op_output: Any) -> str:
        """A short human-readable form of a prepared operation, for reports."""
        out = "?" if op_output is UNKNOWN else repr(op_output)
        return f"{op_input!r} -> {out}"

    def _unknown_f(self, op: Operation) -> CheckerError:
        return CheckerError(
            f"model {self.name}: unknown operation :{op.f} (op #{op.id}, process {op.process})"
        )


MODELS: dict[str, type[Model]] = {}


def register_model(cls: type[Model]) -> type[Model]:
    """Class decorator: make a model available by its ``name``."""
    if not cls.name:
        raise CheckerError(f"model class {cls.__name__} has no name")
    MODELS[cls.name] = cls
    return cls


def model_names() -> list[str]:
    return sorted(MODELS)


def get_model(name: str | Model) -> Model:
    """A model instance by name (or pass an instance through)."""
    if isinstance(name, Model):
        return name
    cls = MODELS.get(name)
    if cls is None:
        raise CheckerError(f"unknown model {name!r}; valid models: {', '.join(model_names())}")
    return cls()


# Operation codes: small ints compare faster than strings in the inner loop.
_READ, _WRITE, _CAS, _GET, _PUT, _APPEND, _ADD = range(7)


def _pair(value: Any, op: Operation, model: str) -> tuple[Any, Any]:
    if isinstance(value, list | tuple) and len(value) == 2:
        return value[0], value[1]
    raise CheckerError(
        f"model {model}: cas value must be [from to], got {value!r} (op #{op.id}, process {op.process})"
    )


def _unwritten_read(items: list[tuple[Operation, Any, Any]], initial: Any) -> Operation | None:
    """For read/write/cas: an ok read (or ok cas) expecting a value that is
    neither the initial one nor written by any write or cas (ok or info)."""
    try:
        written = {initial}
        for _, (code, arg), _ in items:
            if code == _WRITE:
                written.add(arg)
            elif code == _CAS:
                written.add(arg[1])
        for op, (code, arg), out in items:
            if out is UNKNOWN:
                continue
            if code == _READ and out not in written:
                return op
            if code == _CAS and arg[0] not in written:
                return op
    except TypeError:  # unhashable values: no shortcut
        return None
    return None


def _prune_unobserved(items: list[tuple[Operation, Any, Any]]) -> list[tuple[Operation, Any, Any]]:
    """For read/write/cas: drop an info write (or info cas) whose new value no
    ok read returns and no cas expects, and an info cas that swaps a value for
    itself. If such an op took effect, nothing could run on the register before
    the next write except ops that would reject the value, so any
    linearization using it stays valid without it."""
    observed: set[Any] = set()
    try:
        for _, (code, arg), out in items:
            if code == _READ and out is not UNKNOWN:
                observed.add(out)
            elif code == _CAS:
                observed.add(arg[0])
        keep = []
        for item in items:
            _, (code, arg), out = item
            if out is UNKNOWN and code in (_WRITE, _CAS):
                new = arg if code == _WRITE else arg[1]
                if (code == _CAS and arg[0] == new) or new not in observed:
                    continue
            keep.append(item)
    except TypeError:  # unhashable values: no pruning
        return items
    return keep


@register_model
class RegisterModel(Model):
    """A single register with read and write; starts at ``initial`` (None = absent)."""

    name = "register"
    _fs: ClassVar[dict[str, int]] = {"read": _READ, "write": _WRITE}

    def __init__(self, initial: Hashable = None):
        self.initial = initial

    def init(self) -> Hashable:
        return self.initial

    def prepare(self, op: Operation) -> tuple[Any, Any]:
        code = self._fs.get(op.f)
        if code is None:
            raise self._unknown_f(op)
        out = UNKNOWN if op.status == "info" else op.output
        if code == _CAS:
            return (code, _pair(op.value, op, self.name)), out
        return (code, op.value), out

    def droppable(self, op_input: Any, op_output: Any) -> bool:
        return op_input[0] == _READ and op_output is UNKNOWN

    def prune(self, items: list[tuple[Operation, Any, Any]]) -> list[tuple[Operation, Any, Any]]:
        return _prune_unobserved(items)

    def impossible(self, items: list[tuple[Operation, Any, Any]]) -> Operation | None:
        return _unwritten_read(items, self.initial)

    def overwrites(self, op_input: Any) -> bool:
        return op_input[0] == _WRITE

    def step(self, state: Any, op_input: Any, op_output: Any) -> tuple[bool, Any]:
        code, arg = op_input
        if code == _READ:
            return op_output is UNKNOWN or op_output == state, state
        if code == _WRITE:
            return True, arg
        # cas: an ok cas needs the expected value; an info cas that would fail
        # has no effect, which is the same as leaving it out (always allowed).
        if state == arg[0]:
            return True, arg[1]
        return False, state

    def describe_op(self, op_input: Any, op_output: Any) -> str:
        code, arg = op_input
        names = {_READ: "read", _WRITE: "write", _CAS: "cas"}
        out = "?" if op_output is UNKNOWN else repr(op_output)
        if code == _READ:
            return f"read -> {out}"
        return f"{names[code]}({arg!r})"


@register_model
class CasRegisterModel(RegisterModel):
    """A register with read, write and compare-and-set ``cas [from to]``.

    The initial value is absent (None) unless given. Etcd-style histories work
    as is: a ``fail`` cas did not happen and is dropped; a timed-out read
    recorded as ``fail`` is dropped too (reads have no effect).
    """

    name = "cas-register"
    _fs: ClassVar[dict[str, int]] = {"read": _READ, "write": _WRITE, "cas": _CAS}


@register_model
class KVModel(Model):
    """A key-value map, checked key by key (each key is an independent register).

    ``get``/``put``/``append`` work on strings: ``get`` of a never-written key
    returns the empty string, ``append`` concatenates. ``read``/``write``/``cas``
    work on any value with the key absent (None) at first. The state of one
    partition is the key's value (None = never written).
    """

    name = "kv"
    _fs: ClassVar[dict[str, int]] = {
        "read": _READ,
        "write": _WRITE,
        "cas": _CAS,
        "get": _GET,
        "put": _PUT,
        "append": _APPEND,
    }

    def prepare(self, op: Operation) -> tuple[Any, Any]:
        code = self._fs.get(op.f)
        if code is None:
            raise self._unknown_f(op)
        out = UNKNOWN if op.status == "info" else op.output
        if code == _CAS:
            return (code, _pair(op.value, op, self.name)), out
        if code == _GET and out is None:
            out = ""
        return (code, op.value), out

    def droppable(self, op_input: Any, op_output: Any) -> bool:
        return op_input[0] in (_READ, _GET) and op_output is UNKNOWN

    def prune(self, items: list[tuple[Operation, Any, Any]]) -> list[tuple[Operation, Any, Any]]:
        if any(inp[0] in (_GET, _PUT, _APPEND) for _, inp, _ in items):
            return items  # string ops: values can be built by appends, keep all
        return _prune_unobserved(items)

    def impossible(self, items: list[tuple[Operation, Any, Any]]) -> Operation | None:
        if any(inp[0] in (_GET, _PUT, _APPEND) for _, inp, _ in items):
            return None
        return _unwritten_read(items, None)

    def overwrites(self, op_input: Any) -> bool:
        return op_input[0] in (_WRITE, _PUT)

    def step(self, state: Any, op_input: Any, op_output: Any) -> tuple[bool, Any]:
        code, arg = op_input
        if code == _GET:
            return op_output is UNKNOWN or op_output == ("" if state is None else state), state
        if code == _APPEND:
            return True, arg if state is None else state + arg
        if code == _PUT or code == _WRITE:
            return True, arg
        if code == _READ:
            return op_output is UNKNOWN or op_output == state, state
        if state == arg[0]:
            return True, arg[1]
        return False, state


@register_model
class CounterModel(Model):
    """A counter starting at 0: ``add`` (value = delta, default 1) and ``read``."""

    name = "counter"
    _fs: ClassVar[dict[str, int]] = {"add": _ADD, "increment": _ADD, "read": _READ}

    def init(self) -> Hashable:
        return 0

    def prepare(self, op: Operation) -> tuple[Any, Any]:
        code = self._fs.get(op.f)
        if code is None:
            raise self._unknown_f(op)
        out = UNKNOWN if op.status == "info" else op.output
        if code == _ADD:
            return (code, 1 if op.value is None else op.value), out
        return (code, None), out

    def droppable(self, op_input: Any, op_output: Any) -> bool:
        return op_input[0] == _READ and op_output is UNKNOWN

    def step(self, state: Any, op_input: Any, op_output: Any) -> tuple[bool, Any]:
        code, arg = op_input
        if code == _ADD:
            return True, state + arg
        return op_output is UNKNOWN or op_output == state, state


@register_model
class SetModel(Model):
    """A grow-only set starting empty: ``add`` (value = element) and ``read`` (all elements)."""

    name = "set"
    _fs: ClassVar[dict[str, int]] = {"add": _ADD, "read": _READ}

    def init(self) -> Hashable:
        return frozenset()

    def prepare(self, op: Operation) -> tuple[Any, Any]:
        code = self._fs.get(op.f)
        if code is None:
            raise self._unknown_f(op)
        if op.status == "info":
            out = UNKNOWN
        elif code == _READ:
            try:
                out = frozenset(op.output or ())
            except TypeError:
                raise CheckerError(
                    f"model set: read must return a collection of hashable elements, "
                    f"got {op.output!r} (op #{op.id})"
                ) from None
        else:
            out = op.output
        return (code, op.value), out

    def droppable(self, op_input: Any, op_output: Any) -> bool:
        return op_input[0] == _READ and op_output is UNKNOWN

    def step(self, state: Any, op_input: Any, op_output: Any) -> tuple[bool, Any]:
        code, arg = op_input
        if code == _ADD:
            return True, state | {arg}
        return op_output is UNKNOWN or op_output == state, state

    def describe(self, state: Any) -> str:
        return "#{" + " ".join(sorted(map(repr, state))) + "}"
