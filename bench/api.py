"""HTTP benchmark: `.venv/bin/python bench/api.py [--seconds N] [--concurrency C]`.

Serves AEGIS with gunicorn (2 gthread workers × 2 threads, 127.0.0.1, a free port) on a
throwaway SQLite database and drives, in the same run, `POST /evaluate` (a tenant on an
unthrottled bench tier, the body the official client sends, `Authorization: Bearer`, a
fresh Idempotency-Key per request) and a trivial DRF JSON endpoint (`GET /bench/trivial`
→ {"ok": true}: no auth, no database) alternately, 3 rounds each after a warm-up, so the
ratio evaluate/trivial holds on a noisy machine. Prints median req/s, p50 and p99 per
endpoint against the targets

    /evaluate ≥ 40 % of the trivial endpoint's throughput, with p99 ≤ 50 ms,

then (Django test client, same settings and database, server stopped) the SQL one
/evaluate makes (CaptureQueriesContext), its in-process service time, the fsync latency
of the temp dir's disk and where one /evaluate's time goes by stage; --profile adds a
cProfile (self time by package, then the top functions).

Production code is not touched: the trivial endpoint lives in a settings + URLconf
module written to the temp dir at run time (it includes `aegis_site.urls` unchanged).
Load generator: `wrk` (Debian package `wrk`; a Lua script builds each request) when
installed, else a light multi-process Python generator (http.client, keep-alive).
Everything listens on and talks to 127.0.0.1 only; temp dir, gunicorn (and PostgreSQL)
are removed on exit, Ctrl-C and SIGTERM included.

Variants (each measured the same way):
  --postgres                 a throwaway PostgreSQL cluster (initdb) instead of SQLite
  --database-url URL         an existing throwaway database on 127.0.0.1
  --conn-max-age N           DATABASE_CONN_MAX_AGE (the app's default, 0, reconnects per request)
  --sqlite-wal               experiment: journal_mode=WAL, synchronous=NORMAL
  --pg-async-commit          experiment: PostgreSQL synchronous_commit=off
  --outcome O                the decision /evaluate's body gets: proceed (default, the client's
                             defaults), halt (novelty_score 0.9) or pause (estimated_impact high);
                             halt and pause also open a review workflow (see OUTCOME_BODIES)
  --git-ref REF              benchmark a `git archive` export of REF, not the working tree
                             (this script, that commit's app; see BENCH_SITECUSTOMIZE)
  --worker-class, --threads, --workers, --rounds, --warmup, --no-idempotency-key, --keep

Exit status 0 whether or not the targets are met (1 only if the benchmark itself could
not run, 130 when interrupted).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
HOST = "127.0.0.1"

# Between runs, so requests still in flight when the generator stops (at most
# --concurrency of them) finish before the next endpoint is measured.
DRAIN_SECONDS = 1.0

TARGET_RATIO = 0.40
TARGET_P99_MS = 50.0

# What aegis.AegisClient.evaluate(...) sends with its defaults plus agent/session ids.
EVALUATE_BODY = {
    "proposal_summary": "Refactor the payment retry loop to use exponential backoff with jitter",
    "estimated_impact": "medium",
    "risk_baseline": 0.02,
    "risk_proposed": 0.05,
    "profit_baseline": 0.98,
    "profit_proposed": 0.98,
    "novelty_score": 0.75,
    "complexity_score": 0.8,
    "quality_score": 0.85,
    "agent_id": "bench-agent",
    "session_id": "bench-session-1",
}

# --outcome: the /evaluate body for each decision. proceed is the client's defaults; halt
# fails one gate (novelty above its ceiling), pause asks for a high-impact change. Since
# issue 11 a non-shadow pause/escalate/halt also opens its review workflow (proposal
# machine: 2 transitions, 2 checkpoints, 2 telemetry events) in the decision's transaction.
OUTCOME_BODIES = {
    "proceed": EVALUATE_BODY,
    "halt": {**EVALUATE_BODY, "novelty_score": 0.9},
    "pause": {**EVALUATE_BODY, "estimated_impact": "high"},
}

# --- files written to the temp dir ------------------------------------------------------

BENCH_SETTINGS = '''\
"""Bench-only settings: production settings, plus a URLconf with a trivial endpoint."""
import os

from aegis_site.settings import *  # noqa: F401,F403
from aegis_site.settings import DATABASES

ROOT_URLCONF = "bench_urls"

if os.environ.get("BENCH_SQLITE_WAL") == "1" and DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Experiment only (--sqlite-wal): what WAL + synchronous=NORMAL would buy.
    DATABASES["default"]["OPTIONS"]["init_command"] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"
'''

BENCH_URLS = '''\
"""Bench-only URLconf: every production route, plus GET/POST /bench/trivial."""
from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from aegis_site.urls import handler400, handler403, handler404, handler500  # noqa: F401


class TrivialView(APIView):
    """The floor: Django middleware + DRF dispatch + JSON rendering, nothing else."""

    authentication_classes = []
    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer]

    def get(self, request):
        return Response({"ok": True})

    def post(self, request):
        return Response({"ok": True})


urlpatterns = [
    path("bench/trivial", TrivialView.as_view()),
    path("", include("aegis_site.urls")),
]
'''

# The venv's editable install (pip install -e) adds a finder that serves the project's
# packages from the working tree: a module missing from a --git-ref export (one added
# since, e.g. governance.decisions) would silently come from the working tree. Python
# imports this from the temp dir (on PYTHONPATH) at start-up in every process the bench
# runs; the project is on PYTHONPATH already, the finder is not needed.
BENCH_SITECUSTOMIZE = '''\
import sys

sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith("__editable__")]
'''

BENCH_WSGI = '''\
import os

os.environ["DJANGO_SETTINGS_MODULE"] = "bench_settings"

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
'''

# Creates a tier nobody can hit: the per-minute throttle counts per process (LocMem) and
# even enterprise's 6,000/min would cap a 2-worker server at ~200 req/s.
SETUP_TIER = '''\
from governance.models import Tier
Tier.objects.update_or_create(name="bench", defaults=dict(
    display_name="Bench (unlimited)", monthly_evaluations=2_000_000_000,
    rate_per_minute=2_000_000_000, max_keys=10, features=["evaluate"]))
'''

# wrk: one request per call of request(), a unique Idempotency-Key each; done() prints JSON.
WRK_LUA = r'''
local counter = 0
local thread_no = 0
local threads = {}

function setup(thread)
  thread_no = thread_no + 1
  thread:set("tid", thread_no)
  table.insert(threads, thread)
end

function init(args)
  method = args[1]
  path = args[2]
  nonce = tonumber(args[3])
  use_idem = args[4] == "1"
  body = nil
  if method == "POST" then
    local f = assert(io.open(args[5], "rb"))
    body = f:read("*a")
    f:close()
  end
  hdrs = {}
  local i = 6
  while args[i] do
    local k, v = args[i]:match("^([^:]+):%s*(.*)$")
    hdrs[k] = v
    i = i + 1
  end
  if not use_idem then
    fixed = wrk.format(method, path, hdrs, body)
  end
end

function request()
  if not use_idem then
    return fixed
  end
  counter = counter + 1
  hdrs["Idempotency-Key"] = string.format("%08x-%04x-4000-8000-%012x", nonce, tid, counter)
  return wrk.format(method, path, hdrs, body)
end

-- The first non-2xx answer per thread, so a failing run says why.
first_error = ""
function response(status, headers, body)
  if status >= 300 and first_error == "" then
    first_error = status .. " " .. string.sub(body or "", 1, 300)
  end
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    local err = t:get("first_error")
    if err and err ~= "" then
      io.write("BENCHERR " .. string.gsub(err, "\n", " ") .. "\n")
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
'''

# Query count and (optionally) a cProfile of /evaluate in one worker-like process.
PROFILE_SCRIPT = r'''
import cProfile, io, json, os, pstats, sys, time, uuid
import django
django.setup()
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

key, body_path, n_profile, want_profile, outcome = (sys.argv[1], sys.argv[2], int(sys.argv[3]),
                                                    sys.argv[4] == "1", sys.argv[5])
body = open(body_path, "rb").read()
client = Client(SERVER_NAME="127.0.0.1", HTTP_HOST="127.0.0.1")
headers = {"HTTP_AUTHORIZATION": "Bearer " + key}

def call(idem=True, path="/evaluate"):
    extra = dict(headers)
    if idem:
        extra["HTTP_IDEMPOTENCY_KEY"] = str(uuid.uuid4())
    response = client.post(path, data=body, content_type="application/json", **extra)
    assert response.status_code == 200, (response.status_code, response.content[:300])
    return response

def trivial():
    response = client.get("/bench/trivial")
    assert response.status_code == 200, response.status_code

status = json.loads(call().content)["status"]
assert status == outcome, f"/evaluate answered {status!r}, not {outcome!r}"
for _ in range(20):
    call(); trivial()

import governance
out = {"governance_path": governance.__file__,
       "project_modules": sorted({getattr(m, "__file__", None) or "" for name, m in list(sys.modules.items())
                                  if name.split(".")[0] in ("aegis_site", "calibration", "governance", "workflows")})}
for label, idem in (("with_idempotency_key", True), ("without_idempotency_key", False)):
    with CaptureQueriesContext(connection) as ctx:
        call(idem)
    out[label] = [q["sql"] for q in ctx.captured_queries]

# In-process service time (no HTTP, no gunicorn), median of 3 batches.
def timed(fn, n=60):
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t0) / n * 1e3)
    return sorted(runs)[1]
out["ms_evaluate"] = timed(call)
out["ms_evaluate_no_idem"] = timed(lambda: call(False))
out["ms_trivial"] = timed(trivial, 300)

# Where one /evaluate's wall time goes: inclusive time and SQL per stage (functions
# wrapped here at run time, in this process only; a stage whose name moved is skipped),
# SQL execution time (execute_wrapper) and COMMIT time (the journal fsyncs).
import functools, importlib
clock = {"sql_ms": 0.0, "queries": 0, "commit_ms": 0.0, "commits": 0}
stages = {}

def sql_timer(execute, sql, params, many, context):
    t0 = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        clock["sql_ms"] += (time.perf_counter() - t0) * 1e3
        clock["queries"] += 1

def wrap(label, module_name, attr, owner=None):
    try:
        target = owner or importlib.import_module(module_name)
        original = getattr(target, attr)
    except (ImportError, AttributeError):
        return
    stages[label] = [0.0, 0, 0]
    @functools.wraps(original)
    def timed_call(*args, **kwargs):
        q0, t0 = clock["queries"], time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            entry = stages[label]
            entry[0] += (time.perf_counter() - t0) * 1e3
            entry[1] += clock["queries"] - q0
            entry[2] += 1
    setattr(target, attr, timed_call)

from governance.api import auth as auth_module
wrap("authenticate (API key lookup)", None, "authenticate", auth_module.ApiKeyAuthentication)
wrap("enforce_rate_limit (cache)", "governance.services", "enforce_rate_limit")
wrap("parse_proposal", "governance.api.views", "parse_proposal")
wrap("run_idempotent (all below)", "governance.api.views", "run_idempotent")
wrap("  _claim (key INSERT + COMMIT)", "governance.idempotency", "_claim")
wrap("  evaluate_proposal (service)", "governance.services", "evaluate_proposal")
wrap("    _enforce_monthly_quota", "governance.services", "_enforce_monthly_quota")
wrap("    _decide (config + engine)", "governance.services", "_decide")
wrap("      active_config", "governance.services", "active_config")
wrap("      pcw_decide", "governance.services", "pcw_decide")
wrap("    _count_call", "governance.services", "_count_call")
wrap("    decisions.record (INSERTs)", "governance.decisions", "record")
wrap("      _open_review (workflow)", "governance.decisions", "_open_review")
original_commit = connection._commit
def timed_commit(*args, **kwargs):
    t0 = time.perf_counter()
    try:
        return original_commit(*args, **kwargs)
    finally:
        clock["commit_ms"] += (time.perf_counter() - t0) * 1e3
        clock["commits"] += 1
connection._commit = timed_commit
n_breakdown = 150
with connection.execute_wrapper(sql_timer):
    t0 = time.perf_counter()
    for _ in range(n_breakdown):
        call()
    wall = (time.perf_counter() - t0) * 1e3
connection._commit = original_commit
out["breakdown"] = {
    "requests": n_breakdown, "wall_ms": wall / n_breakdown,
    "sql_ms": clock["sql_ms"] / n_breakdown, "queries": clock["queries"] / n_breakdown,
    "commit_ms": clock["commit_ms"] / n_breakdown, "commits": clock["commits"] / n_breakdown,
    "stages": {k: [v[0] / n_breakdown, v[1] / n_breakdown, v[2] / n_breakdown] for k, v in stages.items()},
}

if want_profile:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n_profile):
        call()
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    groups = {}
    for (filename, _, function), (_, _, tottime, _, _) in stats.stats.items():
        f = filename.replace(os.sep, "/")
        if "/django/db/" in f:
            group = "django.db (ORM: query building, compiling, model init)"
        elif "/django/" in f:
            group = "django (handlers, middleware, test client, http)"
        elif "/rest_framework/" in f:
            group = "rest_framework"
        elif "/governance/engine/" in f:
            group = "governance.engine (the decision itself)"
        elif any(p in f for p in ("/governance/", "/calibration/", "/workflows/")):
            group = "governance/calibration (views, services, idempotency)"
        elif "/json/" in f:
            group = "json (stdlib)"
        elif f == "~" and ("sqlite3" in function or "psycopg" in function or "commit" in function
                           or "execute" in function):
            group = "database driver C calls (execute, commit, fetch)"
        elif "/psycopg" in f:
            group = "psycopg (Python part)"
        else:
            group = "other (stdlib, builtins, cProfile)"
        groups[group] = groups.get(group, 0.0) + tottime
    total = sum(groups.values())
    out["profile_groups"] = sorted(((g, t / n_profile * 1e3, t / total) for g, t in groups.items()),
                                   key=lambda row: -row[1])
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(30)
    out["profile"] = stream.getvalue()
print("BENCHJSON " + json.dumps(out))
'''


# --- helpers ----------------------------------------------------------------------------

class BenchError(Exception):
    pass


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def run_manage(src: Path, env: dict, *args: str) -> str:
    result = subprocess.run([PYTHON, str(src / "manage.py"), *args], cwd=src, env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def check_loopback_database(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        return
    host = parts.hostname or ""
    if host not in ("127.0.0.1", ""):  # "" = Unix socket
        raise BenchError(f"--database-url must point at 127.0.0.1 (or a Unix socket), not {host!r}")


def fsync_latency_ms(directory: Path, n: int = 20) -> float:
    """Median time of a 4 KiB write + fsync in `directory`: what each SQLite COMMIT pays
    (several times over in the default rollback-journal mode)."""
    path = directory / "fsync-probe"
    times = []
    with open(path, "wb") as f:
        for _ in range(n):
            f.write(os.urandom(4096))
            f.flush()
            t0 = time.perf_counter()
            os.fsync(f.fileno())
            times.append((time.perf_counter() - t0) * 1e3)
    path.unlink()
    return statistics.median(times)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    rank = max(0, math.ceil(q / 100 * len(sorted_values)) - 1)
    return sorted_values[rank]


# --- load generators --------------------------------------------------------------------

class Target:
    def __init__(self, name: str, method: str, path: str, headers: dict[str, str],
                 body: bytes | None, idempotency: bool):
        self.name, self.method, self.path = name, method, path
        self.headers, self.body, self.idempotency = headers, body, idempotency


class Wrk:
    """wrk, one thread (light: it needs a fraction of one core at these rates)."""

    name = "wrk"

    def __init__(self, workdir: Path, port: int, concurrency: int):
        self.workdir, self.port, self.concurrency = workdir, port, concurrency
        self.script = workdir / "bench.lua"
        self.script.write_text(WRK_LUA)
        self.proc: subprocess.Popen | None = None

    def run(self, target: Target, seconds: float) -> dict:
        body_file = self.workdir / f"body-{target.name}.json"
        body_file.write_bytes(target.body or b"")
        nonce = secrets.randbits(31)
        cmd = ["wrk", "-t1", f"-c{self.concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
               "-s", str(self.script), f"http://{HOST}:{self.port}{target.path}", "--",
               target.method, target.path, str(nonce), "1" if target.idempotency else "0", str(body_file),
               *(f"{k}: {v}" for k, v in target.headers.items())]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = self.proc.communicate()
        code, self.proc = self.proc.returncode, None
        line = next((ln for ln in out.splitlines() if ln.startswith("BENCHJSON ")), None)
        if code != 0 or line is None:
            raise BenchError(f"wrk failed ({code}):\n{out}\n{err}")
        data = json.loads(line[len("BENCHJSON "):])
        for err in (ln for ln in out.splitlines() if ln.startswith("BENCHERR ")):
            log(f"{target.name}: first non-2xx answer: {err[len('BENCHERR '):]}")
        errors = data["connect"] + data["read"] + data["write"] + data["timeout"]
        return {"rps": data["requests"] / (data["duration_us"] / 1e6), "p50": data["p50_us"] / 1e3,
                "p99": data["p99_us"] / 1e3, "requests": data["requests"], "non2xx": data["status"],
                "socket_errors": errors}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _py_worker(port, target_spec, connections, seconds, start_at, queue):
    """One generator process: `connections` keep-alive connections, one thread each."""
    import http.client
    import uuid as _uuid

    method, path, headers, body, idem = target_spec
    latencies: list[float] = []
    counts = {"non2xx": 0, "errors": 0}
    lock = threading.Lock()

    def loop():
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        local, non2xx, errors = [], 0, 0
        while time.time() < start_at:
            time.sleep(0.001)
        end = start_at + seconds
        while True:
            t0 = time.perf_counter()
            if time.time() >= end:
                break
            h = dict(headers)
            if idem:
                h["Idempotency-Key"] = str(_uuid.uuid4())
            try:
                conn.request(method, path, body=body, headers=h)
                response = conn.getresponse()
                response.read()
                if not 200 <= response.status < 400:
                    non2xx += 1
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException):
                errors += 1
                conn.close()
                continue
            local.append(time.perf_counter() - t0)
        conn.close()
        with lock:
            latencies.extend(local)
            counts["non2xx"] += non2xx
            counts["errors"] += errors

    threads = [threading.Thread(target=loop) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.put((latencies, counts))


class PyGen:
    """Fallback: ≤2 processes × threads, http.client keep-alive (heavier than wrk)."""

    name = "python (http.client, keep-alive)"

    def __init__(self, workdir: Path, port: int, concurrency: int):
        self.port, self.concurrency = port, concurrency
        self.procs: list[multiprocessing.Process] = []

    def run(self, target: Target, seconds: float) -> dict:
        nprocs = min(2, self.concurrency)
        shares = [self.concurrency // nprocs + (1 if i < self.concurrency % nprocs else 0) for i in range(nprocs)]
        queue: multiprocessing.Queue = multiprocessing.Queue()
        spec = (target.method, target.path, target.headers, target.body, target.idempotency)
        start_at = time.time() + 0.5
        self.procs = [multiprocessing.Process(target=_py_worker, args=(self.port, spec, n, seconds, start_at, queue))
                      for n in shares]
        for p in self.procs:
            p.start()
        results = [queue.get() for _ in self.procs]
        for p in self.procs:
            p.join()
        self.procs = []
        latencies = sorted(x for lat, _ in results for x in lat)
        return {"rps": len(latencies) / seconds, "p50": percentile(latencies, 50) * 1e3,
                "p99": percentile(latencies, 99) * 1e3, "requests": len(latencies),
                "non2xx": sum(c["non2xx"] for _, c in results),
                "socket_errors": sum(c["errors"] for _, c in results)}

    def stop(self) -> None:
        for p in self.procs:
            if p.is_alive():
                p.kill()
                p.join()


# --- the run ----------------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="aegis-bench-"))
        self.server: subprocess.Popen | None = None
        self.generator = None
        self.port = free_port()
        self.pg: dict | None = None
        self.src = REPO
        self.env: dict[str, str] = {}
        self.key = ""

    def configure(self) -> None:
        args = self.args
        if args.database_url:
            check_loopback_database(args.database_url)
        if args.git_ref:
            # A clean export of one commit (the repo itself is only read): benchmarks that
            # commit even while the working tree is mid-edit, and allows before/after runs.
            self.src = self.tmp / "src"
            self.src.mkdir()
            archive = subprocess.run(["git", "-C", str(REPO), "archive", args.git_ref], capture_output=True)
            if archive.returncode != 0:
                raise BenchError(f"git archive {args.git_ref}: {archive.stderr.decode()}")
            subprocess.run(["tar", "-x", "-C", str(self.src)], input=archive.stdout, check=True)
        if args.postgres:
            db_url = self.start_postgres()
        else:
            db_url = args.database_url or f"sqlite:///{self.tmp / 'db.sqlite3'}"
        check_loopback_database(db_url)
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench_settings",
            "PYTHONPATH": os.pathsep.join([str(self.tmp), str(self.src)]),
            "DATABASE_URL": db_url,
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": HOST,
            "SECURE_SSL_REDIRECT": "0",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "SECURE_HSTS_SECONDS": "0",
            "AEGIS_LOG_LEVEL": "WARNING",
        }
        self.env.pop("REDIS_URL", None)
        for name in ("FERNET_KEYS", "STATIC_ROOT", "BACKUP_DIR"):
            self.env.pop(name, None)
        if args.conn_max_age is not None:
            self.env["DATABASE_CONN_MAX_AGE"] = str(args.conn_max_age)
        if args.sqlite_wal:
            self.env["BENCH_SQLITE_WAL"] = "1"

    # setup

    def start_postgres(self) -> str:
        """A throwaway PostgreSQL cluster on 127.0.0.1 (default durability: fsync and
        synchronous_commit on, as in production), removed on exit."""
        candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        initdb = str(candidates[-1]) if candidates else shutil.which("initdb")
        if not initdb:
            raise BenchError("--postgres: no initdb (apt-get install -y postgresql)")
        bindir = Path(initdb).parent
        pgdir = Path(tempfile.mkdtemp(prefix="aegis-bench-pg-"))
        self.pg = {"dir": pgdir, "bindir": bindir, "as_user": []}
        as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            shutil.chown(pgdir, "postgres", "postgres")
            as_user = ["runuser", "-u", "postgres", "--"]
        port = free_port()
        self.pg["as_user"] = as_user

        def pg(*cmd: str) -> None:
            result = subprocess.run([*as_user, *cmd], capture_output=True, text=True)
            if result.returncode != 0:
                raise BenchError(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")

        log(f"PostgreSQL: initdb in {pgdir}, port {port}")
        pg(str(bindir / "initdb"), "-D", str(pgdir / "data"), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        pg(str(bindir / "pg_ctl"), "-D", str(pgdir / "data"), "-l", str(pgdir / "server.log"), "-w", "-o",
           f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={pgdir} -c max_connections=100"
           + (" -c synchronous_commit=off" if self.args.pg_async_commit else ""),
           "start")
        self.pg["running"] = True
        pg(str(bindir / "createdb"), "-h", HOST, "-p", str(port), "-U", "postgres", "aegis_bench")
        return f"postgres://postgres@{HOST}:{port}/aegis_bench"

    def stop_postgres(self) -> None:
        if not self.pg:
            return
        if self.pg.get("running"):
            subprocess.run([*self.pg["as_user"], str(self.pg["bindir"] / "pg_ctl"), "-D", str(self.pg["dir"] / "data"),
                            "-m", "fast", "-w", "stop"], capture_output=True)
        if self.args.keep:
            log(f"kept {self.pg['dir']} (PostgreSQL data and server.log)")
        else:
            shutil.rmtree(self.pg["dir"], ignore_errors=True)
        self.pg = None

    def prepare(self) -> None:
        (self.tmp / "bench_settings.py").write_text(BENCH_SETTINGS)
        (self.tmp / "bench_urls.py").write_text(BENCH_URLS)
        (self.tmp / "bench_wsgi.py").write_text(BENCH_WSGI)
        (self.tmp / "sitecustomize.py").write_text(BENCH_SITECUSTOMIZE)
        (self.tmp / "evaluate.json").write_text(json.dumps(OUTCOME_BODIES[self.args.outcome]))
        log(f"temp dir {self.tmp}; migrating {self.env['DATABASE_URL']}")
        run_manage(self.src, self.env, "migrate", "--no-input")
        run_manage(self.src, self.env, "shell", "-c", SETUP_TIER)
        created = json.loads(run_manage(self.src, self.env, "aegis_tenant", "create", "Bench", "--tier", "bench",
                                        "--json"))
        self.key = created["key"]

    def start_server(self) -> None:
        a = self.args
        cmd = [str(Path(PYTHON).with_name("gunicorn")), "bench_wsgi:application",
               "--bind", f"{HOST}:{self.port}", "--workers", str(a.workers),
               "--worker-class", a.worker_class, "--chdir", str(self.src),
               "--error-logfile", str(self.tmp / "gunicorn.log"), "--log-level", "warning",
               "--backlog", "2048", "--timeout", "60"]
        if a.worker_class == "gthread":
            cmd += ["--threads", str(a.threads)]
        log(f"gunicorn: {a.workers} workers, {a.worker_class}"
            + (f" ×{a.threads} threads" if a.worker_class == "gthread" else "") + f", {HOST}:{self.port}")
        self.server = subprocess.Popen(cmd, cwd=self.src, env=self.env, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       start_new_session=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.server.poll() is not None:
                raise BenchError("gunicorn exited:\n" + self.gunicorn_log())
            try:
                with urllib.request.urlopen(f"http://{HOST}:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        raise BenchError("gunicorn did not answer /health within 30 s:\n" + self.gunicorn_log())

    def gunicorn_log(self) -> str:
        path = self.tmp / "gunicorn.log"
        return path.read_text()[-4000:] if path.exists() else ""

    def targets(self) -> list[Target]:
        common = {"Host": HOST, "User-Agent": "aegis-bench", "Accept": "application/json"}
        keyed = {**common, "Authorization": f"Bearer {self.key}", "Content-Type": "application/json",
                 "X-AEGIS-Client": "python-sdk"}
        body = json.dumps(OUTCOME_BODIES[self.args.outcome]).encode()
        idem = not self.args.no_idempotency_key
        targets = [Target("trivial", "GET", "/bench/trivial", common, None, False),
                   Target("evaluate", "POST", "/evaluate", keyed, body, idem)]
        return targets

    def smoke(self, target: Target) -> None:
        headers = dict(target.headers)
        if target.idempotency:
            headers["Idempotency-Key"] = secrets.token_hex(16)
        req = urllib.request.Request(f"http://{HOST}:{self.port}{target.path}", data=target.body,
                                     headers=headers, method=target.method)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                answer = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            raise BenchError(f"{target.method} {target.path} → {exc.code}: {exc.read()[:500]!r}") from None
        if target.name == "evaluate" and answer.get("status") != self.args.outcome:
            raise BenchError(f"--outcome {self.args.outcome}: the first /evaluate answered status "
                             f"{answer.get('status')!r}, not {self.args.outcome!r}: {json.dumps(answer)[:500]}")

    # load

    def load(self) -> dict[str, list[dict]]:
        a = self.args
        gen_cls = Wrk if (shutil.which("wrk") and a.generator != "python") else PyGen
        if a.generator == "wrk" and gen_cls is not Wrk:
            raise BenchError("--generator wrk: wrk is not installed (apt-get install -y wrk)")
        self.generator = gen_cls(self.tmp, self.port, a.concurrency)
        targets = self.targets()
        for target in targets:
            self.smoke(target)
        log(f"load generator: {self.generator.name}; concurrency {a.concurrency}; "
            f"{a.rounds} rounds × {a.seconds} s per endpoint after {a.warmup} s warm-up each")
        for target in targets:
            r = self.generator.run(target, a.warmup)
            time.sleep(DRAIN_SECONDS)
            log(f"warm-up {target.name:<8} {r['rps']:8.0f} req/s")
        results: dict[str, list[dict]] = {target.name: [] for target in targets}
        for n in range(a.rounds):
            for target in targets:
                r = self.generator.run(target, a.seconds)
                time.sleep(DRAIN_SECONDS)
                results[target.name].append(r)
                log(f"round {n + 1} {target.name:<8} {r['rps']:8.0f} req/s  p50 {r['p50']:6.2f} ms  "
                    f"p99 {r['p99']:6.2f} ms  non-2xx {r['non2xx']}  socket errors {r['socket_errors']}")
        return results

    def stop_server(self) -> None:
        if self.server is None:
            return
        if self.server.poll() is None:
            try:
                self.server.terminate()  # the master stops its workers
                self.server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, signal.SIGKILL)  # its own session: master + workers
                self.server.wait()
        self.server = None

    def profile(self) -> dict:
        script = self.tmp / "profile_evaluate.py"
        script.write_text(PROFILE_SCRIPT)
        result = subprocess.run([PYTHON, str(script), self.key, str(self.tmp / "evaluate.json"),
                                 str(self.args.profile_requests), "1" if self.args.profile else "0", self.args.outcome],
                                cwd=self.src, env=self.env, capture_output=True, text=True)
        line = next((ln for ln in result.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
        if result.returncode != 0 or line is None:
            raise BenchError(f"profiling failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return json.loads(line[len("BENCHJSON "):])

    def source_label(self) -> str:
        def git(*cmd):
            return subprocess.run(["git", "-C", str(REPO), *cmd], capture_output=True, text=True).stdout.strip()
        if self.args.git_ref:
            return f"git archive of {self.args.git_ref} ({git('rev-parse', '--short', self.args.git_ref)})"
        dirty = " + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else ""
        return f"working tree {REPO} (HEAD {git('rev-parse', '--short', 'HEAD')}{dirty})"

    def cleanup(self) -> None:
        if self.generator is not None:
            self.generator.stop()
        self.stop_server()
        self.stop_postgres()
        if self.args.keep:
            log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def report(args, bench: Bench, results: dict[str, list[dict]], info: dict | None) -> None:
    med = {name: {k: statistics.median(r[k] for r in rows) for k in ("rps", "p50", "p99")}
           for name, rows in results.items()}
    ratio = med["evaluate"]["rps"] / med["trivial"]["rps"]
    ratio_ok = ratio >= TARGET_RATIO
    p99_ok = med["evaluate"]["p99"] <= TARGET_P99_MS
    total = {name: (sum(r["requests"] for r in rows), sum(r["non2xx"] for r in rows),
                    sum(r["socket_errors"] for r in rows)) for name, rows in results.items()}
    worker = args.worker_class + (f" ×{args.threads} threads" if args.worker_class == "gthread" else "")
    db = ("PostgreSQL (throwaway cluster" + (", synchronous_commit=off)" if args.pg_async_commit else ")")
          if args.postgres else "SQLite (temp file)" if not args.database_url
          else urlsplit(args.database_url).scheme)
    print()
    print(f"AEGIS HTTP benchmark — gunicorn {args.workers} workers ({worker}), {db}, "
          f"conn_max_age={args.conn_max_age if args.conn_max_age is not None else 'default (0)'}"
          + (", SQLite WAL (experiment)" if args.sqlite_wal else ""))
    print(f"code: {bench.source_label()}")
    print(f"outcome: {args.outcome} (the status every /evaluate answers"
          + ("; code from issue 11 on also opens its review workflow)" if args.outcome != "proceed" else ")"))
    print(f"generator {bench.generator.name}, concurrency {args.concurrency}, "
          f"{args.rounds} alternating rounds × {args.seconds} s, medians; "
          f"Idempotency-Key per /evaluate request: {'no' if args.no_idempotency_key else 'yes (unique)'}")
    print()
    print(f"{'endpoint':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}   rounds (req/s)")
    labels = {"trivial": "GET /bench/trivial", "evaluate": "POST /evaluate"}
    for name, label in labels.items():
        m = med[name]
        rounds = ", ".join(f"{r['rps']:.0f}" for r in results[name])
        print(f"{label:<22}{m['rps']:>10.0f}{m['p50']:>10.2f}{m['p99']:>10.2f}   {rounds}")
    print()
    print(f"evaluate/trivial throughput: {ratio:.1%} (target ≥ {TARGET_RATIO:.0%}) "
          f"{'MET' if ratio_ok else 'NOT MET'}")
    print(f"/evaluate p99: {med['evaluate']['p99']:.2f} ms (target ≤ {TARGET_P99_MS:.0f} ms) "
          f"{'MET' if p99_ok else 'NOT MET'}")
    for name, (n, bad, errs) in total.items():
        if bad or errs:
            print(f"WARNING: {name}: {bad} non-2xx responses and {errs} socket errors of {n} requests "
                  "— the numbers above include them")
    if info:
        q = info["with_idempotency_key"]
        print()
        print(f"SQL per /evaluate (test client, same settings): {len(q)} with an Idempotency-Key, "
              f"{len(info['without_idempotency_key'])} without")
        for sql in q:
            print("   ", sql[:150])
        print(f"in-process service time (Django test client, no HTTP): /evaluate {info['ms_evaluate']:.2f} ms "
              f"({info['ms_evaluate_no_idem']:.2f} ms without Idempotency-Key), trivial {info['ms_trivial']:.3f} ms")
        print(f"disk: a 4 KiB write + fsync in the temp dir takes {info['fsync_ms']:.2f} ms (median of 20)")
        b = info.get("breakdown")
        if b:
            print()
            print(f"where one /evaluate's {b['wall_ms']:.2f} ms go (test client, {b['requests']} requests, "
                  "inclusive wall time per request; SQL time = inside cursor.execute):")
            print(f"    {'stage':<34}{'ms':>8}{'queries':>9}")
            for label, (ms, queries, calls) in b["stages"].items():
                print(f"    {label:<34}{ms:>8.2f}{queries:>9.1f}")
            print(f"    {'SQL execution, all queries':<34}{b['sql_ms']:>8.2f}{b['queries']:>9.1f}")
            print(f"    {'COMMITs (journal fsync)':<34}{b['commit_ms']:>8.2f}{b['commits']:>9.1f}")
            rest = b["wall_ms"] - b["sql_ms"] - b["commit_ms"]
            print(f"    {'Python (ORM, DRF, Django, engine)':<34}{rest:>8.2f}")
        if info.get("profile_groups"):
            print()
            print("cProfile self time per /evaluate by package (cProfile inflates Python-heavy code):")
            for group, ms, share in info["profile_groups"]:
                print(f"    {group:<58}{ms:>7.2f} ms {share:>6.1%}")
        if info.get("profile"):
            print()
            print(info["profile"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="per measured run (default 10)")
    parser.add_argument("--concurrency", type=int, default=4, help="open connections (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per endpoint (default 3)")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up seconds per endpoint (default 3)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", choices=["sync", "gthread"], default="gthread",
                        help="gthread (default) keeps connections alive and beat sync on both endpoints here")
    parser.add_argument("--threads", type=int, default=2, help="threads per gthread worker (default 2)")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--database-url", help="e.g. postgres://u:p@127.0.0.1/aegis_bench (a THROWAWAY "
                        "database: it is migrated and gets a tier, a tenant and decisions)")
    parser.add_argument("--postgres", action="store_true",
                        help="run on a throwaway PostgreSQL cluster (initdb in a temp dir, 127.0.0.1)")
    parser.add_argument("--pg-async-commit", action="store_true",
                        help="experiment, with --postgres: synchronous_commit=off (COMMIT does not wait for fsync)")
    parser.add_argument("--conn-max-age", type=int, help="DATABASE_CONN_MAX_AGE (default: the app's, 0)")
    parser.add_argument("--sqlite-wal", action="store_true",
                        help="experiment: SQLite journal_mode=WAL, synchronous=NORMAL (bench settings only)")
    parser.add_argument("--outcome", choices=sorted(OUTCOME_BODIES), default="proceed",
                        help="the decision /evaluate's body gets (default proceed; halt and pause open a review "
                        "workflow)")
    parser.add_argument("--no-idempotency-key", action="store_true", help="send /evaluate without Idempotency-Key")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of /evaluate (test client)")
    parser.add_argument("--profile-requests", type=int, default=150)
    parser.add_argument("--git-ref", help="benchmark a clean `git archive` export of this commit (e.g. HEAD) "
                        "instead of the working tree")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args(argv)
    if args.pg_async_commit and not args.postgres:
        parser.error("--pg-async-commit needs --postgres")
    if args.postgres and args.database_url:
        parser.error("--postgres and --database-url exclude each other")
    if args.concurrency < 1 or args.seconds <= 0 or args.rounds < 1:
        parser.error("--concurrency, --seconds and --rounds must be positive")

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGHUP, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    bench = None
    started = time.monotonic()
    try:
        bench = Bench(args)
        bench.configure()
        bench.prepare()
        bench.start_server()
        results = bench.load()
        bench.stop_server()  # the profile gets both cores to itself
        info = bench.profile()
        info["fsync_ms"] = fsync_latency_ms(bench.tmp)
        foreign = [f for f in [info["governance_path"], *info["project_modules"]]
                   if f and not Path(f).resolve().is_relative_to(bench.src.resolve())]
        if foreign:
            raise BenchError(f"imported project modules from outside {bench.src}: {', '.join(foreign[:5])}")
        report(args, bench, results, info)
        print(f"\n(total run time {time.monotonic() - started:.0f} s)")
        return 0
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    except BenchError as exc:
        log(f"error: {exc}")
        return 1
    finally:
        if bench is not None:
            bench.cleanup()


if __name__ == "__main__":
    sys.exit(main())
