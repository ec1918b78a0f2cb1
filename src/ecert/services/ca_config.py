"""The hierarchy's names, key types and lifetimes, read from a TOML file (the demo one by default)."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ..core.errors import ConfigError

__all__ = ["CaEntry", "ExternalRootEntry", "HierarchyConfig", "load_hierarchy_config"]

_LABEL = r"^[a-z0-9][a-z0-9-]{0,62}$"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Organization(_Frozen):
    name: str = Field(min_length=1, max_length=64)
    country: str = Field(pattern=r"^[A-Z]{2}$")


class CaEntry(_Frozen):
    label: str = Field(pattern=_LABEL)
    common_name: str = Field(min_length=1, max_length=64)
    key: str = "ec-p256"
    validity_days: int = Field(ge=1, le=9132)


class ExternalRootEntry(CaEntry):
    organization: str = Field(min_length=1, max_length=64)
    cross_validity_days: int = Field(default=3650, ge=1, le=9132)


class HierarchyConfig(_Frozen):
    organization: Organization
    root: CaEntry
    ov: CaEntry
    ev: CaEntry
    external_root: ExternalRootEntry | None = None


def load_hierarchy_config(path: Path | None) -> HierarchyConfig:
    """Parse ``path`` (or the packaged demo file); a bad file is a ConfigError naming the problem."""
    try:
        if path is None:
            text = resources.files("ecert").joinpath("demo.toml").read_text(encoding="utf-8")
        else:
            text = path.read_text(encoding="utf-8")
        return HierarchyConfig.model_validate(tomllib.loads(text))
    except (OSError, tomllib.TOMLDecodeError, ValueError) as exc:
        raise ConfigError(f"hierarchy config {path or 'demo.toml'} is not usable: {exc}") from exc
