"""Pure pieces a campaign is built from: seeds, the action space, campaign.toml.

Why here and not in the loop: these are decisions (which seed an execution
gets, which faults the scheduler may pick, what a resumed campaign was
started with) that must be identical across processes and testable without
a cluster.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fuzzer.config import REPO, TargetConfig, config_from_dict, dumps
from fuzzer.durations import format_duration
from fuzzer.errors import ConfigError, InputError, UsageError
from fuzzer.faults import SHAPES, Schedule
from fuzzer.scheduler import SCHEDULERS, ActionSpace

__all__ = [
    "derive_seed",
    "action_space_for",
    "split_overrides",
    "CampaignMeta",
    "campaign_toml",
    "read_campaign_toml",
    "corpus_seeds",
]


def derive_seed(campaign_seed: int, exec_no: int) -> int:
    """The seed of execution ``exec_no`` (pure: same campaign seed, same executions)."""
    h = hashlib.blake2b(f"hbfuzz-exec:{campaign_seed}:{exec_no}".encode(), digest_size=8)
    return int.from_bytes(h.digest(), "big") >> 1  # < 2**63


def action_space_for(cfg: TargetConfig) -> ActionSpace:
    """The scheduler's enumerated action space from the config's ``[faults]`` table.

    ``[faults]`` gives (low, high) ranges; the enumerated space takes both ends
    of each range as the concrete parameter values (a tabular learner needs a
    finite set; the two ends are the weak and the strong version of a fault)."""
    f = cfg.faults
    n = cfg.cluster.nodes
    need = {"ring": 3, "bridge": 3, "majority-minority": 2, "halves": 2, "one-way": 2}
    shapes = [s for s in f.shapes if s in SHAPES and s not in ("isolate", "groups")
              and n >= need.get(s, 2)]

    def two(r: tuple[float, float]) -> list[float]:
        return sorted({float(r[0]), float(r[1])})

    desc: dict[str, Any] = {
        "allowed": list(f.allowed),
        "nodes": n,
        "targets": list(f.nodes),
        "shapes": shapes,
        "delays": [format_duration(x) for x in two(f.delay)],
        "jitter": format_duration(float(f.jitter[0])),
        "drops": two(f.drop),
        "duplicates": two(f.duplicate),
        "reorders": two(f.reorder),
        "skews": [format_duration(x, signed=True) for x in two(f.clock_skew) if x != 0.0]
        or ["+1s"],
        "skew_rate": float(f.clock_rate[1]) if f.clock_rate[1] > 0 else 1.0,
    }
    return ActionSpace.from_dict(desc, f"{cfg.source}: [faults]")


def split_overrides(overrides: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """Split ``--set`` strings into config overrides and ``scheduler.KEY=VALUE``
    settings (Q-learning/power parameters; values parsed as TOML if they parse)."""
    config, sched = [], {}
    for o in overrides:
        key, sep, value = o.partition("=")
        if key.strip().startswith("scheduler."):
            if not sep:
                raise UsageError(f"--set {o}: expected KEY=VALUE")
            k = key.strip().removeprefix("scheduler.")
            try:
                sched[k] = tomllib.loads(f"v = {value}")["v"]
            except tomllib.TOMLDecodeError:
                sched[k] = value
        else:
            config.append(o)
    return config, sched


@dataclass(frozen=True)
class CampaignMeta:
    """The ``[campaign]`` table of campaign.toml: what a resume must reuse."""

    seed: int
    scheduler: str
    target_file: str = ""
    overrides: tuple[str, ...] = ()
    scheduler_config: dict[str, Any] = field(default_factory=dict)
    started: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "scheduler": self.scheduler,
            "target_file": self.target_file,
            "overrides": list(self.overrides),
            "scheduler_config": dict(self.scheduler_config),
            "started": self.started,
        }


def campaign_toml(cfg: TargetConfig, meta: CampaignMeta) -> str:
    """campaign.toml: ``[campaign]`` first, then the resolved target config."""
    return ("# hbfuzz campaign: the resolved config and the seed (hbfuzz run --resume reads it)\n"
            + dumps({"campaign": meta.to_dict(), **cfg.to_dict()}))


def read_campaign_toml(path: str | Path, load_module: bool = True
                       ) -> tuple[TargetConfig, CampaignMeta]:
    """Read campaign.toml back: the config (validated) and the campaign table."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{p.parent} is not a campaign directory (no campaign.toml)") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", path=str(p)) from None
    camp = data.pop("campaign", None)
    if not isinstance(camp, dict):
        raise ConfigError("missing the [campaign] table", path=str(p), where="campaign")
    try:
        seed = camp["seed"]
        sched = camp["scheduler"]
        if type(seed) is not int or seed < 0:
            raise ConfigError("expected a non-negative integer", path=str(p),
                              where="campaign.seed")
        if sched not in SCHEDULERS:
            raise ConfigError(f"unknown scheduler {sched!r}", path=str(p),
                              where="campaign.scheduler")
        meta = CampaignMeta(
            seed=seed,
            scheduler=sched,
            target_file=str(camp.get("target_file", "")),
            overrides=tuple(str(x) for x in camp.get("overrides", [])),
            scheduler_config=dict(camp.get("scheduler_config", {})),
            started=float(camp.get("started", 0.0)),
        )
    except KeyError as exc:
        raise ConfigError("is required", path=str(p), where=f"campaign.{exc.args[0]}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad value ({exc})", path=str(p), where="campaign") from None
    cfg = config_from_dict(data, str(p), p.parent, load_module=load_module)
    return cfg, meta


def corpus_seeds(cfg: TargetConfig, actions: ActionSpace) -> list[Schedule]:
    """Seed schedules from ``corpus/<target name>/*.sched`` whose faults the action
    space allows (others are skipped: they could not be learned from)."""
    d = REPO / "corpus" / cfg.target.name
    out = []
    for p in sorted(d.glob("*.sched")) if d.is_dir() else []:
        try:
            s = Schedule.load(p)
        except InputError:
            continue
        if s.steps and all(st.fault in actions for st in s.steps):
            out.append(s)
    return out
