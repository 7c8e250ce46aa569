"""HTTP benchmark: `.venv/bin/python bench/api.py` (about 4 minutes).

Serves AEGIS with gunicorn as shipped (`aegis_site/gunicorn.conf.py`: 2 sync workers,
multiprocess metrics; 127.0.0.1, a free port) first on
a throwaway SQLite file, then on a throwaway PostgreSQL 15 cluster (initdb in a temp dir,
default durability: fsync and synchronous_commit on), and on each drives, at concurrency 4
and then 16, `POST /evaluate` (a tenant on an unthrottled bench tier, the body the official
client sends, `Authorization: Bearer`, a fresh Idempotency-Key per request) and a trivial
DRF JSON endpoint (`GET /bench/trivial` → {"ok": true}: no auth, no database) alternately,
3 rounds each after a warm-up, so the ratio evaluate/trivial holds on a noisy machine.
Prints one table of median req/s, p50 and p99 against the targets

    /evaluate ≥ 40 % of the trivial endpoint's throughput,
    /evaluate p99 ≤ 50 ms at concurrency 4 and ≤ 150 ms at concurrency 16,

then per database (Django test client, same settings and database, server stopped) the
SQL one /evaluate makes, its in-process service time, the fsync latency of the temp dir's
disk and where its time goes by stage (bench/api_inprocess.py); --profile adds a cProfile.

Production code is not touched: the trivial endpoint lives in a settings + URLconf module
written to the temp dir at run time (it includes `aegis_site.urls` unchanged). Load
generator: `wrk` (Debian package `wrk`) when installed, else a Python one (bench/loadgen.py).
Everything listens on and talks to 127.0.0.1 only; temp dir, gunicorn and PostgreSQL are
removed on exit, Ctrl-C and SIGTERM included.

Options:
  --databases sqlite,postgres   which databases, in this order (default both)
  --concurrency 4,16            open connections, one measurement each (default 4,16)
  --outcome O                   the decision /evaluate's body gets: proceed (default, the
                                client's defaults), halt (novelty_score 0.9) or pause
                                (estimated_impact high); halt and pause also open a review
                                workflow (see OUTCOME_BODIES)
  --git-ref REF                 benchmark a `git archive` export of REF, not the working tree
                                (this script, that commit's app; see BENCH_SITECUSTOMIZE)
  --worker-class, --threads, --workers, --rounds, --seconds, --warmup, --no-idempotency-key,
  --profile, --keep

Exit status 0 whether or not the targets are met (1 only if the benchmark itself could
not run, 130 when interrupted).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from api_report import Run, print_report
from loadgen import HOST, BenchError, PyGen, Target, Wrk, log

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

# Between runs, so requests still in flight when the generator stops (at most
# --concurrency of them) finish before the next endpoint is measured.
DRAIN_SECONDS = 1.0

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
from aegis_site.settings import *  # noqa: F401,F403

ROOT_URLCONF = "bench_urls"
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

# --- helpers ----------------------------------------------------------------------------

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


# --- the run ----------------------------------------------------------------------------

class Bench:
    """One database's part of the run: its own temp dir, database, tenant and server."""

    def __init__(self, args, database: str):
        self.args = args
        self.database = database  # "sqlite" or "postgres"
        self.tmp = Path(tempfile.mkdtemp(prefix=f"aegis-bench-{database}-"))
        self.server: subprocess.Popen | None = None
        self.generator = None
        self.port = free_port()
        self.pg: dict | None = None
        self.src = REPO
        self.env: dict[str, str] = {}
        self.key = ""

    def configure(self) -> None:
        args = self.args
        if args.git_ref:
            # A clean export of one commit (the repo itself is only read): benchmarks that
            # commit even while the working tree is mid-edit, and allows before/after runs.
            self.src = self.tmp / "src"
            self.src.mkdir()
            archive = subprocess.run(["git", "-C", str(REPO), "archive", args.git_ref], capture_output=True)
            if archive.returncode != 0:
                raise BenchError(f"git archive {args.git_ref}: {archive.stderr.decode()}")
            subprocess.run(["tar", "-x", "-C", str(self.src)], input=archive.stdout, check=True)
        db_url = self.start_postgres() if self.database == "postgres" else f"sqlite:///{self.tmp / 'db.sqlite3'}"
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

    # setup

    def start_postgres(self) -> str:
        """A throwaway PostgreSQL cluster on 127.0.0.1 (default durability: fsync and
        synchronous_commit on, as in production), removed on exit."""
        candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        initdb = str(candidates[-1]) if candidates else shutil.which("initdb")
        if not initdb:
            raise BenchError("PostgreSQL: no initdb (apt-get install -y postgresql, or --databases sqlite)")
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
           f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={pgdir} -c max_connections=100",
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
        # The shipped configuration (aegis_site/gunicorn.conf.py: multiprocess metrics), its
        # app, address and worker settings replaced on the command line.
        cmd = [str(Path(PYTHON).with_name("gunicorn")), "-c", str(self.src / "aegis_site" / "gunicorn.conf.py"),
               "bench_wsgi:application",
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

    def load(self, concurrency: int) -> dict[str, list[dict]]:
        """Warm-up, then `rounds` alternating measurements of both endpoints."""
        a = self.args
        gen_cls = Wrk if (shutil.which("wrk") and a.generator != "python") else PyGen
        if a.generator == "wrk" and gen_cls is not Wrk:
            raise BenchError("--generator wrk: wrk is not installed (apt-get install -y wrk)")
        self.generator = gen_cls(self.tmp, self.port, concurrency)
        targets = self.targets()
        for target in targets:
            self.smoke(target)
        log(f"{self.database}: load generator {self.generator.name}; concurrency {concurrency}; "
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
        # A copy beside the bench settings: run from bench/, its sibling modules (bench/
        # calibration.py, …) would shadow the project's apps.
        script = self.tmp / "profile_evaluate.py"
        shutil.copyfile(Path(__file__).with_name("api_inprocess.py"), script)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--databases", default="sqlite,postgres",
                        help="comma-separated, in order: sqlite, postgres (default both)")
    parser.add_argument("--concurrency", default="4,16", help="comma-separated open connections (default 4,16)")
    parser.add_argument("--seconds", type=float, default=10, help="per measured run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per endpoint (default 3)")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up seconds per endpoint (default 3)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", choices=["sync", "gthread"], default="sync",
                        help="sync (default: what aegis_site/gunicorn.conf.py ships) or gthread with --threads")
    parser.add_argument("--threads", type=int, default=2, help="threads per gthread worker (default 2)")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--outcome", choices=sorted(OUTCOME_BODIES), default="proceed",
                        help="the decision /evaluate's body gets (default proceed; halt and pause open a review "
                        "workflow)")
    parser.add_argument("--no-idempotency-key", action="store_true", help="send /evaluate without Idempotency-Key")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of /evaluate (test client)")
    parser.add_argument("--profile-requests", type=int, default=150)
    parser.add_argument("--git-ref", help="benchmark a clean `git archive` export of this commit (e.g. HEAD) "
                        "instead of the working tree")
    parser.add_argument("--keep", action="store_true", help="keep the temp dirs")
    args = parser.parse_args(argv)
    databases = [name.strip() for name in args.databases.split(",") if name.strip()]
    if not databases or set(databases) - {"sqlite", "postgres"}:
        parser.error("--databases: a comma-separated list of sqlite and postgres")
    try:
        concurrencies = [int(n) for n in args.concurrency.split(",")]
    except ValueError:
        parser.error("--concurrency: comma-separated positive integers, e.g. 4,16")
    if min(concurrencies) < 1 or args.seconds <= 0 or args.rounds < 1:
        parser.error("--concurrency, --seconds and --rounds must be positive")

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGHUP, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    started = time.monotonic()
    runs: list[Run] = []
    bench = None
    try:
        for database in databases:
            bench = Bench(args, database)
            bench.configure()
            bench.prepare()
            bench.start_server()
            loads = {c: bench.load(c) for c in concurrencies}
            generator = bench.generator.name
            bench.stop_server()  # the in-process part gets both cores to itself
            info = bench.profile()
            info["fsync_ms"] = fsync_latency_ms(bench.tmp)
            foreign = [f for f in [info["governance_path"], *info["project_modules"]]
                       if f and not Path(f).resolve().is_relative_to(bench.src.resolve())]
            if foreign:
                raise BenchError(f"imported project modules from outside {bench.src}: {', '.join(foreign[:5])}")
            runs.append(Run(database, loads, info, generator, bench.source_label()))
            bench.cleanup()
            bench = None
        print_report(args, runs)
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
