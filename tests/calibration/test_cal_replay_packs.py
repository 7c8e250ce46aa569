"""Pre-packed replay days (governance.replay_packs): the preview read through the packs must
return exactly what a direct read of the decisions returns, whatever is packed, and every
decision is counted once — at day boundaries, while packing, and after old decisions are
inserted and the packs rebuilt."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from cal_decisions import proposal_body
from cal_support import ensure_seed
from django.core.management import call_command
from django.utils import timezone

from calibration import services
from governance.engine import parse_proposal
from governance.models import Decision, DecisionReplayPack, Tier
from governance.replay_packs import PACK_GRACE, load_replay_rows, pack_closed_days, rebuild_replay_packs
from governance.services import CallContext, create_customer, evaluate_proposal

# A fixed "now" so the boundaries are exact: the window (30 days) starts mid-day.
NOW = datetime(2026, 6, 15, 10, 30, tzinfo=UTC)
MIDNIGHT = datetime(2026, 6, 15, tzinfo=UTC)
WINDOW_START = NOW - timedelta(days=30)
TICK = timedelta(microseconds=1)


def decide(ctx, rng, index, at, *, shadow=False):
    body = proposal_body(rng, index)
    body["shadow_mode"] = shadow
    return evaluate_proposal(ctx, parse_proposal(body), now=at)["decision_id"]


@pytest.fixture
def decisions(db):
    """~90 decisions over the window's days, on both sides of every boundary that matters:
    the window start, midnights, today; a few shadow ones and some older than the window."""
    ensure_seed()
    customer, _, _ = create_customer("Pack Co", tier=Tier.objects.get(name="team"))
    ctx = CallContext(customer=customer, api_key=None)
    rng = random.Random(5)
    times = [WINDOW_START - TICK, WINDOW_START, WINDOW_START + TICK, NOW - timedelta(days=40),
             MIDNIGHT - TICK, MIDNIGHT, MIDNIGHT + TICK, NOW - TICK]
    for days in (1, 2, 3, 7, 12, 20, 28):
        day = MIDNIGHT - timedelta(days=days)
        times += [day, day - TICK, day + timedelta(hours=rng.uniform(0, 24))]
    times += [WINDOW_START + timedelta(seconds=rng.uniform(0, 30 * 86400)) for _ in range(50)]
    ids = [decide(ctx, rng, i, at) for i, at in enumerate(times)]
    shadow = [decide(ctx, rng, 1000 + i, MIDNIGHT - timedelta(days=i, hours=3), shadow=True) for i in range(4)]
    return {"ctx": ctx, "rng": rng, "ids": ids, "shadow": shadow}


def direct_read(since):
    """What load_replay_window read before the packs: every non-shadow decision since `since`."""
    rows = list(Decision.objects.filter(created_at__gte=since, shadow=False).order_by("id")
                .values_list("id", "replay_vector"))
    return np.asarray([r[0] for r in rows], dtype=np.int64), b"".join(bytes(r[1]) for r in rows)


def assert_same_as_direct(since=WINDOW_START):
    ids, vectors = load_replay_rows(since)
    expected_ids, expected_vectors = direct_read(since)
    assert ids.tolist() == expected_ids.tolist()
    assert vectors == expected_vectors


def test_without_packs_the_read_is_the_direct_read(decisions):
    assert not DecisionReplayPack.objects.exists()
    assert_same_as_direct()


@pytest.mark.parametrize("packed_until", [NOW - timedelta(days=25), NOW - timedelta(days=3), NOW])
def test_packed_days_plus_live_rows_equal_the_direct_read(decisions, packed_until):
    pack_closed_days(packed_until)
    assert DecisionReplayPack.objects.exists()
    assert_same_as_direct()
    for since in (WINDOW_START - timedelta(days=20), MIDNIGHT - timedelta(days=7), MIDNIGHT - timedelta(days=7) + TICK):
        assert_same_as_direct(since)


@pytest.mark.parametrize(("parameter", "value"), [("novelty_threshold", 0.9), ("complexity_floor", 0.6),
                                                  ("quality_min_score", 0.8)])
def test_preview_is_identical_with_and_without_packs(decisions, parameter, value):
    direct = services.preview_change(parameter, value, now=NOW)
    pack_closed_days(NOW)
    packed = services.preview_change(parameter, value, now=NOW)
    assert packed.decisions == direct.decisions == len(direct_read(WINDOW_START)[0])
    assert (packed.changes, packed.examples, packed.changed) == (direct.changes, direct.examples, direct.changed)
    assert direct.changed > 0


def test_a_day_is_packed_only_once_closed_for_the_grace_and_only_once(decisions):
    yesterday = (MIDNIGHT - timedelta(days=1)).date()
    pack_closed_days(MIDNIGHT + PACK_GRACE - TICK)
    assert not DecisionReplayPack.objects.filter(day=yesterday).exists()
    assert pack_closed_days(MIDNIGHT + PACK_GRACE) == 1
    assert pack_closed_days(MIDNIGHT + PACK_GRACE) == 0
    pack = DecisionReplayPack.objects.get(day=yesterday)
    # midnight belongs to the day it starts; the tick before it to yesterday; shadow left out
    expected = Decision.objects.filter(created_at__gte=MIDNIGHT - timedelta(days=1), created_at__lt=MIDNIGHT,
                                       shadow=False).order_by("id").values_list("id", flat=True)
    assert np.frombuffer(pack.ids, dtype="<i8").tolist() == list(expected)
    assert pack.count == len(expected) > 0
    assert DecisionReplayPack.objects.filter(count=0).exists()  # empty days are packed (covered) too


def test_a_decision_committed_after_packing_is_read_live_once(decisions):
    pack_closed_days(NOW)
    # Made while (or after) the closed days are packed: stamped now, so in today's live rows.
    late = decide(decisions["ctx"], decisions["rng"], 2000, NOW)
    pack_closed_days(NOW)
    ids, _ = load_replay_rows(WINDOW_START)
    late_pk = Decision.objects.get(decision_id=late).pk
    assert ids.tolist().count(late_pk) == 1
    assert_same_as_direct()


def test_old_decisions_inserted_later_are_counted_after_a_rebuild(decisions):
    """What a restore (or any import of old decisions) does: restore_backup rebuilds."""
    pack_closed_days(NOW)
    decide(decisions["ctx"], decisions["rng"], 3000, MIDNIGHT - timedelta(days=5, hours=2))
    assert len(load_replay_rows(WINDOW_START)[0]) == len(direct_read(WINDOW_START)[0]) - 1
    rebuild_replay_packs(NOW)
    assert_same_as_direct()


def test_the_pack_command_packs_and_rebuilds(decisions):
    call_command("aegis_pack_replay")
    days = DecisionReplayPack.objects.count()
    assert days > 0
    call_command("aegis_pack_replay", "--rebuild")
    assert DecisionReplayPack.objects.count() == days
    assert_same_as_direct(timezone.now() - timedelta(days=30))
