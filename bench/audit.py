"""Audit-trail benchmark: `.venv/bin/python bench/audit.py [--transitions N] [--workflows 10000,100000]
[--quick] [--profile] [--keep] [--only verify|backup|evaluate] [--processes P] [--database-url URL]`.

Measures, against the targets of the audit issue,

  - chain verification: `DurableWorkflowEngine(depth=…, processes=P, seal=…).verify_all()`
    over N stored transitions (default 1,000,000 = 200,000 workflows × 5): the newest depth
    (the nightly run's) without seals, then sealing as the nightly run does on its first night
    (nothing sealed yet) and on every night after (every chain sealed); the full depth
    (every checkpoint, on demand); P worker processes (default os.cpu_count(), as
    AEGIS_VERIFY_PROCESSES): wall seconds and transitions/s
                                            target 1,000,000 transitions ≤ 30 s (newest depth)
  - the ledger audit `aegis_verify_chain --all` runs after the chains (`ledger.audit.audit_ledger`:
    its chain, every entry against its object and back, the anchor checked and rewritten)
    over the same data's 1.2M entries: seconds, entries/s, its share of the nightly run
  - `manage.py aegis_backup --output X` and `manage.py aegis_restore X` (into a fresh,
    empty, migrated database) at each --workflows size (× 5 transitions): wall time,
    peak RSS and file size                 target ≤ 60 s each at 100,000 workflows, peak
    RSS ≤ 500 MB and flat: peak(largest) ≤ 1.2 × peak(smallest) + 50 MB
  - what ledger recording costs `POST /evaluate`: sequential requests through the whole
    Django stack, halting (a review workflow: three ledger entries) and proceeding (none),
    recording on and off in alternating blocks; median latencies and the time added
    (median of paired blocks). On the generated database (its 1.2M entries), or with
    --database-url on another throwaway database (PostgreSQL, say), freshly migrated

and prints the tables. Everything runs on throwaway SQLite databases in a temp dir
(removed at the end, unless --keep); nothing listens on or talks to the network.

The data are what the services write, generated fast: each workflow is a proposal that
was submitted, halted by the engine (a real `pcw_decide` decision), handed to an override,
denied, and handed to a second override — five transitions of the real proposal machine
(their effects computed by `workflows.machines`), hash-chained with
`workflows.chain.transition_hash`, each followed by its checkpoint
(`workflows.services.checkpoint_data_of` layout, `checkpoint_hash`), exactly as
`workflows.services._append` stores them, with the ledger entries (workflow, transitions)
the services chain — bulk-inserted, so generation is not measured.
Sizes grow in one database (10k, then 100k, then 200k workflows), measured at each size.

Every measured command runs as its own process with production settings (DEBUG off, a
throwaway SECRET_KEY): with DEBUG on Django keeps every SQL statement it runs in memory,
which would inflate both time and peak memory (the /evaluate part alone runs with DEBUG on,
which the test client's plain HTTP needs, in both of its modes alike). Peak RSS is the child's own `ru_maxrss`
(os.wait4). --profile also runs verify, backup and restore under cProfile at the smallest
size and prints where the time goes. Exit status 0 whether or not the targets are met
(1 only if the benchmark itself could not run or a restore/verification failed).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
TRANSITIONS_PER_WORKFLOW = 5

TARGET_VERIFY_TRANSITIONS, TARGET_VERIFY_SECONDS = 1_000_000, 30.0  # the nightly (newest) depth
TARGET_VERIFY_RATE = TARGET_VERIFY_TRANSITIONS / TARGET_VERIFY_SECONDS  # what a smaller run must reach
# (depth, what the run stands for, sealing): the nightly depth without seals (what sealing
# is measured against), then as the first night after an upgrade (no chain sealed yet: each
# is verified in full and sealed) and as every night after (chains unchanged since sealed
# are accepted by their seals); then the full depth on demand.
VERIFY_RUNS = (("newest", "no seals", False), ("newest", "first night", True),
               ("newest", "every night after", True), ("full", "on demand", True))
TARGET_SECONDS = 60.0  # backup and restore each, at the largest size
TARGET_PEAK_MB = 500.0
FLAT_FACTOR, FLAT_SLACK_MB = 1.2, 50.0

DEFAULT_TRANSITIONS = 1_000_000
DEFAULT_WORKFLOWS = (10_000, 100_000)
QUICK_TRANSITIONS = 50_000
QUICK_WORKFLOWS = (1_000, 10_000)
GENERATE_CHUNK = 2_000  # workflows per bulk_create round
PROFILE_LINES = 18
PROFILE_OURS = r"/workflows/|/governance/|query\.py:\d+\(bulk_create\)|json/__init__"
BREAKDOWN_WORKFLOWS = 5_000  # verify_all's chunk (durable.STREAM_CHUNK)
EVALUATE_BLOCK = 10  # /evaluate requests per mode and block in the ledger-cost part
DEFAULT_EVALUATE_BLOCKS, QUICK_EVALUATE_BLOCKS = 40, 10


# --- child processes ----------------------------------------------------------------------

def child_env(db_path: Path, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"DJANGO_SETTINGS_MODULE", "DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL",
                        "BACKUP_DIR", "DJANGO_ALLOW_ASYNC_UNSAFE"}}
    env.update({
        "DJANGO_SETTINGS_MODULE": "aegis_site.settings",
        "DATABASE_URL": f"sqlite:///{db_path}",
        "DEBUG": "0",
        "SECRET_KEY": BENCH_SECRET_KEY,
        "BACKUP_DIR": str(tmp / "backups"),
        "AEGIS_ANCHOR_KEY": BENCH_ANCHOR_KEY,
        "AEGIS_ANCHOR_DIR": str(anchor_dir(db_path)),
        "PYTHONPATH": str(REPO),
    })
    return env


def anchor_dir(db_path: Path) -> Path:
    """Each database its own anchor directory, as each server has: the source's anchors
    must not judge a database restored from an older backup."""
    return Path(f"{db_path}.anchors")


BENCH_SECRET_KEY = "bench-only-" + secrets.token_urlsafe(40)
BENCH_ANCHOR_KEY = "bench-only-" + secrets.token_urlsafe(40)


class Run:
    """One finished child process: exit code, wall and CPU seconds, peak RSS (MB), output."""

    def __init__(self, code: int, seconds: float, cpu: float, peak_mb: float, stdout: str, stderr: str):
        self.code, self.seconds, self.cpu, self.peak_mb = code, seconds, cpu, peak_mb
        self.stdout, self.stderr = stdout, stderr

    def check(self, what: str) -> "Run":
        if self.code != 0:
            raise SystemExit(f"{what} failed (exit {self.code}):\n{self.stdout[-3000:]}\n{self.stderr[-3000:]}")
        return self

    def json(self) -> dict:
        return json.loads(self.stdout.strip().splitlines()[-1])


def run(args: list[str], env: dict[str, str], tmp: Path) -> Run:
    """Run a child and wait for it with os.wait4, which reports that child's own peak RSS."""
    out_path, err_path = tmp / "child.out", tmp / "child.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keep Popen consistent
    peak_mb = usage.ru_maxrss / 1024  # Linux: KiB
    return Run(proc.returncode, seconds, usage.ru_utime + usage.ru_stime, peak_mb, out_path.read_text(),
               err_path.read_text())


def manage(*args: str, db: Path, tmp: Path, profile: Path | None = None) -> Run:
    prefix = [PYTHON, "-m", "cProfile", "-o", str(profile)] if profile else [PYTHON]
    return run([*prefix, str(REPO / "manage.py"), *args], child_env(db, tmp), tmp)


def worker(action: str, *args: str, db: Path, tmp: Path, profile: Path | None = None) -> Run:
    prefix = [PYTHON, "-m", "cProfile", "-o", str(profile)] if profile else [PYTHON]
    return run([*prefix, str(Path(__file__).resolve()), "--worker", action, *args], child_env(db, tmp), tmp)


# --- worker side (inside a child, Django set up on the temp database) -----------------------

def _django():
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def work_generate(start: int, count: int) -> None:
    """Append workflows start..start+count-1: five transitions and five checkpoints each, and
    the six ledger entries (the workflow, its transitions) the services would have chained."""
    _django()
    import random
    import uuid
    from datetime import datetime, timedelta, timezone

    from django.db import connection, transaction

    from governance.engine.config import AegisConfig
    from governance.engine.decide import pcw_decide
    from governance.engine.inputs import parse_proposal
    from workflows.chain import checkpoint_hash, transition_hash
    from workflows.machines import PROPOSAL, Actor, Context, Effect
    from ledger import services as ledger
    from ledger.chain import entry_hash
    from ledger.models import LedgerEntry
    from workflows.persistence.models import (GENESIS_HASH, WorkflowCheckpoint, WorkflowInstance,
                                              WorkflowTransition)
    from workflows.roles import Role
    from governance.decisions import _proposal_data
    from workflows.services import START_EVENT, checkpoint_data_of

    begun = time.perf_counter()
    rng = random.Random(start)
    lead = Actor("bench-risklead", id=1, roles=frozenset({Role.RISK_LEAD}))
    engine, overrider = Actor.system(), Actor.system("aegis-override")
    base_time = datetime(2026, 1, 1, tzinfo=timezone.utc)
    config = AegisConfig.default()

    def new_uuid() -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128), version=4)

    halted = parse_proposal({"proposal_summary": "template", "novelty_score": 0.9})
    template_decision = pcw_decide(halted, config, config_version=1, now=base_time).to_dict()
    assert template_decision["status"] == "halt" and template_decision["override_eligible"], template_decision
    justification = "Revenue-critical launch; rollback plan reviewed with the on-call team"

    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous=OFF")
    ledger_seq, ledger_hash = ledger.head()
    with transaction.atomic():
        for chunk_start in range(start, start + count, GENERATE_CHUNK):
            chunk = range(chunk_start, min(start + count, chunk_start + GENERATE_CHUNK))
            instances, histories = [], []
            for i in chunk:
                wid = new_uuid()
                created = base_time + timedelta(seconds=i)
                proposal = parse_proposal({"proposal_summary": f"Proposal {i}: switch the ranking model to the "
                                           f"new candidate", "novelty_score": 0.9, "metadata": {"ticket": f"OPS-{i}"}})
                decision = {**template_decision, "decision_id": str(new_uuid()),
                            "timestamp": created.isoformat()}
                first, second = str(new_uuid()), str(new_uuid())
                lifecycle = [
                    (START_EVENT, lead, "", lambda ctx: Effect(PROPOSAL.initial, {"proposal": _proposal_data(proposal)}),
                     {}),
                    ("evaluate", engine, "", PROPOSAL.events["evaluate"].effect, {"decision": decision}),
                    ("request_override", lead, justification, PROPOSAL.events["request_override"].effect,
                     {"override_workflow_id": first}),
                    ("override_denied", overrider, f"Override {first} rejected",
                     PROPOSAL.events["override_denied"].effect, {}),
                    ("request_override", lead, justification, PROPOSAL.events["request_override"].effect,
                     {"override_workflow_id": second}),
                ]
                workflow = WorkflowInstance(workflow_id=wid, workflow_type="proposal", current_state="",
                                            status=PROPOSAL.status_of(PROPOSAL.initial), state_data={}, version=0,
                                            created_at=created, updated_at=created)
                rows, prev = [], GENESIS_HASH
                for seq, (event, actor, comment, effect_of, params) in enumerate(lifecycle, start=1):
                    now = created + timedelta(milliseconds=37 * seq)
                    ctx = Context(state=workflow.current_state, data=dict(workflow.state_data), actor=actor,
                                  params=params, now=now)
                    effect = effect_of(ctx)
                    payload = {"event": event, "actor_id": actor.id, "request_id": "", **effect.payload}
                    digest = transition_hash(workflow_id=wid, seq=seq, from_state=workflow.current_state,
                                             to_state=effect.target, triggered_by=actor.name, reason=comment,
                                             payload=payload, created_at=now, prev_hash=prev)
                    transition = dict(seq=seq, from_state=workflow.current_state, to_state=effect.target,
                                      triggered_by=actor.name, reason=comment, payload=payload, created_at=now,
                                      prev_hash=prev, hash=digest)
                    prev = digest
                    workflow.current_state = effect.target
                    workflow.status = PROPOSAL.status_of(effect.target)
                    workflow.state_data = effect.data
                    workflow.version = seq
                    workflow.updated_at = now
                    data = checkpoint_data_of(workflow)
                    rows.append((transition, dict(seq=seq, checkpoint_data=data, hash=checkpoint_hash(data),
                                                  created_at=now, created_by=actor.name)))
                workflow.status = str(workflow.status.value)
                instances.append(workflow)
                histories.append(rows)
            WorkflowInstance.objects.bulk_create(instances)
            WorkflowTransition.objects.bulk_create(
                [WorkflowTransition(workflow=w, **t) for w, rows in zip(instances, histories) for t, _ in rows],
                batch_size=1000)
            WorkflowCheckpoint.objects.bulk_create(
                [WorkflowCheckpoint(workflow=w, **c) for w, rows in zip(instances, histories) for _, c in rows],
                batch_size=1000)
            entries = []
            for w, rows in zip(instances, histories):
                for kind, ref, digest in [ledger.workflow_item(w),
                                          *ledger.transition_items(w.workflow_id, [t for t, _ in rows])]:
                    ledger_seq, prev = ledger_seq + 1, ledger_hash
                    ledger_hash = entry_hash(seq=ledger_seq, kind=kind, ref=ref, digest=digest, prev_hash=prev)
                    entries.append(LedgerEntry(seq=ledger_seq, kind=kind, ref=ref, digest=digest, prev_hash=prev,
                                               hash=ledger_hash, created_at=w.created_at))
            LedgerEntry.objects.bulk_create(entries, batch_size=1000)
    print(json.dumps({"seconds": time.perf_counter() - begun, "workflows": count}))


def work_verify(depth: str, processes: int, seal: bool = True) -> None:
    """verify_all at `depth` in `processes` processes over the whole database, sealing as the
    verification runs do (unless not `seal`: the profile); every chain must be valid. CPU time is this process's own (not its
    workers')."""
    _django()
    from workflows.persistence.durable import DurableWorkflowEngine

    workflows = transitions = broken = by_seal = 0
    first_problem = None
    begun, cpu = time.perf_counter(), time.process_time()
    for report in DurableWorkflowEngine(depth=depth, processes=processes, seal=seal).verify_all():
        workflows += 1
        transitions += report.transitions
        by_seal += report.by_seal
        if not report.is_valid:
            broken += 1
            first_problem = first_problem or f"{report.workflow_id}: {report.message}"
    seconds, cpu = time.perf_counter() - begun, time.process_time() - cpu
    print(json.dumps({"seconds": seconds, "cpu": cpu, "workflows": workflows, "transitions": transitions, "broken": broken,
                      "by_seal": by_seal, "first_problem": first_problem, "depth": depth, "processes": processes}))


def work_ledger() -> None:
    """audit_ledger, as `aegis_verify_chain --all` runs it after the chains: the ledger's own
    chain, then every entry against the object it records and every object against its entry,
    then the anchor checked and written anew."""
    _django()
    from ledger.audit import audit_ledger

    begun, cpu = time.perf_counter(), time.process_time()
    audit = audit_ledger(keep=1)
    seconds, cpu = time.perf_counter() - begun, time.process_time() - cpu
    print(json.dumps({"seconds": seconds, "cpu": cpu, "entries": audit.tally.entries, "objects": audit.tally.objects,
                      "broken": audit.broken, "first_problem": audit.findings[0].message if audit.findings else None,
                      "anchor": audit.anchor_note}))


def work_evaluate_cost(blocks: int) -> None:
    """Sequential `POST /evaluate` through the whole Django stack (test client, DEBUG on, as
    bench/encryption.py), halting (a review workflow: one workflow and two transition entries,
    chained after the commit) and proceeding (no ledger entry: decisions are sealed later, in
    blocks), each with ledger recording on and off. Off replaces `ledger.services.record_many`
    with a no-op in this process only (production has no switch). The four modes run in
    alternating blocks of EVALUATE_BLOCK requests so noise hits all alike."""
    os.environ["DEBUG"] = "1"  # the test client speaks plain HTTP: no HTTPS redirect
    os.environ["SECURE_SSL_REDIRECT"] = "0"
    _django()
    import statistics
    import uuid

    from django.test import Client

    from api import OUTCOME_BODIES
    from governance import services
    from governance.models import Tier
    from ledger import services as ledger
    from ledger.models import LedgerEntry

    tier, _ = Tier.objects.update_or_create(name="bench", defaults=dict(
        display_name="Bench (unlimited)", monthly_evaluations=2_000_000_000, rate_per_minute=2_000_000_000,
        max_keys=10, features=["evaluate"]))
    _, _, key = services.create_customer("Ledger bench", tier=tier)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_HOST="127.0.0.1")
    bodies = {outcome: json.dumps(OUTCOME_BODIES[outcome]) for outcome in ("halt", "proceed")}
    recording = ledger.record_many

    def evaluate(outcome: str) -> float:
        started = time.perf_counter()
        response = client.post("/evaluate", bodies[outcome], content_type="application/json",
                               HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
        elapsed = time.perf_counter() - started
        if response.status_code != 200 or response.json()["status"] != outcome:
            raise SystemExit(f"/evaluate answered {response.status_code}: {response.content[:300]!r}")
        return elapsed

    def switch(on: bool) -> None:
        ledger.record_many = recording if on else (lambda items: None)

    for outcome in bodies:  # warm-up: imports, caches, the active configuration
        for _ in range(30):
            evaluate(outcome)
    entries_before = LedgerEntry.objects.count()
    modes = [(outcome, on) for outcome in bodies for on in (True, False)]
    times: dict[str, list[float]] = {f"{o} {on}": [] for o, on in modes}
    ratios: dict[str, list[float]] = {outcome: [] for outcome in bodies}
    for block in range(blocks):
        for outcome in bodies:
            spent = {}
            for on in (True, False) if block % 2 == 0 else (False, True):
                switch(on)
                block_times = [evaluate(outcome) for _ in range(EVALUATE_BLOCK)]
                times[f"{outcome} {on}"].extend(block_times)
                spent[on] = sum(block_times)
            ratios[outcome].append(spent[True] / spent[False])
    switch(True)
    print(json.dumps({
        "median_ms": {mode: statistics.median(values) * 1000 for mode, values in times.items()},
        "requests": {mode: len(values) for mode, values in times.items()},
        "slowdown": {outcome: statistics.median(r) - 1 for outcome, r in ratios.items()},
        "quartiles": {outcome: [q - 1 for q in statistics.quantiles(r, n=4)] for outcome, r in ratios.items()},
        "entries_before": entries_before, "entries_written": LedgerEntry.objects.count() - entries_before,
        "database": os.environ["DATABASE_URL"].split(":")[0]}))


def work_breakdown(limit: int) -> None:
    """What verify_all spends per transition, component by component, on the first `limit`
    workflows (one verify_all chunk): fetching rows through the ORM (JSON decoded) or raw,
    decoding the JSON columns, and recomputing the two kinds of hash."""
    _django()
    from django.db import connection

    from workflows.chain import checkpoint_hash, transition_hash
    from workflows.persistence.durable import TRANSITION_COLUMNS
    from workflows.persistence.models import WorkflowCheckpoint, WorkflowInstance, WorkflowTransition

    ids = list(WorkflowInstance.objects.order_by("id").values_list("id", flat=True)[:limit])
    marks = ",".join("%s" for _ in ids)
    timings: dict[str, float] = {}

    def timed(name, action):
        begun = time.process_time()
        result = action()
        timings[name] = time.process_time() - begun
        return result

    def raw(sql):
        with connection.cursor() as cursor:
            cursor.execute(sql, ids)
            return cursor.fetchall()

    rows = timed("fetch transitions, ORM values_list (JSON + datetimes decoded)", lambda: list(
        WorkflowTransition.objects.filter(workflow_id__in=ids).order_by("workflow_id", "seq")
        .values_list(*TRANSITION_COLUMNS)))
    payloads = timed("  of which: fetch transitions, raw cursor", lambda: raw(
        f"SELECT payload FROM workflows_workflowtransition WHERE workflow_id IN ({marks}) ORDER BY workflow_id, seq"))
    timed("  of which: json.loads of the payloads", lambda: [json.loads(p) for (p,) in payloads])
    uuids = dict(WorkflowInstance.objects.filter(id__in=ids).values_list("id", "workflow_id"))
    timed("transition_hash (canonical JSON + SHA-256)", lambda: [
        transition_hash(workflow_id=str(uuids[r[0]]), seq=r[1], from_state=r[2], to_state=r[3], triggered_by=r[4],
                        reason=r[5], payload=r[6], created_at=r[7], prev_hash=r[8]) for r in rows])
    checkpoints = timed("fetch checkpoints, ORM values_list (JSON decoded)", lambda: list(
        WorkflowCheckpoint.objects.filter(workflow_id__in=ids).order_by("workflow_id", "seq")
        .values_list("workflow_id", "seq", "checkpoint_data", "hash")))
    texts = timed("  of which: fetch checkpoints, raw cursor", lambda: raw(
        f"SELECT checkpoint_data FROM workflows_workflowcheckpoint WHERE workflow_id IN ({marks}) "
        f"ORDER BY workflow_id, seq"))
    timed("  of which: json.loads of checkpoint_data", lambda: [json.loads(t) for (t,) in texts])
    timed("checkpoint_hash (canonical JSON + SHA-256)", lambda: [checkpoint_hash(c[2]) for c in checkpoints])
    sizes = {"payload": sum(len(p) for (p,) in payloads) / len(payloads),
             "checkpoint_data": sum(len(t) for (t,) in texts) / len(texts)}
    print(json.dumps({"transitions": len(rows), "checkpoints": len(checkpoints), "timings": timings,
                      "bytes": sizes}))


def work_count() -> None:
    _django()
    from workflows.persistence.models import WorkflowCheckpoint, WorkflowInstance, WorkflowTransition

    from ledger.models import LedgerEntry

    print(json.dumps({"workflows": WorkflowInstance.objects.count(),
                      "transitions": WorkflowTransition.objects.count(),
                      "checkpoints": WorkflowCheckpoint.objects.count(),
                      "ledger_entries": LedgerEntry.objects.count()}))


# --- orchestration -------------------------------------------------------------------------

def copy_db(source: Path, target: Path) -> None:
    """Copy a SQLite database consistently, WAL included (the settings run SQLite in WAL mode)."""
    import sqlite3

    drop_db(target)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def drop_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(anchor_dir(path), ignore_errors=True)


def mb(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:,.1f} MB"


def print_breakdown(breakdown: dict) -> None:
    n = breakdown["transitions"]
    print(f"\nverify_all cost per transition ({n:,} transitions, {breakdown['checkpoints']:,} checkpoints; "
          f"payload {breakdown['bytes']['payload']:,.0f} B, checkpoint_data "
          f"{breakdown['bytes']['checkpoint_data']:,.0f} B on average; CPU time)")
    total = 0.0
    for name, seconds in breakdown["timings"].items():
        if not name.startswith("  "):
            total += seconds
        print(f"  {name:<66} {seconds / n * 1e6:8.1f} µs")
    print(f"  {'sum of the top-level lines':<66} {total / n * 1e6:8.1f} µs  → at most {n / total:,.0f} "
          f"transitions/s on one core; the target needs ≤ {1e6 / TARGET_VERIFY_RATE:.1f} µs")


def profile_text(title: str, path: Path) -> str:
    import io
    import pstats

    parts = [f"\n--- cProfile: {title} (top {PROFILE_LINES} by own time; then AEGIS code and bulk_create "
             f"by cumulative time) ---"]
    for order, restriction in (("tottime", ()), ("cumulative", (PROFILE_OURS,))):
        stream = io.StringIO()
        stats = pstats.Stats(str(path), stream=stream).sort_stats(order)
        stats.print_stats(*restriction, PROFILE_LINES)
        text = stream.getvalue()
        parts.append(text[text.index("   ncalls"):].rstrip() if "   ncalls" in text else text.rstrip())
    return "\n\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transitions", type=int, help=f"transitions to verify (default {DEFAULT_TRANSITIONS:,})")
    parser.add_argument("--workflows", help="comma-separated backup/restore sizes (default 10000,100000)")
    parser.add_argument("--quick", action="store_true",
                        help=f"small run: {QUICK_TRANSITIONS:,} transitions, workflows "
                             f"{','.join(map(str, QUICK_WORKFLOWS))}")
    parser.add_argument("--profile", action="store_true",
                        help="also profile verify, backup and restore (cProfile) at the smallest size")
    parser.add_argument("--backup-name", default="audit-backup.json.gz",
                        help="backup file name; .gz (the default, as aegis_backup writes by default) or .json")
    parser.add_argument("--only", choices=("verify", "backup", "evaluate"),
                        help="measure only this part (verify: verify_all and the ledger audit; backup: aegis_backup "
                             "and aegis_restore; evaluate: what ledger recording costs POST /evaluate, on an "
                             "empty database)")
    parser.add_argument("--database-url",
                        help="run the /evaluate part on this throwaway database (e.g. PostgreSQL) instead of the "
                             "generated SQLite one")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (printed) for inspection")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                        help="verification worker processes (default os.cpu_count(); 1 = in-process)")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    options = parser.parse_args()

    if options.worker:
        action, *args = options.worker
        {"generate": lambda: work_generate(int(args[0]), int(args[1])),
         "verify": lambda: work_verify(args[0], int(args[1]), args[2:] != ["no-seal"]),
         "ledger": work_ledger, "evaluate": lambda: work_evaluate_cost(int(args[0])),
         "breakdown": lambda: work_breakdown(int(args[0])), "count": work_count}[action]()
        return 0

    transitions = options.transitions or (QUICK_TRANSITIONS if options.quick else DEFAULT_TRANSITIONS)
    sizes = [] if options.only in ("verify", "evaluate") else sorted(
        {int(s) for s in options.workflows.split(",")} if options.workflows
        else set(QUICK_WORKFLOWS if options.quick else DEFAULT_WORKFLOWS))
    verify_workflows = (None if options.only in ("backup", "evaluate")
                        else max(1, transitions // TRANSITIONS_PER_WORKFLOW))
    evaluate_blocks = (0 if options.only in ("verify", "backup")
                       else QUICK_EVALUATE_BLOCKS if options.quick else DEFAULT_EVALUATE_BLOCKS)
    checkpoints = sorted(set(sizes) | ({verify_workflows} - {None}))

    tmp = Path(tempfile.mkdtemp(prefix="aegis-audit-bench-"))
    (tmp / "backups").mkdir()
    results: list[dict] = []
    verify_results: list[dict] = []
    ledger_result: dict = {}
    evaluate_result: dict = {}
    profiles: list[tuple[str, Path]] = []
    breakdown: dict = {}
    generated_seconds = 0.0
    try:
        source, empty = tmp / "source.sqlite3", tmp / "empty.sqlite3"
        manage("migrate", "--no-input", "-v", "0", db=empty, tmp=tmp).check("migrate")
        copy_db(empty, source)
        have, empty_entries = 0, worker("count", db=empty, tmp=tmp).check("counting").json()["ledger_entries"]
        for size in checkpoints:
            print(f"… generating workflows {have + 1:,}–{size:,} ({TRANSITIONS_PER_WORKFLOW} transitions each)",
                  flush=True)
            gen = worker("generate", str(have), str(size - have), db=source, tmp=tmp).check("generating data")
            generated_seconds += gen.seconds
            have = size
            counts = worker("count", db=source, tmp=tmp).check("counting").json()
            assert counts == {"workflows": size, "transitions": size * TRANSITIONS_PER_WORKFLOW,
                              "checkpoints": size * TRANSITIONS_PER_WORKFLOW,
                              "ledger_entries": empty_entries + size * (1 + TRANSITIONS_PER_WORKFLOW)}, counts

            if size == verify_workflows:
                for depth, occasion, seal in VERIFY_RUNS:
                    print(f"… verify_all over {size * TRANSITIONS_PER_WORKFLOW:,} transitions, depth {depth} "
                          f"({occasion}), {options.processes} process(es)", flush=True)
                    verify = worker("verify", depth, str(options.processes), *([] if seal else ["no-seal"]),
                                    db=source, tmp=tmp).check("verify_all")
                    verify_results.append({**verify.json(), "peak_mb": verify.peak_mb, "occasion": occasion})
                    if verify_results[-1]["broken"]:
                        raise SystemExit(f"generated chains did not verify: {verify_results[-1]['first_problem']}")
                print(f"… ledger audit over {counts['ledger_entries']:,} entries (both ways, then the anchor)",
                      flush=True)
                audit = worker("ledger", db=source, tmp=tmp).check("ledger audit")
                ledger_result = {**audit.json(), "peak_mb": audit.peak_mb}
                if ledger_result["broken"]:
                    raise SystemExit(f"the generated ledger did not verify: {ledger_result['first_problem']}")

            if size in sizes:
                backup = tmp / "backups" / options.backup_name
                print(f"… aegis_backup at {size:,} workflows", flush=True)
                dump = manage("aegis_backup", "--output", str(backup), db=source, tmp=tmp).check("aegis_backup")
                target = tmp / "restored.sqlite3"
                copy_db(empty, target)
                print(f"… aegis_restore at {size:,} workflows into a fresh migrated database", flush=True)
                load = manage("aegis_restore", str(backup), db=target, tmp=tmp).check("aegis_restore")
                restored = worker("count", db=target, tmp=tmp).check("counting restored").json()
                if restored != counts:
                    raise SystemExit(f"restore of {size:,} workflows produced {restored}, expected {counts}")
                results.append({"workflows": size, "backup_s": dump.seconds, "backup_cpu": dump.cpu,
                                "backup_mb": dump.peak_mb, "restore_s": load.seconds, "restore_cpu": load.cpu,
                                "restore_mb": load.peak_mb,
                                "file_bytes": backup.stat().st_size})
                if options.profile and size == sizes[0]:
                    print(f"… profiling verify_all, aegis_backup, aegis_restore at {size:,} workflows", flush=True)
                    for name in ("backup", "restore") if options.only == "backup" else ("verify", "backup", "restore"):
                        profiles.append((name, tmp / f"{name}.prof"))
                    if options.only != "backup":
                        worker("verify", "newest", "1", "no-seal", db=source, tmp=tmp,
                               profile=tmp / "verify.prof").check("profiling verify")
                    manage("aegis_backup", "--output", str(tmp / "profiled" / options.backup_name), db=source,
                           tmp=tmp, profile=tmp / "backup.prof").check("profiling backup")
                    copy_db(empty, target)
                    manage("aegis_restore", str(backup), db=target, tmp=tmp,
                           profile=tmp / "restore.prof").check("profiling restore")
                    shutil.rmtree(tmp / "profiled", ignore_errors=True)
                    if options.only != "backup":
                        parts = worker("breakdown", str(min(size, BREAKDOWN_WORKFLOWS)), db=source, tmp=tmp)
                        breakdown = parts.check("cost breakdown").json()
                drop_db(target)
                backup.unlink()
        if evaluate_blocks:
            db = source if checkpoints else empty
            env = child_env(db, tmp)
            if options.database_url:
                env["DATABASE_URL"] = options.database_url
                run([PYTHON, str(REPO / "manage.py"), "migrate", "--no-input", "-v", "0"], env, tmp).check("migrate")
            print(f"… POST /evaluate with ledger recording on and off, {evaluate_blocks} blocks of "
                  f"{EVALUATE_BLOCK} per mode", flush=True)
            cost = run([PYTHON, str(Path(__file__).resolve()), "--worker", "evaluate", str(evaluate_blocks)], env, tmp)
            evaluate_result = cost.check("/evaluate ledger cost").json()
        profile_texts = [profile_text(name, path) for name, path in profiles]
    finally:
        if options.keep:  # its databases only open under the run's keys: keep those beside them
            keys = {name: child_env(tmp / "source.sqlite3", tmp)[name] for name in ("SECRET_KEY", "AEGIS_ANCHOR_KEY")}
            (tmp / "keys.env").write_text("".join(f"{name}={value}\n" for name, value in keys.items()))
            print(f"(kept {tmp}; its keys in keys.env)")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    report(transitions, verify_results, ledger_result, results, generated_seconds, options.backup_name)
    if evaluate_result:
        report_evaluate(evaluate_result)
    if breakdown:
        print_breakdown(breakdown)
    for text in profile_texts:
        print(text)
    return 0


def report(transitions: int, verifies: list[dict], ledger: dict, results: list[dict], generated_seconds: float,
           backup_name: str) -> None:
    rows = []
    for verify in verifies:
        rate = verify["transitions"] / verify["seconds"]
        target = verify["depth"] == "newest"
        at_size = verify["transitions"] >= TARGET_VERIFY_TRANSITIONS
        rows.append((f"verify_all {verify['depth']} ({verify['occasion']}), {verify['transitions']:,} tr",
                     f"{verify['seconds']:,.1f} s, {rate:,.0f} transitions/s",
                     (f"≤ {TARGET_VERIFY_SECONDS:.0f} s" if at_size else f"≥ {TARGET_VERIFY_RATE:,.0f} /s")
                     if target else "", (rate >= TARGET_VERIFY_RATE) if target else None))
        rows.append((f"  {verify['processes']} proc; parent's CPU, peak RSS; by seal",
                     f"{verify['cpu']:,.1f} s, {verify['peak_mb']:,.0f} MB; {verify['by_seal']:,} wf", "", None))
    if ledger:
        rows.append((f"ledger audit, {ledger['entries']:,} entries", f"{ledger['seconds']:,.1f} s, "
                     f"{ledger['entries'] / ledger['seconds']:,.0f} entries/s", "", None))
        rows.append(("  its CPU time, peak RSS", f"{ledger['cpu']:,.1f} s, {ledger['peak_mb']:,.0f} MB", "", None))
        newest = next((v for v in reversed(verifies) if v["depth"] == "newest"), None)  # a night's
        if newest:
            share = ledger["seconds"] / (ledger["seconds"] + newest["seconds"])
            rows.append(("  share of the nightly aegis_verify_chain --all", f"{share:.0%}", "", None))
    largest = results[-1]["workflows"] if results else None
    for r in results:
        at_target = r["workflows"] == largest
        for verb in ("backup", "restore"):
            seconds, cpu, peak = r[f"{verb}_s"], r[f"{verb}_cpu"], r[f"{verb}_mb"]
            ok = (seconds <= TARGET_SECONDS and peak <= TARGET_PEAK_MB) if at_target else peak <= TARGET_PEAK_MB
            rows.append((f"aegis_{verb}, {r['workflows']:,} workflows",
                         f"{seconds:,.1f} s ({cpu:,.1f} s CPU), {peak:,.0f} MB",
                         f"≤ {TARGET_SECONDS:.0f} s, ≤ {TARGET_PEAK_MB:.0f} MB" if at_target
                         else f"≤ {TARGET_PEAK_MB:.0f} MB", ok))
        rows.append((f"  backup file ({backup_name}), {r['workflows']:,} wf", mb(r["file_bytes"]), "", None))
    if len(results) >= 2:
        small, big = results[0], results[-1]
        for verb in ("backup", "restore"):
            limit = FLAT_FACTOR * small[f"{verb}_mb"] + FLAT_SLACK_MB
            rows.append((f"{verb} peak RSS flat {small['workflows']:,} → {big['workflows']:,}",
                         f"{small[f'{verb}_mb']:,.0f} → {big[f'{verb}_mb']:,.0f} MB",
                         f"≤ {limit:,.0f} MB", big[f"{verb}_mb"] <= limit))
    print()
    print(f"AEGIS audit benchmark (Python {sys.version.split()[0]}, SQLite, DEBUG off, one process per command; "
          f"data generation {generated_seconds:,.0f} s, not measured)")
    print("(times are wall clock, CPU time of the process in parentheses; MB is peak RSS)")
    print(f"{'measurement':<52} {'result':>34} {'target':>22}  ok")
    print("-" * 114)
    for name, result, target, ok in rows:
        verdict = "" if ok is None else ("yes" if ok else "NO")
        print(f"{name:<52} {result:>34} {target:>22}  {verdict}")


def report_evaluate(result: dict) -> None:
    print()
    print(f"What ledger recording costs POST /evaluate ({result['database']}, sequential, Django test client, "
          f"{result['entries_before']:,} ledger entries before, {result['entries_written']:,} written; "
          f"modes alternating every {EVALUATE_BLOCK} requests)")
    print(f"{'decision':<10} {'median, ledger on':>18} {'median, ledger off':>19} {'time added (paired blocks)':>28}"
          f"  quartiles")
    for outcome in ("halt", "proceed"):
        on, off = result["median_ms"][f"{outcome} True"], result["median_ms"][f"{outcome} False"]
        low, _, high = result["quartiles"][outcome]
        print(f"{outcome:<10} {on:>15.2f} ms {off:>16.2f} ms {result['slowdown'][outcome]:>27.1%}  "
              f"{low:.1%} … {high:.1%}")


if __name__ == "__main__":
    sys.exit(main())
