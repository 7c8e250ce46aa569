"""Which configuration version is active is remembered per process for
AEGIS_CONFIG_CACHE_SECONDS (calibration/versions.py): a decision costs no query for it,
a version stored through this process is used from the next decision on, and a version
stored by another process (no signal here) within the cache time."""

from __future__ import annotations

import pytest
from clock_support import fake_monotonic
from django.db import connection
from django.test.utils import CaptureQueriesContext

from calibration import versions
from calibration.models import ConfigurationVersion


@pytest.fixture
def clock(monkeypatch):
    return fake_monotonic(monkeypatch, versions)


def next_version(*, signal: bool) -> int:
    newest = ConfigurationVersion.objects.order_by("-version").first()
    parameters = {**newest.parameters}
    version = ConfigurationVersion(version=newest.version + 1, parameters=parameters,
                                   content_hash=versions.content_hash(parameters), source="calibration",
                                   author="test", parent=newest)
    if signal:
        version.save()
    else:
        ConfigurationVersion.objects.bulk_create([version])  # as another process's apply looks from here
    return version.version


def active_queries() -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        version, _ = versions.active_config()
    return version, len(queries.captured_queries)


@pytest.mark.django_db
def test_the_active_version_is_read_once_per_cache_time(clock):
    first, _ = active_queries()
    assert active_queries() == (first, 0)
    clock.now += 1.1
    assert active_queries() == (first, 1)


@pytest.mark.django_db
def test_a_version_stored_in_this_process_is_used_at_once(clock):
    first, _ = active_queries()
    stored = next_version(signal=True)
    assert stored == first + 1
    assert versions.active_config()[0] == stored


@pytest.mark.django_db
def test_a_version_stored_by_another_process_is_used_within_the_cache_time(clock):
    first, _ = active_queries()
    stored = next_version(signal=False)
    clock.now += 0.9
    assert versions.active_config()[0] == first
    clock.now += 0.2
    assert versions.active_config()[0] == stored


@pytest.mark.django_db
def test_zero_seconds_reads_every_time(clock, settings):
    settings.AEGIS_CONFIG_CACHE_SECONDS = 0
    first, _ = active_queries()
    assert active_queries() == (first, 1)
