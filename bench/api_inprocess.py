"""bench/api.py's in-process part, run in its own process with the bench settings (server
stopped): the SQL one /evaluate makes, its service time without HTTP, where its time goes
by stage and, with profiling asked for, a cProfile. Prints one line `BENCHJSON {...}`.

Arguments: API key, body file, profiled requests, "1" to profile, expected outcome.
"""
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
wrap("  evaluate_proposal (service)", "governance.services", "evaluate_proposal")
wrap("    _enforce_monthly_quota (before issue 12)", "governance.services", "_enforce_monthly_quota")
wrap("    _decide (config + engine)", "governance.services", "_decide")
wrap("      active_config", "governance.services", "active_config")
wrap("      pcw_decide", "governance.services", "pcw_decide")
wrap("  count_evaluation (count + quota)", "governance.services", "count_evaluation")
wrap("    _count_call", "governance.services", "_count_call")
wrap("    telemetry.emit (event INSERT)", "governance.services", "emit")
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
