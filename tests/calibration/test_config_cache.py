"""Which configuration version is active is remembered per process for
AEGIS_CONFIG_CACHE_SECONDS (calibration/versions.py): a decision costs no query for it,
a version stored through this process is used from the next decision on, and a version
stored by another process (no signal here) within the cache time."""

from __future__ import annotations

import pytest
from cal_support import approved
from clock_support import fake_monotonic
from django.db import connection
from django.test.utils import CaptureQueriesContext

from calibration import services, versions
from calibration.models import ConfigurationVersion
from workflows.services import actor_for


@pytest.fixture
def clock(monkeypatch):
    return fake_monotonic(monkeypatch, versions)


@pytest.fixture
def next_version(alice, bob, monkeypatch):
    """next_version(signal=...) -> the number of a new version applied the normal way (alice
    proposes, bob approves, alice applies); without the signal as another process's apply
    looks from here (nothing tells this process's cache)."""
    def apply(*, signal: bool) -> int:
        current = ConfigurationVersion.objects.order_by("-version").first().parameters["novelty_threshold"]
        proposal = approved(alice, bob, "novelty_threshold", round(current + 0.01, 4))
        if not signal:
            monkeypatch.setattr(versions, "forget_newest", lambda: None)
            monkeypatch.setattr(services, "forget_newest", lambda: None)
        return services.apply(proposal.proposal_id, actor=actor_for(alice)).version
    return apply


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
def test_a_version_stored_in_this_process_is_used_at_once(clock, next_version):
    first, _ = active_queries()
    stored = next_version(signal=True)
    assert stored == first + 1
    assert versions.active_config()[0] == stored


@pytest.mark.django_db
def test_a_version_stored_by_another_process_is_used_within_the_cache_time(clock, next_version):
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
