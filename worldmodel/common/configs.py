"""Two steps every config dataclass of a model goes through: named overrides, then validation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from worldmodel.common.errors import ConfigError


class Checked(Protocol):
    def validate(self) -> None: ...


C = TypeVar("C", bound=Checked)


def validated(cfg: C | None, default: type[C]) -> C:
    """The given config (or `default()`), range-checked before a model is built from it."""
    cfg = default() if cfg is None else cfg
    cfg.validate()
    return cfg


def with_overrides(cfg: C, overrides: Mapping[str, Any], what: str) -> C:
    """Set each `key=value` on `cfg`; an unknown key is one `ConfigError` naming `what`."""
    for key, value in overrides.items():
        if not hasattr(cfg, key):
            raise ConfigError(f"unknown {what} config key '{key}'")
        setattr(cfg, key, value)
    return cfg
