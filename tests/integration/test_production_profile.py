"""The production profile: the deployment of deploy/, tested as one.

PostgreSQL, Redis, and from deploy/Procfile (with honcho, as deploy/README.md runs it) three
"machines": one runs gunicorn with 4 workers and beat, two run a Celery worker each. Eight
load processes drive the unmodified official client for AEGIS_PROFILE_SECONDS (60) seconds.
In the middle the daily backup comes due (beat, from its database schedule); once a worker
is writing it, that worker's whole machine process group and one gunicorn worker are killed
with SIGKILL, and the worker machine is started again, as its supervisor would.

Afterwards: every 200 answer's decision is stored exactly once; the only failed requests
were in flight on the killed gunicorn worker, and their retries with the same
Idempotency-Key leave exactly one decision per request; every audit chain and seal block
verifies; the day's backup exists once and checks; /metrics adds up every gunicorn worker,
the killed one included. It prints throughput and latency percentiles.

The server processes use a database of their own (`aegis_profile_<random>`): on the suite's
PostgreSQL server when DATABASE_URL names one, otherwise on a throwaway cluster this test
starts. Missing PostgreSQL or Redis binaries FAIL the test; it never skips.
"""

from __future__ import annotations

import glob
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from process_support import free_port, running_redis, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
DURATION = float(os.environ.get("AEGIS_PROFILE_SECONDS", "60"))
LOAD_PROCESSES = 8
GUNICORN_WORKERS = 4
SEEDED_WORKFLOWS = 3000  # history enough that writing the daily backup takes seconds
SEAL_EVERY = 10  # seconds between sealing runs (5 minutes in production): sealing under load
VISIBILITY_TIMEOUT = 5  # seconds before Redis hands a dead worker's task to another worker
BACKUP_LEAD = 2  # the backup comes due this many seconds before the middle of the run


# --- services -------------------------------------------------------------------------------

def postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    assert found, "the production profile needs PostgreSQL (Debian: apt-get install postgresql)"
    return Path(found[-1]).parent


def as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root (CI runs as root): use its own user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def postgres_server():
    """The URL of a PostgreSQL server to create databases on: DATABASE_URL's, else our own cluster."""
    given = os.environ.get("DATABASE_URL", "")
    if given.startswith(("postgres://", "postgresql://")):
        yield given
        return
    binaries = postgres_bin()
    workdir = Path(tempfile.mkdtemp(prefix="aegis-profile-pg-"))
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
    port = free_port()
    subprocess.run(as_postgres_user([str(binaries / "initdb"), "-D", str(workdir / "data"), "-A", "trust",
                                     "-U", "postgres", "-E", "UTF8"]), check=True, stdout=subprocess.DEVNULL)
    # A throwaway cluster: durability settings off, as in .ci/run.
    options = (f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={workdir} -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    subprocess.run(as_postgres_user([str(binaries / "pg_ctl"), "-D", str(workdir / "data"), "-l",
                                     str(workdir / "server.log"), "-w", "-o", options, "start"]),
                   check=True, stdout=subprocess.DEVNULL)
    try:
        yield f"postgres://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_postgres_user([str(binaries / "pg_ctl"), "-D", str(workdir / "data"), "-m", "immediate",
                                         "stop"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def profile_database(postgres_server):
    """A fresh database on that server, dropped afterwards."""
    name = f"aegis_profile_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(postgres_server)._replace(path=f"/{name}"))
    yield url
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_server(tmp_path):
    """A redis-server of its own: the Celery queues must hold this deployment's tasks only."""
    with running_redis(tmp_path) as url:
        yield url


# --- processes --------------------------------------------------------------------------------

def children_of(pid: int) -> list[int]:
    """The live child processes of `pid` (from /proc: no dependency for one lookup)."""
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = Path(stat).read_text()
        except OSError:
            continue  # it exited meanwhile
        fields = text.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(Path(stat).parent.name))
    return sorted(found)


def descendants_of(pid: int) -> list[int]:
    found, pending = [], [pid]
    while pending:
        for child in children_of(pending.pop()):
            found.append(child)
            pending.append(child)
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class Machine:
    """One `honcho start` of deploy/Procfile: the processes one machine of the deployment runs."""

    def __init__(self, name: str, processes: list[str], env_files: list[Path], workdir: Path):
        self.name = name
        self.log = workdir / f"{name}.log"
        environment = {"PATH": f"{VENV_BIN}:{os.environ['PATH']}", "HOME": str(workdir), "LANG": "C.UTF-8",
                       "PYTHONUNBUFFERED": "1"}  # nothing else: the deployment gets what its env file says
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "honcho"), "-f", "deploy/Procfile", "-e", ",".join(map(str, env_files)), "start",
                 *processes], cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.seen: set[int] = set()

    def processes(self) -> list[int]:
        found = descendants_of(self.process.pid)
        self.seen.update(found)
        return found

    def find(self, *words: str) -> int | None:
        """The first process of this machine whose command line holds every word."""
        for pid in self.processes():
            line = command_line(pid)
            if all(word in line for word in words) and not line.startswith("/bin/sh"):
                return pid
        return None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM to honcho, which stops its processes; SIGKILL to anything left over."""
        self.processes()
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for pid in self.seen:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def run_step(env_files: list[Path], *command: str, check: bool = True) -> subprocess.CompletedProcess:
    """A one-off command with the deployment's environment (`honcho run`, as the release steps)."""
    environment = {"PATH": f"{VENV_BIN}:{os.environ['PATH']}", "HOME": tempfile.gettempdir(), "LANG": "C.UTF-8"}
    result = subprocess.run([str(VENV_BIN / "honcho"), "-e", ",".join(map(str, env_files)), "run", *command],
                            cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def setup_step(env_files: list[Path], *arguments: str) -> dict:
    result = run_step(env_files, "python", str(HERE / "profile_setup.py"), *arguments)
    return json.loads(result.stdout.strip().splitlines()[-1])


def http_get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def answers_health(port: int) -> bool:
    try:
        return http_get(port, "/health")[0] == 200
    except OSError:
        return False


def samples(text: str, name: str) -> list:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name == name]


def decisions_by_process(directory: Path) -> dict[int, float]:
    """pid -> aegis_decisions_total in that gunicorn worker's own counter file."""
    counted = {}
    for path in directory.glob("counter_*.db"):
        counted[int(path.stem.split("_")[1])] = sum(
            sample.value for metric in MultiProcessCollector.merge([str(path)]) for sample in metric.samples
            if sample.name == "aegis_decisions_total")
    return counted


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


# --- the profile --------------------------------------------------------------------------------

class Deployment:
    """The deployment's environment file (deploy/env.example's variables, for loopback) and
    the machines started from the Procfile, all stopped by `stop`."""

    def __init__(self, database: str, redis: str):
        self.workdir = Path(tempfile.mkdtemp(prefix="aegis-profile-"))  # short paths, not pytest's 0700 tmp
        for name in ("backups", "static", "tmp"):
            (self.workdir / name).mkdir()
        self.database = database
        self.port = free_port()
        self.env_file = self.workdir / "aegis.env"
        self.env_file.write_text("\n".join([
            "DEBUG=0",
            f"SECRET_KEY='{secrets.token_urlsafe(50)}'",
            f"FERNET_KEYS='{secrets.token_urlsafe(32)}'",
            f"AEGIS_ANCHOR_KEY='{secrets.token_urlsafe(50)}'",
            f"AEGIS_ANCHOR_DIR={self.workdir / 'anchors'}",
            f"DATABASE_URL='{database}'",
            f"REDIS_URL='{redis}'",
            "ALLOWED_HOSTS=127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT=0",  # the clients talk to gunicorn on loopback, no TLS proxy in front
            f"GUNICORN_BIND=127.0.0.1:{self.port}",
            f"GUNICORN_WORKERS={GUNICORN_WORKERS}",
            "CELERY_CONCURRENCY=1",
            f"CELERY_VISIBILITY_TIMEOUT={VISIBILITY_TIMEOUT}",
            f"BACKUP_DIR={self.workdir / 'backups'}",
            f"STATIC_ROOT={self.workdir / 'static'}",
            f"TMPDIR={self.workdir / 'tmp'}",  # where gunicorn.conf.py makes its metrics directory
            "",
        ]))
        self.env = [self.env_file]
        self.machines: list[Machine] = []

    def start(self, name: str, processes: list[str], **own_settings: str) -> Machine:
        env_files = [self.env_file]
        if own_settings:
            env_files.append(self.workdir / f"{name}.env")
            env_files[-1].write_text("".join(f"{key}={value}\n" for key, value in own_settings.items()))
        machine = Machine(name, processes, env_files, self.workdir)
        self.machines.append(machine)
        return machine

    def stop(self) -> None:
        for machine in self.machines:
            machine.stop()
        for machine in self.machines:
            print(f"--- {machine.name}, last lines\n" + "\n".join(machine.output().splitlines()[-20:]))
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture
def deployment(profile_database, redis_server):
    started = Deployment(profile_database, redis_server)
    yield started
    started.stop()


def backup_outcome(database: str, day) -> str | None:
    with psycopg.connect(database, autocommit=True) as db:
        row = db.execute("SELECT outcome FROM workflows_backuprun WHERE day = %s", [day]).fetchone()
    return row[0] if row else None


def test_the_production_profile_survives_killed_workers_and_loses_nothing(deployment):
    env = deployment.env
    # The release steps of deploy/README.md, then what an operator sets up.
    run_step(env, "python", "manage.py", "migrate", "--no-input")
    run_step(env, "python", "manage.py", "collectstatic", "--no-input")
    tenants = setup_step(env, "seed", str(LOAD_PROCESSES), str(SEEDED_WORKFLOWS), str(SEAL_EVERY))["tenants"]

    web = deployment.start("web", ["web", "beat"])
    workers = {name: deployment.start(name, ["worker"], CELERY_WORKER_NAME=name) for name in ("worker-a", "worker-b")}
    port = deployment.port
    wait_for(lambda: answers_health(port) or not web.alive(), 90, "gunicorn to answer /health")
    assert web.alive(), web.output()
    master = wait_for(lambda: web.find("gunicorn"), 30, "the gunicorn master")
    wait_for(lambda: len(children_of(master)) == GUNICORN_WORKERS, 60, f"{GUNICORN_WORKERS} gunicorn workers")
    metrics_dir = Path(wait_for(lambda: next(iter(glob.glob(str(deployment.workdir / "tmp" / "aegis-prometheus-*"))),
                                             None), 30, "gunicorn's metrics directory"))
    wait_for(lambda: len(list(metrics_dir.glob("histogram_*.db"))) >= GUNICORN_WORKERS, 60,
             "every gunicorn worker to load the app")
    for name, machine in workers.items():
        wait_for(lambda: f"{name}@" in machine.output() and " ready." in machine.output() or not machine.alive(),
                 90, f"Celery worker {name} to be ready")
        assert machine.alive(), machine.output()
    wait_for(lambda: "beat: Starting" in web.output(), 60, "celery beat to start")

    # The load, and the daily backup due in its middle.
    workdir = deployment.workdir
    start_at = time.monotonic() + 4
    due = datetime.now(timezone.utc) + timedelta(seconds=4 + DURATION / 2 - BACKUP_LEAD)
    today = due.date()
    loads = [subprocess.Popen([sys.executable, str(HERE / "profile_load.py"), f"client-{n}",
                               f"http://127.0.0.1:{port}", tenant["key"], repr(start_at), repr(DURATION),
                               str(workdir / f"load-{n}.jsonl")], cwd=ROOT)
             for n, tenant in enumerate(tenants)]
    try:
        setup_step(env, "backup-at", due.isoformat())
        assert time.monotonic() < start_at + DURATION / 2 - BACKUP_LEAD, \
            "the backup was scheduled too late; raise AEGIS_PROFILE_SECONDS"

        # Once a Celery worker is writing the backup: SIGKILL to its whole process group
        # (main process and pool, as if its machine died) and to one gunicorn worker.
        wait_for(lambda: backup_outcome(deployment.database, today), DURATION / 2 + 30, "the daily backup to start")
        time.sleep(0.3)  # well inside writing the file
        holding = [name for name, machine in workers.items() if "Task aegis.backup.daily[" in machine.output()]
        assert len(holding) == 1, f"expected one worker to have received the backup, found {holding}"
        killed_worker = workers[holding[0]]
        worker_main = killed_worker.find("celery", "worker")
        victim = children_of(master)[0]
        kill_started = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        os.killpg(os.getpgid(worker_main), signal.SIGKILL)
        kill_ended = time.monotonic()
        assert backup_outcome(deployment.database, today) == "running", \
            "the backup finished before its worker was killed; the test proves nothing"
        # Its supervisor starts the worker again (systemd: Restart=always).
        wait_for(lambda: not killed_worker.alive(), 30, "the killed worker's honcho to notice")
        workers[holding[0]] = deployment.start(f"{holding[0]}-restarted", ["worker"], CELERY_WORKER_NAME=holding[0])

        for load in loads:
            load.wait(timeout=DURATION + 120)
            assert load.returncode == 0, "a load process failed"
    finally:
        for load in loads:
            if load.poll() is None:
                load.kill()
    assert web.alive() and all(machine.alive() for machine in workers.values()), \
        "a machine of the deployment stopped: " + web.output()[-3000:]

    records = [json.loads(line) for n in range(LOAD_PROCESSES)
               for line in (workdir / f"load-{n}.jsonl").read_text().splitlines()]
    answered = [r for r in records if "error" not in r]
    failed = [r for r in records if "error" in r]
    stored_now = setup_step(env, "report", today.isoformat(), *[t["customer_id"] for t in tenants])
    scrapes = [http_get(port, "/metrics") for _ in range(2 * GUNICORN_WORKERS)]  # several workers answer
    per_process = decisions_by_process(metrics_dir)

    # 1. The only failures: requests in flight on the killed gunicorn worker, which serves
    #    one request at a time. Each one's retry with its Idempotency-Key is answered.
    for record in failed:
        assert record["started"] <= kill_ended and record["ended"] >= kill_started, \
            f"a request failed that was not in flight at the kill: {record}"
        assert "error" not in record["retry"], f"the retry with the same Idempotency-Key failed: {record}"
    assert len(failed) <= 1, f"{len(failed)} requests failed; the killed worker had one in flight at most: {failed}"

    # 2. Every 200 answer's decision is stored exactly once, and every stored decision was
    #    answered: by its 200, or by the retry of the request that was cut off.
    stored = stored_now["decisions"]
    answered_ids = [r["decision_id"] for r in answered]
    assert len(set(answered_ids)) == len(answered_ids), "two answers carried the same decision_id"
    assert all(stored.get(decision_id) == 1 for decision_id in answered_ids), \
        [d for d in answered_ids if stored.get(d) != 1][:5]
    assert all(count == 1 for count in stored.values())
    assert set(stored) == set(answered_ids) | {r["retry"]["decision_id"] for r in failed}, \
        "a stored decision was never answered"
    assert len(stored) == len(records), "not exactly one decision per request"

    # 3. /metrics adds up every gunicorn worker, whichever answers, the killed one included
    #    (its counter file stays; only its live gauges go).
    for status, body in scrapes:
        assert status == 200
        total = sum(sample.value for sample in samples(body, "aegis_decisions_total"))
        errors = sum(sample.value for sample in samples(body, "aegis_http_requests_total")
                     if sample.labels["status"].startswith("5"))
        # A decision the killed worker committed but had not counted yet is the only gap.
        assert len(stored) - len(failed) <= total <= len(stored), (total, len(stored), len(failed))
        assert total == sum(per_process.values())
        assert errors == 0, f"{errors} server errors"
    assert per_process.get(victim, 0) > 0, f"the killed worker's decisions are not counted: {per_process}"
    assert set(children_of(master)) <= set(per_process) and \
        len([count for count in per_process.values() if count > 0]) == GUNICORN_WORKERS + 1, \
        f"not every worker's decisions are counted, its replacement's included: {per_process}"

    # 4. The day's backup exists once: one run, one file, written once (the killed worker's
    #    task redelivered to another worker), and the file checks.
    def backup_done():
        state = setup_step(env, "report", today.isoformat())
        return state if any(run["outcome"] == "succeeded" for run in state["backup_runs"]) else None

    final = wait_for(backup_done, 120, "the redelivered backup to finish", interval=2)
    assert final["backup_runs"] == [{"day": today.isoformat(), "outcome": "succeeded",
                                     "path": str(workdir / "backups" / f"aegis-backup-{today}.json.gz")}]
    assert final["backup_files"] == [f"aegis-backup-{today}.json.gz"], final["backup_files"]
    assert final["backups_succeeded"] == 1, "the backup was written more than once"
    assert final["manifest"]["counts"]["workflows"] == SEEDED_WORKFLOWS
    task_id = re.search(r"Task aegis\.backup\.daily\[([0-9a-f-]+)\] received", killed_worker.output()).group(1)
    assert any(f"Task aegis.backup.daily[{task_id}] succeeded" in machine.output() for machine in workers.values()), \
        "the killed worker's backup task was not redelivered to another worker"

    # 5. Every audit chain verifies: the workflows, and every decision against its seal block.
    sealed = run_step(env, "python", "manage.py", "aegis_seal_decisions")
    verified = run_step(env, "python", "manage.py", "aegis_verify_chain", "--all", check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"{SEEDED_WORKFLOWS} workflow(s) checked, 0 broken." in verified.stdout
    assert re.search(rf"\b{len(stored)} decision\(s\) checked in \d+ seal block\(s\), .*: 0 unsealed, 0 broken\.",
                     verified.stdout), verified.stdout

    latencies = [r["ended"] - r["started"] for r in answered]
    seconds = max(r["ended"] for r in records) - start_at
    print(f"\nproduction profile: gunicorn x{GUNICORN_WORKERS}, 2 Celery workers, beat, PostgreSQL, Redis; "
          f"{LOAD_PROCESSES} client processes for {DURATION:.0f} s")
    print(f"  answered 200                 {len(answered)}")
    print(f"  failed (in flight at kill)   {len(failed)}"
          + "".join(f"; {r['error'][:80]} -> retried: {r['retry'].get('status')}" for r in failed))
    print(f"  throughput                   {len(answered) / seconds:.1f} decisions/s")
    print(f"  latency p50 / p99 / max      {percentile(latencies, 0.5) * 1000:.0f} / "
          f"{percentile(latencies, 0.99) * 1000:.0f} / {max(latencies) * 1000:.0f} ms")
    print(f"  killed at                    {kill_started - start_at:.1f} s: gunicorn worker {victim}, "
          f"Celery {holding[0]} mid-backup")
    print(f"  decisions stored             {len(stored)}, all sealed and verified ({sealed.stdout.strip()})")
