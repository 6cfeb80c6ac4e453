"""Bundled targets: per-target config (target.toml) and adapter code."""
