"""Gunicorn settings: `gunicorn -c aegis_site/gunicorn.conf.py` (command-line options override these).

Why: every gunicorn worker is a process with its own Prometheus counters, so without
prometheus_client's multiprocess mode /metrics would report only the worker that happened
to answer. In that mode each process writes its samples to files in PROMETHEUS_MULTIPROC_DIR
and /metrics adds them up (governance/metrics.py). prometheus_client reads the variable once,
when it is first imported, so it must be set before the app is loaded (also with --preload)
and before workers fork: the master runs this file first, so it is set here, to a fresh
temporary directory unless given. A given one loses its sample files (*.db) on start, else
samples of an earlier run would be counted again. A dead worker's live gauges are dropped
in child_exit.
"""

import os
import shutil
import tempfile
from pathlib import Path

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
wsgi_app = "aegis_site.wsgi"

_OWNED = "AEGIS_GUNICORN_TEMP_METRICS_DIR"  # the directory this file created (removed on exit)
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ[_OWNED] = tempfile.mkdtemp(prefix="aegis-prometheus-")


def on_starting(server):
    # Not for a USR2 re-exec (master_pid set): the old master's workers still count there.
    if server.master_pid:
        return
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def child_exit(server, worker):
    from prometheus_client import multiprocess  # not at the top: the variable must be set first

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    # Not while a USR2 re-exec'ed master (reexec_pid) still uses the directory.
    if os.environ.get(_OWNED) and not server.reexec_pid:
        shutil.rmtree(os.environ[_OWNED], ignore_errors=True)
