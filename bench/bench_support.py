"""What the database benchmarks share: a throwaway Django set-up, medians, profiles."""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROFILE_LINES = 22


def setup_django(database_url: str | None, tmp: Path, **environment: str) -> None:
    """Production settings with DEBUG on, on `database_url` or a SQLite file in `tmp`,
    tasks in process, `environment` on top; then `migrate`."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "aegis_site.settings"
    os.environ["DATABASE_URL"] = database_url or f"sqlite:///{tmp / 'db.sqlite3'}"
    os.environ["DEBUG"] = "1"
    os.environ.pop("REDIS_URL", None)
    os.environ.update(environment)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def median_time(function, runs: int, before=None):
    """(median, min, max seconds, last result) of `runs` calls, `before()` untimed before each."""
    seconds, result = [], None
    for _ in range(runs):
        if before is not None:
            before()
        started = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), min(seconds), max(seconds), result


def profile(function, title: str, before=None) -> str:
    """The top of a cumulative cProfile of one call of `function`."""
    if before is not None:
        before()
    profiler = cProfile.Profile()
    profiler.enable()
    function()
    profiler.disable()
    buffer = io.StringIO()
    pstats.Stats(profiler, stream=buffer).sort_stats("cumulative").print_stats(PROFILE_LINES)
    body = [line for line in buffer.getvalue().splitlines() if line.strip()][:PROFILE_LINES + 8]
    return f"\n--- profile: {title} (cumulative) ---\n" + "\n".join(body)
