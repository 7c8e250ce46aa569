"""aegis_site.sqlite3: SQLite writers queue on the writer lock, never in SQLite's busy
handler, and a transaction holds the lock only from its first statement on.

Each case runs writers in separate processes on a throwaway file database whose busy
timeout is 0: any writer that found SQLite's own lock taken would fail at once with
"database is locked" instead of sleeping. Django's stock SQLite backend, run the same way,
is the control that shows the writers really do collide.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS, STOCK = "aegis_site.sqlite3", "django.db.backends.sqlite3"

WRITERS = r'''
import json, sys, threading, time
import django
from django.conf import settings

engine, path, threads, transactions, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
settings.configure(USE_TZ=True, DATABASES={"default": {
    "ENGINE": engine, "NAME": path,
    "OPTIONS": {"timeout": 0, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL",
                **({"writer_lock_timeout": 30} if engine == "aegis_site.sqlite3" else {})}}})
django.setup()
from django.db import connection, transaction

errors, durations = [], {}

def writer():
    try:
        for number in range(transactions):
            if number % 10 == 9:
                connection.close()  # opening and closing connections meets other writers too
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("INSERT INTO tally (n) VALUES (1)")
                    cursor.execute("UPDATE total SET n = n + 1")
            with connection.cursor() as cursor:  # a write outside any transaction
                cursor.execute("UPDATE total SET autocommit_writes = autocommit_writes + 1")
    except Exception as exc:
        errors.append(str(exc))
    finally:
        connection.close()

def slow_starter():
    with transaction.atomic():
        time.sleep(0.6)  # Python work before the transaction's first statement
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO tally (n) VALUES (1)")
    connection.close()

def quick_writer():
    time.sleep(0.1)
    started = time.monotonic()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO tally (n) VALUES (1)")
    durations["quick"] = time.monotonic() - started
    connection.close()

targets = [writer] * threads if mode == "load" else [slow_starter, quick_writer]
workers = [threading.Thread(target=target) for target in targets]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
print(json.dumps({"errors": errors, "durations": durations}))
'''


def make_database(path: Path) -> None:
    import sqlite3

    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE tally (id INTEGER PRIMARY KEY, n INTEGER)")
    db.execute("CREATE TABLE total (n INTEGER, autocommit_writes INTEGER)")
    db.execute("INSERT INTO total VALUES (0, 0)")
    db.commit()
    db.close()


def run_writers(tmp_path: Path, engine: str, *, processes: int, threads: int, transactions: int, mode: str):
    database = tmp_path / f"{engine.replace('.', '-')}-{mode}.sqlite3"
    make_database(database)
    script = tmp_path / "writers.py"
    script.write_text(WRITERS)
    running = [subprocess.Popen([sys.executable, str(script), engine, str(database), str(threads), str(transactions),
                                 mode], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(processes)]
    results = []
    for process in running:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    import sqlite3

    db = sqlite3.connect(database)
    total, autocommit_writes = db.execute("SELECT n, autocommit_writes FROM total").fetchone()
    rows = db.execute("SELECT count(*) FROM tally").fetchone()[0]
    db.close()
    return results, total, autocommit_writes, rows


@pytest.mark.parametrize("engine", [OURS, STOCK])
def test_concurrent_writers_of_two_processes_never_meet_the_busy_handler(tmp_path, engine):
    results, total, autocommit_writes, rows = run_writers(tmp_path, engine, processes=2, threads=3,
                                                          transactions=150, mode="load")
    errors = [error for result in results for error in result["errors"]]
    if engine == OURS:
        assert errors == []
        assert (total, autocommit_writes, rows) == (2 * 3 * 150,) * 3
    else:
        # The control: the same writers on the stock backend collide in SQLite itself.
        assert errors and all("database is locked" in error for error in errors)


@pytest.mark.parametrize("engine", [OURS, STOCK])
def test_a_transaction_holds_the_lock_from_its_first_statement(tmp_path, engine):
    results, _, _, rows = run_writers(tmp_path, engine, processes=1, threads=0, transactions=0, mode="lazy")
    [result] = results
    if engine == OURS:
        assert result["errors"] == [] and rows == 2
        # The quick writer did not wait for the slow one's Python work (0.6 s).
        assert result["durations"]["quick"] < 0.3, result
    else:
        # Stock BEGIN IMMEDIATE at atomic() entry: with no busy timeout the quick writer fails.
        assert "quick" not in result["durations"]
