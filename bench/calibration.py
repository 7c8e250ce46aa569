"""Calibration impact-preview benchmark: `.venv/bin/python bench/calibration.py [--rows N]
[--runs 3] [--distinct 4096] [--profile] [--keep] [--database-url URL]`.

Measures, against the target of the calibration issue,

  - `calibration.services.preview_change("novelty_threshold", 0.9)` end to end (database
    read + replay under both configurations + example lookups) over N stored decisions
    (default 1,000,000), median of --runs                                    target ≤ 2 s
  - with the closed days pre-packed (governance.replay_packs, what the hourly task keeps
    current; the packing itself is timed) and, for comparison, before packing (every row
    read live)
  - its two halves separately: the database read (`load_replay_window`) and the replay
    (`unpack_replay` + `evaluate_batch` under the active and the proposed config + diff)
  - for comparison, other ways to read the same rows (what a faster `load_replay_window`
    could do): the ORM without the model's default ORDER BY, a raw DB-API cursor, and two
    experiments on the throwaway database — a covering index (shadow, created_at, id,
    replay_vector) and a pre-packed table holding one row per day (ids + concatenated
    vectors); skip those with --no-experiments

and prints one table. By default everything runs on a throwaway SQLite database in a temp
dir (removed at the end unless --keep), with DEBUG=1 and `manage.py migrate`; nothing
listens on the network. --database-url runs against a database you provide instead (its
decision table is filled; use a throwaway database).

The stored decisions are generated fast but valid: a few thousand distinct proposals
(varied gates, impacts, utility, drift) are decided once with the real engine
(`pcw_decide`, drift computed from samples), packed with `governance.engine.replay.pack_replay`
and reused; the rows are inserted with one executemany per batch, created_at spread over
the last 30 days (inside kl_window_days), non-shadow. Exit status 0 whether or not the
target is met; --profile (or a missed target) prints where the time goes (cProfile).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from bench_support import median_time, profile, setup_django

TARGET_SECONDS = 2.0
DEFAULT_ROWS = 1_000_000
INSERT_BATCH = 50_000


# --- data -----------------------------------------------------------------------------------

def distinct_decisions(count: int, seed: int = 11):
    """[(ProposalInput, status, drift status, replay vector)] decided by the real engine."""
    from governance.engine import AegisConfig, ProposalInput, UtilityResult, pcw_decide
    from governance.engine.replay import pack_replay

    rng = random.Random(seed)
    config = AegisConfig.default()
    baseline = tuple(rng.gauss(0.0, 1.0) for _ in range(60))
    out = []
    for i in range(count):
        utility = (UtilityResult(rng.uniform(-0.1, 0.3), rng.choice([0.0, 0.02, 0.05, 0.1]))
                   if rng.random() < 0.3 else None)
        drift = rng.random() < 0.25
        proposal = ProposalInput(
            proposal_summary=f"bench proposal {i}",
            estimated_impact=rng.choice(["low", "medium", "medium", "high", "critical"]),
            risk_baseline=rng.choice([0.0, 0.01, 0.02, 0.05, 0.1]), risk_proposed=rng.uniform(0.0, 0.3),
            profit_baseline=rng.uniform(0.0, 1.5), profit_proposed=rng.uniform(0.0, 1.5),
            novelty_score=rng.uniform(0.0, 1.0), complexity_score=rng.uniform(0.3, 1.0),
            quality_score=rng.uniform(0.5, 1.0),
            quality_subscores=tuple(rng.choice([0.0, 0.5, 0.7, 0.9]) for _ in range(rng.randint(0, 4))),
            utility_result=utility, requires_human_approval=rng.random() < 0.05,
            drift_baseline_data=baseline if drift else None,
            drift_current_data=tuple(rng.gauss(rng.uniform(0, 2), 1.0) for _ in range(60)) if drift else None)
        decision = pcw_decide(proposal, config)
        kl = decision.drift.kl_divergence if decision.drift is not None else None
        drift_status = decision.drift.status if decision.drift is not None else ""
        out.append((proposal, decision.status, drift_status, pack_replay(proposal, decision.status, kl)))
    return out


def insert_decisions(rows: int, distinct: int) -> float:
    """Insert `rows` decisions; returns seconds."""
    from django.db import connection, transaction
    from django.utils import timezone

    from governance.models import Customer, Decision, Tier
    from governance.services import create_customer

    started = time.perf_counter()
    customer = Customer.objects.filter(name="Bench Co").first() or create_customer(
        "Bench Co", tier=Tier.objects.get(name="enterprise"))[0]
    templates = distinct_decisions(distinct)
    fields = ["decision_id", "customer_id", "api_key_id", "channel", "created_at", "status", "shadow",
              "config_version", "idempotency_key", "request_id", "proposal_summary", "agent_id", "session_id",
              "metadata", "estimated_impact", "requires_human_approval", "risk_baseline", "risk_proposed",
              "profit_baseline", "profit_proposed", "novelty_score", "complexity_score", "quality_score",
              "has_zero_subscore", "utility_mean", "utility_std_error", "drift_status", "replay_vector",
              "request_data", "response", "content_hash"]
    meta = Decision._meta
    columns = [meta.get_field(name).column for name in fields]
    table = connection.ops.quote_name(meta.db_table)
    sql = (f"INSERT INTO {table} ({', '.join(connection.ops.quote_name(c) for c in columns)}) "
           f"VALUES ({', '.join(['%s'] * len(columns))})")
    def prep(name, value):
        """`value` as stored in column `name`, prepared by that column's own field (the PII
        columns are encrypted, request_data/response are plain JSON)."""
        return meta.get_field(name).get_db_prep_save(value, connection)

    uuid_field = meta.get_field("decision_id")
    # Encrypted PII columns are encrypted once per template and reused: nothing here reads them back.
    agent_id, session_id, metadata = prep("agent_id", "bench"), prep("session_id", "bench-session"), \
        prep("metadata", {})
    request_data = prep("request_data", {})
    # The per-template part of each row (everything but id, time and status-independent bits).
    static = []
    for proposal, status, drift_status, vector in templates:
        utility = proposal.utility_result
        static.append((
            status, False, 1, "", "", prep("proposal_summary", proposal.proposal_summary), agent_id, session_id,
            metadata, proposal.estimated_impact, proposal.requires_human_approval, proposal.risk_baseline,
            proposal.risk_proposed, proposal.profit_baseline, proposal.profit_proposed, proposal.novelty_score,
            proposal.complexity_score, proposal.quality_score, any(s == 0.0 for s in proposal.quality_subscores),
            utility.mean if utility else None, utility.std_error if utility else None, drift_status,
            prep("replay_vector", vector), request_data, prep("response", {"status": status}),
            ""))  # content_hash: unsealed (sealing is not measured here)
    now = timezone.now()
    window = 29.5 * 86400  # created_at within the last 30 days (kl_window_days)
    rng = random.Random(3)
    customer_id = customer.pk
    done = 0
    while done < rows:
        size = min(INSERT_BATCH, rows - done)
        batch = []
        for _ in range(size):
            s = static[rng.randrange(len(static))]
            created = connection.ops.adapt_datetimefield_value(now - timedelta(seconds=rng.random() * window))
            batch.append((uuid_field.get_db_prep_value(uuid.uuid4(), connection), customer_id, None, "api",
                          created, *s))
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, batch)
        done += size
        if done % 250_000 == 0 or done == rows:
            print(f"… inserted {done:,} / {rows:,} decisions", flush=True)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {table}")
    return time.perf_counter() - started


# --- measurements ---------------------------------------------------------------------------

def orm_read_unordered(window_days: int):
    """`load_replay_window` with the model's default ordering (-created_at, -id) dropped:
    the same rows in table order, without sorting the whole window first."""
    import numpy as np
    from django.utils import timezone

    from governance.models import Decision

    since = timezone.now() - timedelta(days=window_days)
    rows = (Decision.objects.filter(created_at__gte=since, shadow=False).order_by()
            .values_list("id", "replay_vector"))
    ids, blobs = [], []
    for pk, blob in rows.iterator(chunk_size=20000):
        ids.append(pk)
        blobs.append(bytes(blob))
    return np.asarray(ids, dtype=np.int64), b"".join(blobs)


def _since(window_days: int):
    from django.db import connection
    from django.utils import timezone

    return connection.ops.adapt_datetimefield_value(timezone.now() - timedelta(days=window_days))


def raw_read(window_days: int):
    """The same rows through a raw DB-API cursor (no ORDER BY, no ORM row handling)."""
    import numpy as np
    from django.db import connection

    from governance.models import Decision

    table = connection.ops.quote_name(Decision._meta.db_table)
    ids: list[int] = []
    blobs: list[bytes] = []
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, replay_vector FROM {table} WHERE created_at >= %s AND shadow = %s",
                       [_since(window_days), False])
        while rows := cursor.fetchmany(50_000):
            for pk, blob in rows:
                ids.append(pk)
                blobs.append(blob)
    return np.asarray(ids, dtype=np.int64), b"".join(map(bytes, blobs))


COVERING_INDEX = "bench_decision_replay_cover"
CHUNK_TABLE = "bench_replay_chunk"


def add_covering_index() -> float:
    """An index holding (shadow, created_at, id, replay_vector): the read scans it instead
    of the wide decision rows (~480 bytes each, PII and JSON included)."""
    from django.db import connection

    from governance.models import Decision

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE INDEX {COVERING_INDEX} ON {connection.ops.quote_name(Decision._meta.db_table)} "
                       f"(shadow, created_at, id, replay_vector)")
        if connection.vendor == "postgresql":
            cursor.execute(f"ANALYZE {Decision._meta.db_table}")
    return time.perf_counter() - started


def drop_covering_index() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX {COVERING_INDEX}")


def build_chunks() -> float:
    """Pre-packed replay data: one row per UTC day holding the day's decision ids and their
    concatenated vectors (what a `ReplayChunk` model appended at decision time would hold)."""
    import numpy as np
    from django.db import connection

    from governance.models import Decision

    started = time.perf_counter()
    days: dict = {}
    rows = Decision.objects.filter(shadow=False).order_by().values_list("created_at", "id", "replay_vector")
    for created_at, pk, blob in rows.iterator(chunk_size=50_000):
        ids, blobs = days.setdefault(created_at.date(), ([], []))
        ids.append(pk)
        blobs.append(bytes(blob))
    blob_type = "bytea" if connection.vendor == "postgresql" else "BLOB"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {CHUNK_TABLE} (day date, ids {blob_type}, vectors {blob_type})")
        cursor.executemany(f"INSERT INTO {CHUNK_TABLE} (day, ids, vectors) VALUES (%s, %s, %s)",
                           [(day, np.asarray(ids, dtype=np.int64).tobytes(), b"".join(blobs))
                            for day, (ids, blobs) in days.items()])
    return time.perf_counter() - started


def chunk_read(window_days: int):
    """Whole days only (a real implementation would trim the oldest day's chunk by time)."""
    import numpy as np
    from django.db import connection
    from django.utils import timezone

    since = (timezone.now() - timedelta(days=window_days)).date()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT ids, vectors FROM {CHUNK_TABLE} WHERE day >= %s", [since])
        rows = cursor.fetchall()
    return (np.frombuffer(b"".join(bytes(r[0]) for r in rows), dtype=np.int64),
            b"".join(bytes(r[1]) for r in rows))


def unpack_both(packed: bytes, parameter: str, value: float):
    from calibration.versions import active_config
    from governance.engine.replay import unpack_replay

    _, config = active_config()
    proposed = config.replace(**{parameter: value})
    return (unpack_replay(packed, config)[0], config), (unpack_replay(packed, proposed)[0], proposed)


def evaluate_both(unpacked):
    from governance.engine import evaluate_batch

    (before_columns, config), (after_columns, proposed) = unpacked
    return evaluate_batch(before_columns, config).status, evaluate_batch(after_columns, proposed).status


def replay(packed: bytes, parameter: str, value: float):
    import numpy as np

    from calibration.versions import active_config
    from governance.engine import evaluate_batch
    from governance.engine.replay import unpack_replay

    _, config = active_config()
    proposed = config.replace(**{parameter: value})
    before_columns, _ = unpack_replay(packed, config)
    after_columns, _ = unpack_replay(packed, proposed)
    before = evaluate_batch(before_columns, config).status
    after = evaluate_batch(after_columns, proposed).status
    moved = np.flatnonzero(before != after)
    return len(moved)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help=f"stored decisions (default {DEFAULT_ROWS:,})")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement; the median is reported")
    parser.add_argument("--distinct", type=int, default=4096, help="distinct decided proposals reused")
    parser.add_argument("--parameter", default="novelty_threshold")
    parser.add_argument("--value", type=float, default=0.9)
    parser.add_argument("--profile", action="store_true", help="print cProfile output even if the target is met")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (printed)")
    parser.add_argument("--no-experiments", action="store_true",
                        help="skip the covering-index and daily-chunk read experiments")
    parser.add_argument("--database-url", help="use this (throwaway) database instead of a temp SQLite file")
    options = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="aegis-calibration-bench-"))
    try:
        setup_django(options.database_url, tmp)
        from django.db import connection

        from calibration import services
        from calibration.versions import active_config

        print(f"… database: {connection.vendor} ({connection.settings_dict['NAME']})", flush=True)
        insert_seconds = insert_decisions(options.rows, options.distinct)
        _, config = active_config()
        window = config.kl_window_days

        # Before: no packs, every row read live (what the preview did before the packs).
        direct_median, direct_min, direct_max, direct_preview = median_time(
            lambda: services.preview_change(options.parameter, options.value), options.runs)
        direct_read_median, direct_read_min, direct_read_max, _ = median_time(
            lambda: services.load_replay_window(window), options.runs)
        from governance.replay_packs import rebuild_replay_packs

        print("… packing the closed days", flush=True)
        started = time.perf_counter()
        packed_days = rebuild_replay_packs()
        pack_seconds = time.perf_counter() - started
        preview_median, preview_min, preview_max, preview = median_time(
            lambda: services.preview_change(options.parameter, options.value), options.runs)
        read_median, read_min, read_max, (ids, packed) = median_time(
            lambda: services.load_replay_window(window), options.runs)
        assert (preview.decisions, preview.changes, preview.examples) == (
            direct_preview.decisions, direct_preview.changes, direct_preview.examples)
        unordered_median, unordered_min, unordered_max, (unordered_ids, _) = median_time(
            lambda: orm_read_unordered(window), options.runs)
        raw_median, raw_min, raw_max, (raw_ids, raw_packed) = median_time(lambda: raw_read(window), options.runs)
        replay_median, replay_min, replay_max, moved = median_time(
            lambda: replay(packed, options.parameter, options.value), options.runs)
        unpack_median, unpack_min, unpack_max, unpacked = median_time(
            lambda: unpack_both(packed, options.parameter, options.value), options.runs)
        evaluate_median, evaluate_min, evaluate_max, _ = median_time(lambda: evaluate_both(unpacked), options.runs)
        assert len(ids) == options.rows == preview.decisions, (len(ids), preview.decisions)
        # Same rows (load_replay_window is in id order; the others are in table order).
        assert sorted(raw_ids.tolist()) == sorted(ids.tolist()) == sorted(unordered_ids.tolist())
        assert len(raw_packed) == len(packed)
        assert moved == preview.changed

        experiments = []
        if not options.no_experiments:
            print("… experiments: covering index, pre-packed daily chunks", flush=True)
            built = add_covering_index()
            index_median, index_min, index_max, (index_ids, _) = median_time(lambda: raw_read(window), options.runs)
            orm_index_median, orm_index_min, orm_index_max, _ = median_time(
                lambda: services.load_replay_window(window), options.runs)
            drop_covering_index()
            assert len(index_ids) == options.rows
            experiments += [
                ("  (experiment) raw cursor + covering index", index_median, index_min, index_max,
                 f"index built in {built:.1f} s"),
                ("  (experiment) load_replay_window + covering index", orm_index_median, orm_index_min,
                 orm_index_max, "ORDER BY still sorts"),
            ]
            built = build_chunks()
            chunk_median, chunk_min, chunk_max, (chunk_ids, chunk_packed) = median_time(
                lambda: chunk_read(window), options.runs)
            assert sorted(chunk_ids.tolist()) == sorted(ids.tolist()) and len(chunk_packed) == len(packed)
            experiments.append(("  (experiment) pre-packed daily chunks (1 row/day)", chunk_median, chunk_min,
                                chunk_max, f"chunks built in {built:.1f} s"))

        met = preview_median <= TARGET_SECONDS
        rows = [
            ("insert (generation, not measured)", insert_seconds, insert_seconds, insert_seconds, ""),
            ("pack closed days (rebuild_replay_packs)", pack_seconds, pack_seconds, pack_seconds,
             f"{packed_days} days, {pack_seconds / options.rows * 1e6:,.1f} µs per decision, off the request path"),
            (f"preview_change end to end, packs ({options.runs} runs)", preview_median, preview_min, preview_max,
             f"target ≤ {TARGET_SECONDS:g} s: {'MET' if met else 'NOT MET'}"),
            ("  DB read: load_replay_window (packs + live rows)", read_median, read_min, read_max,
             f"{len(packed) / 2**20:,.0f} MiB of vectors"),
            ("  replay: unpack + evaluate_batch ×2 + diff", replay_median, replay_min, replay_max,
             f"{options.rows / replay_median / 1e6:,.1f} M decisions/s"),
            ("    unpack_replay ×2 (active, proposed)", unpack_median, unpack_min, unpack_max, ""),
            ("    evaluate_batch ×2", evaluate_median, evaluate_min, evaluate_max, ""),
            ("  (before) preview_change, no packs (all rows live)", direct_median, direct_min, direct_max,
             f"{direct_median / preview_median:,.1f}× slower than with packs"),
            ("  (before) load_replay_window, no packs", direct_read_median, direct_read_min, direct_read_max, ""),
            ("  (comparison) ORM read without the default ORDER BY", unordered_median, unordered_min,
             unordered_max, f"{direct_read_median / unordered_median:,.1f}× faster than the read without packs"),
            ("  (comparison) raw cursor, no ORDER BY", raw_median, raw_min, raw_max,
             f"{direct_read_median / raw_median:,.1f}× faster than the read without packs"),
            *experiments,
        ]
        width = max(len(r[0]) for r in rows)
        print()
        print(f"Calibration impact preview — {options.rows:,} stored decisions, {connection.vendor}, "
              f"{options.parameter} {getattr(config, options.parameter):g} → {options.value:g}")
        print(f"{'measurement':<{width}}  {'median s':>9}  {'min s':>7}  {'max s':>7}  note")
        print("-" * (width + 40))
        for name, median, low, high, note in rows:
            print(f"{name:<{width}}  {median:>9.3f}  {low:>7.3f}  {high:>7.3f}  {note}")
        print("-" * (width + 40))
        print(f"decisions in window: {preview.decisions:,}; would change: {preview.changed:,} "
              f"({', '.join(f'{k}: {v:,}' for k, v in preview.changes.items())})")
        print(f"target: preview over {options.rows:,} decisions ≤ {TARGET_SECONDS:g} s — "
              f"{'MET' if met else 'NOT MET'} (median {preview_median:.3f} s)")
        if options.profile or not met:
            print(profile(lambda: services.preview_change(options.parameter, options.value),
                          "preview_change"))
            print(profile(lambda: services.load_replay_window(window), "load_replay_window"))
        return 0
    finally:
        if options.keep:
            print(f"kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
