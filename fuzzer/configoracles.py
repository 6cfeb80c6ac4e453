"""Readers of ``[oracles]`` and ``[roles]``: what decides a finding, and who is leader.

Why apart from :mod:`fuzzer.configsections`: these two tables name code
(invariants, probes) that may live in the target module, so they resolve
``module:attr`` references and build each invariant once at load time, the
only way to catch a bad parameter before an execution starts.
"""

from __future__ import annotations

import re
from dataclasses import fields
from types import ModuleType

from fuzzer.checkers import invariants as inv
from fuzzer.checkers.liveness import LivenessPolicy
from fuzzer.checkers.models import model_names
from fuzzer.checkers.workloads import CHECKERS
from fuzzer.configschema import Context, Table, raw_message, show, suggest
from fuzzer.configtypes import InvariantSpec, LogRule, OraclesConfig, RolesConfig, WorkloadConfig
from fuzzer.errors import ConfigError
from fuzzer.targetmodule import resolve_ref

__all__ = ["ROLE_PROBES", "read_oracles", "build_invariant", "read_roles"]

ROLE_PROBES = ("status", "log", "none")


# --------------------------------------------------------------------------- [oracles]


def read_oracles(t: Table, wl: WorkloadConfig, module: ModuleType | None, *,
                 resolve: bool) -> OraclesConfig:
    ctx = t.ctx
    models = ("none", *model_names())
    model = t.str("model", "kv" if wl.kind == "kv" else "none", choices=models)
    checkers = ("none", *sorted(CHECKERS))
    checker = t.str("checker", wl.name if wl.kind == "maelstrom" else "none", choices=checkers)
    checker_timeout = t.duration("checker_timeout", 30.0, positive=True)
    rows = t.raw("invariants", [])
    if not isinstance(rows, list):
        raise t.err("invariants", "expected an array of tables like [[oracles.invariants]]")
    specs = []
    for i, row in enumerate(rows):
        key = f"invariants[{i}]"
        if not isinstance(row, dict) or not isinstance(row.get("name"), str):
            raise t.err(key, "expected a table with a name, like { name = \"one-leader-per-term\" }")
        params = {k: v for k, v in row.items() if k != "name"}
        spec = InvariantSpec(row["name"], tuple(params.items()))
        if resolve or not spec.name.startswith("module:"):
            build_invariant(spec, module, ctx, f"oracles.{key}")
        specs.append(spec)
    lv = t.raw("liveness", {})
    if not isinstance(lv, dict):
        raise t.err("liveness", "expected a table, like [oracles.liveness]")
    lv = dict(lv)
    lt = Table(ctx, lv, "oracles.liveness")
    probe = lt.str("probe", "workload")
    if probe not in ("workload", "none"):
        if ":" not in probe:
            raise lt.err("probe", f"expected workload, none or module:attr, got {show(probe)}")
        if resolve:
            resolve_ref(probe, module, source=ctx.source, where=ctx.where("oracles.liveness.probe"))
    lt.done(extra_known=[f.name for f in fields(LivenessPolicy)])  # typos: did you mean?
    lv.pop("probe", None)
    for key in ("bound", "attempt_timeout", "interval"):
        if key in lv:
            lv[key] = lt.to_duration(key, lv[key])
    try:
        policy = LivenessPolicy.from_config(lv, source=ctx.source)
    except ConfigError as exc:
        raise ctx.rebase(exc, "oracles.") from None
    t.done()
    return OraclesConfig(
        model=None if model == "none" else model,
        checker=None if checker == "none" else checker,
        checker_timeout=checker_timeout,
        invariants=tuple(specs),
        liveness=policy,
        liveness_probe=probe,
    )


def build_invariant(spec: InvariantSpec, module: ModuleType | None, ctx: Context,
                    where: str) -> inv.Invariant:
    """One invariant: built-in/registered, ``pkg.mod:attr``, or ``module:attr`` of the
    target module. Errors name ``where`` (``oracles.invariants[i]``)."""
    if spec.name.startswith("module:"):
        factory = resolve_ref(spec.name, module, source=ctx.source, where=ctx.where(where))
        params = dict(spec.params)
        if isinstance(factory, type) and issubclass(factory, inv.Invariant):
            try:
                return factory(**params)
            except Exception as exc:  # user code: any failure is a config error
                raise ctx.err(where, f"bad parameters: {type(exc).__name__}: {exc}") from None
        if params:
            raise ctx.err(where, f"function invariant takes no parameters, got {sorted(params)}")
        return inv.FunctionInvariant(factory, name=spec.name)
    if ":" not in spec.name and spec.name not in inv.REGISTRY:
        raise ctx.err(where, f"unknown invariant {show(spec.name)}"
                      + suggest(spec.name, inv.REGISTRY))
    try:
        return inv.build_invariant(spec.as_config(), source=ctx.source)
    except ConfigError as exc:
        raise ctx.retarget(ConfigError(raw_message(exc), path=ctx.source, where=where)) from None


# --------------------------------------------------------------------------- [roles]

_RULE_KEYS = ("regex", "set", "ints", "name")
_GROUP = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def read_roles(t: Table, module: ModuleType | None, *, resolve: bool) -> RolesConfig:
    probe = t.str("probe", "none", choices=ROLE_PROBES)
    timeout = t.duration("timeout", 1.0, positive=True)
    function = ""
    rules: list[LogRule] = []
    if probe == "status":
        function = t.str("function", "module:role_probe")
        if resolve:
            resolve_ref(function, module, source=t.ctx.source,
                        where=t.ctx.where(t.key("function")))
    elif "function" in t.data:
        raise t.err("function", 'only applies to probe = "status"')
    rows = t.raw("rules", [])
    if not isinstance(rows, list):
        raise t.err("rules", "expected an array of tables like [[roles.rules]]")
    if probe == "log" and not rows:
        raise t.err("rules", 'probe = "log" needs at least one [[roles.rules]] row')
    for i, row in enumerate(rows):
        rules.append(_log_rule(Table(t.ctx, row, f"{t.prefix}.rules[{i}]")))
    t.done()
    return RolesConfig(probe=probe, function=function, timeout=timeout, rules=tuple(rules))


def _log_rule(r: Table) -> LogRule:
    regex = r.str("regex")
    try:
        pattern = re.compile(regex)
    except re.error as exc:
        raise r.err("regex", f"bad regex {show(regex)}: {exc}") from None
    sets = r.raw("set")
    if not isinstance(sets, dict) or not sets:
        raise r.err("set", "expected a table of STATE key = value template")
    pairs = []
    for key, tmpl in sets.items():
        if isinstance(tmpl, bool) or not isinstance(tmpl, str | int):
            raise r.err(f"set.{key}", f"expected a string, got {show(tmpl)}")
        for group in _GROUP.findall(str(tmpl)):
            if group not in pattern.groupindex:
                raise r.err(f"set.{key}", f"uses {{{group}}}, which is not a named group of regex")
        pairs.append((str(key), str(tmpl)))
    ints = r.str_list("ints", ())
    for k in ints:
        if k not in sets:
            raise r.err("ints", f"names {show(k)}, which the rule does not set")
    rule = LogRule(regex, tuple(pairs), ints, r.str("name", "", empty=True))
    r.done()
    return rule
