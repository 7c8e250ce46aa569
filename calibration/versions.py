"""The active configuration: the newest ConfigurationVersion that verifies (integrity.py).

Each process keeps the configs it has built, keyed by version number and content hash, and
each version's verdict, keyed by its hashes, so a version is verified once per process. It
remembers the stored versions' status for AEGIS_CONFIG_CACHE_SECONDS (default 1), so a
decision costs no query for it. A version applied (or restored) in this process is used
from its next decision on; every other process picks it up within that time. A stored
version that does not verify is never served: the one before it stays active. Each decision
stores the version it was made under, so which one it was is never in doubt.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from governance.engine import AegisConfig

from . import integrity
from .chain import content_hash
from .models import ConfigurationVersion

__all__ = ["active_config", "active_version", "active_version_number", "config_of", "configuration_status",
           "content_hash", "forget_newest"]

_built: dict[tuple[int, str], AegisConfig] = {}
_verdicts: dict[integrity.VerdictKey, str | None] = {}
# (monotonic deadline, status of the stored versions), or None.
_status_seen: tuple[float, integrity.ConfigurationStatus] | None = None


def configuration_status() -> integrity.ConfigurationStatus:
    """Which version is served and which stored ones are rejected; one query per cache time
    once every stored version has its verdict."""
    global _status_seen
    seen = _status_seen
    if seen is not None and seen[0] > time.monotonic():
        return seen[1]
    status = integrity.judge(integrity.stored_keys(), _verdicts)
    if not status.checked:
        raise LookupError("no configuration version is stored; run `manage.py migrate`")
    if settings.AEGIS_CONFIG_CACHE_SECONDS > 0:
        _status_seen = (time.monotonic() + settings.AEGIS_CONFIG_CACHE_SECONDS, status)
    return status


def _newest() -> tuple[int, str]:
    status = configuration_status()
    if status.served is None:
        raise LookupError(f"no stored configuration version verifies ({status.first_rejected})")
    return status.served, status.served_content_hash


def forget_newest() -> None:
    """Look the newest version up again on the next call (after an apply or a restore)."""
    global _status_seen
    _status_seen = None


@receiver([post_save, post_delete], sender=ConfigurationVersion)
def _version_changed(**kwargs):
    # Now, and again once the transaction commits: a decision of another thread in between
    # must not keep the old newest version for the whole cache time.
    forget_newest()
    transaction.on_commit(forget_newest)


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
    """The served version's row."""
    return ConfigurationVersion.objects.get(version=active_version_number())
