"""Pre-packed replay chunks (DecisionReplayPack): one row per closed UTC day holding the ids
and concatenated replay vectors of that day's non-shadow decisions, so the calibration
preview reads a million decisions as ~30 rows (docs/decisions.md, "Calibration preview
over packed days").

A day is packed once it has been closed for PACK_GRACE (a decision is stamped inside its
own short transaction, so by then every decision of that day has committed); the days not
packed yet, today included, are read live. Decisions are append-only (a trigger refuses
DELETE), so only something that inserts decisions with an old created_at can make a pack
stale: restore_backup calls `rebuild_replay_packs`, and so must any such import.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import numpy as np
from django.db import connection, transaction
from django.db.models import Max, Min, Q
from django.utils import timezone

from .models import Decision, DecisionReplayPack

PACK_GRACE = timedelta(hours=1)
ID_DTYPE = np.dtype("<i8")
FETCH = 50_000


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def last_closed_day(now: datetime) -> date:
    """The newest day that ended at least PACK_GRACE before `now`."""
    return (now - PACK_GRACE).astimezone(UTC).date() - timedelta(days=1)


def _read(query) -> tuple[list[int], list]:
    """(ids, replay vectors) of a values_list("id", "replay_vector") query, as raw rows: no
    per-row ORM work on a million of them."""
    sql, params = query.order_by("id").query.sql_with_params()
    ids: list[int] = []
    blobs: list = []
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(FETCH):
            ids.extend(row[0] for row in rows)
            blobs.extend(row[1] for row in rows)
    return ids, blobs


def _pack_day(day: date, decision_model, pack_model) -> None:
    start = day_start(day)
    query = decision_model.objects.filter(created_at__gte=start, created_at__lt=start + timedelta(days=1),
                                          shadow=False).values_list("id", "replay_vector")
    ids, blobs = _read(query)
    pack_model.objects.update_or_create(day=day, defaults={
        "count": len(ids), "ids": np.asarray(ids, dtype=ID_DTYPE).tobytes(), "vectors": b"".join(blobs),
        "packed_at": timezone.now()})


def pack_closed_days(now: datetime | None = None, *, decision_model=Decision, pack_model=DecisionReplayPack) -> int:
    """Pack every closed day after the newest pack (from the oldest decision when there is
    none), empty days too so the reader knows they are covered; one transaction per day.
    Returns the number of days packed. The models are parameters for the data migration."""
    last = last_closed_day(now or timezone.now())
    newest = pack_model.objects.aggregate(day=Max("day"))["day"]
    if newest is not None:
        first = newest + timedelta(days=1)
    else:
        oldest = decision_model.objects.aggregate(at=Min("created_at"))["at"]
        if oldest is None:
            return 0
        first = oldest.astimezone(UTC).date()
    packed = 0
    day = first
    while day <= last:
        with transaction.atomic():
            _pack_day(day, decision_model, pack_model)
        packed += 1
        day += timedelta(days=1)
    return packed


def rebuild_replay_packs(now: datetime | None = None, *, decision_model=Decision,
                         pack_model=DecisionReplayPack) -> int:
    """Drop every pack and pack all closed days again (after a restore or an import of old
    decisions); atomic, so a reader sees the old packs or the new ones."""
    with transaction.atomic():
        pack_model.objects.all().delete()
        return pack_closed_days(now, decision_model=decision_model, pack_model=pack_model)


def _unpacked(since: datetime, packed_days: list[date]) -> Q:
    """created_at from `since` on, outside every packed day (ascending, all after `since`)."""
    gaps = Q()
    start = since
    for day in packed_days:
        if day_start(day) > start:
            gaps |= Q(created_at__gte=start, created_at__lt=day_start(day))
        start = day_start(day + timedelta(days=1))
    return gaps | Q(created_at__gte=start)


def load_replay_rows(since: datetime) -> tuple[np.ndarray, bytes]:
    """(primary keys ascending, concatenated replay vectors in the same order) of the
    non-shadow decisions created at or after `since`: whole days from their packs, the rest
    (the partial first day, days not packed yet, today) straight from the decisions."""
    first_whole = since.astimezone(UTC).date()
    if day_start(first_whole) < since:
        first_whole += timedelta(days=1)
    packs = list(DecisionReplayPack.objects.filter(day__gte=first_whole).order_by("day")
                 .values_list("day", "ids", "vectors"))
    ids, blobs = _read(Decision.objects.filter(_unpacked(since, [day for day, _, _ in packs]), shadow=False)
                       .values_list("id", "replay_vector"))
    id_parts = [np.asarray(ids, dtype=np.int64)] + [np.frombuffer(part, dtype=ID_DTYPE) for _, part, _ in packs]
    all_ids = np.concatenate(id_parts).astype(np.int64, copy=False)
    vectors = b"".join([*blobs, *(part for _, _, part in packs)])
    if len(all_ids) > 1 and not np.all(all_ids[1:] > all_ids[:-1]):
        order = np.argsort(all_ids, kind="stable")
        width = len(vectors) // len(all_ids)
        all_ids = all_ids[order]
        vectors = np.frombuffer(vectors, dtype=np.uint8).reshape(-1, width)[order].tobytes()
    return all_ids, vectors
