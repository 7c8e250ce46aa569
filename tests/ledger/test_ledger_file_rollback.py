"""The whole database put back to a file copy (SQLite, as a careless or hostile operator
would): the ledger in the copy is consistent in itself, and only the anchor outside the
database shows that entries are missing. Runs `manage.py` as an operator does, on a
database file of its own (any test run, SQLite or PostgreSQL)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SUBMIT = ("from governance import services; from governance.engine.inputs import parse_proposal; "
          "from workflows.machines import Actor; "
          "services.submit_proposal(parse_proposal({'proposal_summary': 'Raise the cap', 'novelty_score': 0.95}), "
          "actor=Actor('alice', roles=frozenset()))")


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def server(tmp_path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL"}}
    env.update(DEBUG="1", DATABASE_URL=f"sqlite:///{tmp_path / 'aegis.sqlite3'}", AEGIS_ANCHOR_DIR=str(tmp_path / "anchors"),
               AEGIS_ANCHOR_KEY="rollback-test-anchor-key-0123456789", SECRET_KEY="rollback-test-secret-" + "x" * 40)
    assert manage(env, "migrate", "--no-input").returncode == 0
    return env


def test_a_database_put_back_to_a_file_copy_is_reported_rolled_back(server, tmp_path):
    database = Path(server["DATABASE_URL"].removeprefix("sqlite:///"))
    assert manage(server, "shell", "-c", SUBMIT).returncode == 0
    first = manage(server, "aegis_verify_chain", "--all")
    assert first.returncode == 0, first.stdout + first.stderr
    shutil.copy(database, tmp_path / "copy.sqlite3")  # last night's file copy

    assert manage(server, "shell", "-c", SUBMIT).returncode == 0  # today's work
    second = manage(server, "aegis_verify_chain", "--all")
    assert second.returncode == 0 and "anchored at entry" in second.stdout
    anchored = int(second.stdout.split("anchored at entry ")[1].split()[0])

    shutil.copy(tmp_path / "copy.sqlite3", database)  # put back
    for leftover in (Path(f"{database}-wal"), Path(f"{database}-shm")):
        leftover.unlink(missing_ok=True)
    rolled_back = manage(server, "aegis_verify_chain", "--all")
    assert rolled_back.returncode == 1
    assert "0 broken" in rolled_back.stdout.split("workflow(s) checked")[1].splitlines()[0]  # the chains are fooled
    assert (f"BROKEN ledger entry {anchored}: rolled back: the ledger ends at entry "
            in rolled_back.stderr), rolled_back.stderr
    assert "1 ledger finding(s) failed verification" in rolled_back.stderr
