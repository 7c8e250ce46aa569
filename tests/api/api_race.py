"""N threads POST /evaluate with one Idempotency-Key at the same moment, each on its own
Django test client and database connection.

Imported by test_idempotency.py (PostgreSQL, or SQLite on a file) and run as a script by it
when the test database is SQLite in memory: there every connection shares one cache whose
table locks fail at once ("database table is locked") instead of waiting out the busy
timeout as a real SQLite file does, so the race is run against a migrated SQLite file in a
subprocess instead:

    DATABASE_URL=sqlite:////tmp/x.sqlite3 python tests/api/api_race.py THREADS
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

KEY = "race-0001"


def race(plaintext: str, threads: int, body: dict, *, path: str = "/evaluate",
         headers: dict[str, str] | None = None) -> list[tuple]:
    """[(status, json body, X-AEGIS-Idempotent-Replayed) or ("exception", repr)] for each
    thread, each POSTing `body` to
    `path` with `headers` (by default the Idempotency-Key KEY)."""
    headers = {"Idempotency-Key": KEY} if headers is None else headers
    from api_support import ApiClient
    from django.db import connection

    barrier = threading.Barrier(threads)
    results: list = [None] * threads

    def post(index: int) -> None:
        try:
            client = ApiClient(plaintext)
            barrier.wait(timeout=10)
            response = client.post(path, body, headers=headers)
            results[index] = (response.status_code, response.json(), response.get("X-AEGIS-Idempotent-Replayed"))
        except Exception as exc:  # reported to the test, which fails on it
            results[index] = ("exception", repr(exc))
        finally:
            connection.close()

    workers = [threading.Thread(target=post, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    return results


def outcome(plaintext: str, customer, threads: int, body: dict) -> dict:
    from governance.models import Decision, UsageCounter

    results = race(plaintext, threads, body)
    return {
        "results": results,
        "decision_ids": [str(d) for d in Decision.objects.filter(customer=customer)
                         .values_list("decision_id", flat=True)],
        "evaluations_counted": sum(UsageCounter.objects.filter(customer=customer, kind="evaluation", channel=UsageCounter.ALL_CHANNELS)
                                   .values_list("count", flat=True)),
    }


def setup_script_database() -> None:
    """Django set up for a race run as a script: the project and tests/api importable, the
    test settings, and DATABASE_URL's database migrated."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis_site.test_settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    setup_test_environment()  # allows the test client's host, "testserver"
    call_command("migrate", verbosity=0)


def main() -> None:
    setup_script_database()
    from api_support import EXAMPLE_A

    from governance import services
    from governance.models import Tier

    customer, _, plaintext = services.create_customer("Race", tier=Tier.objects.get(name="team"))
    print(json.dumps(outcome(plaintext, customer, int(sys.argv[1]), EXAMPLE_A)))


if __name__ == "__main__":
    main()
