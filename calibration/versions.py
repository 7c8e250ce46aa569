"""The active configuration: the highest ConfigurationVersion.

Each process keeps the configs it has built, keyed by version number, and asks the
database for the current number on every call (one indexed lookup), so a version applied
in any process is used by every process from its next decision on.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db.models import Max

from governance.engine import AegisConfig

from .models import ConfigurationVersion

_built: dict[int, AegisConfig] = {}


def content_hash(parameters: dict[str, Any]) -> str:
    canonical = json.dumps(parameters, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def active_version_number() -> int:
    number = ConfigurationVersion.objects.aggregate(latest=Max("version"))["latest"]
    if number is None:
        raise LookupError("no configuration version is stored; run `manage.py migrate`")
    return number


def config_of(version: int) -> AegisConfig:
    config = _built.get(version)
    if config is None:
        parameters = ConfigurationVersion.objects.values_list("parameters", flat=True).get(version=version)
        config = _built[version] = AegisConfig.from_dict(parameters, base=AegisConfig.default())
    return config


def active_config() -> tuple[int, AegisConfig]:
    """(version number, config) every decision is made under."""
    version = active_version_number()
    return version, config_of(version)


def active_version() -> ConfigurationVersion:
    return ConfigurationVersion.objects.order_by("-version").first()
