"""The active configuration: the highest ConfigurationVersion.

Each process keeps the configs it has built, keyed by version number and content hash,
and asks the database for the newest version on every call (one indexed lookup), so a
version applied in any process is used by every process from its next decision on (and a
restored database that reuses a number with other contents is not served stale).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from governance.engine import AegisConfig

from .models import ConfigurationVersion

_built: dict[tuple[int, str], AegisConfig] = {}


def content_hash(parameters: dict[str, Any]) -> str:
    canonical = json.dumps(parameters, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _newest() -> tuple[int, str]:
    newest = ConfigurationVersion.objects.order_by("-version").values_list("version", "content_hash").first()
    if newest is None:
        raise LookupError("no configuration version is stored; run `manage.py migrate`")
    return newest


def active_version_number() -> int:
    return _newest()[0]


def config_of(version: int, digest: str | None = None) -> AegisConfig:
    if digest is None:
        digest = ConfigurationVersion.objects.values_list("content_hash", flat=True).get(version=version)
    config = _built.get((version, digest))
    if config is None:
        parameters = ConfigurationVersion.objects.values_list("parameters", flat=True).get(version=version)
        config = _built[(version, digest)] = AegisConfig.from_dict(parameters, base=AegisConfig.default())
    return config


def active_config() -> tuple[int, AegisConfig]:
    """(version number, config) every decision is made under."""
    version, digest = _newest()
    return version, config_of(version, digest)


def active_version() -> ConfigurationVersion:
    return ConfigurationVersion.objects.order_by("-version").first()
