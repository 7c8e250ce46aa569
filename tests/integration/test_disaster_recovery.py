"""Disaster recovery onto a new server (docs/upgrade.md), run as written.

The test database is the old server. Its work is done the way its users do it (the official
client evaluates, risk leads propose, approve and apply a recalibration, the operator edits
a tier and a schedule, decisions are sealed); its backup is restored into a freshly
migrated, empty database of each kind by the commands of docs/upgrade.md's block, each run
as a new server's operator runs it. Afterwards every chain and the ledger verify, the
official client reads the same decisions from the new server, people keep their user ids
(four eyes still knows who proposed), and new work continues the chains.

PostgreSQL as the new server needs a server to create a database in: the test database's
own on the PostgreSQL run, or AEGIS_TEST_POSTGRES_URL (.ci/run sets it for the SQLite
run), so both directions run in CI.
"""

from __future__ import annotations

import dataclasses
from datetime import date
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from aegis import Aegis
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django_celery_beat.models import PeriodicTask

from calibration import services as calibration
from governance import services
from governance import drift
from governance.models import DriftReport, Tier
from governance.sealing import seal_decisions
from workflows.roles import ROLE_GROUPS, Role
from workflows.services import actor_for
from process_support import answers, free_port, start_gunicorn, stop, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "upgrade.md"
HALTING = {"proposal_summary": "Switch the ranking model to the new candidate", "novelty_score": 0.9}


def documented_commands() -> list[list[str]]:
    """The `python manage.py …` lines of the disaster-recovery block, in order."""
    section = DOC.read_text(encoding="utf-8").split("## Disaster recovery onto a new server", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [shlex.split(line) for line in block.splitlines() if line.startswith("python manage.py")]


def postgres_server() -> str | None:
    """A PostgreSQL server URL (its `postgres` database) to create the new server's database in."""
    if connection.vendor == "postgresql":
        db = connection.settings_dict
        return f"postgresql://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST']}:{db['PORT']}/postgres"
    return os.environ.get("AEGIS_TEST_POSTGRES_URL") or None


@pytest.fixture
def new_server_database(request, tmp_path):
    """DATABASE_URL of an empty database of the kind asked for, dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'new-server.sqlite3'}"
        return
    server = postgres_server()
    if server is None:
        pytest.skip("no PostgreSQL server here: the PostgreSQL run covers this direction "
                    "(or set AEGIS_TEST_POSTGRES_URL=postgresql://user@host:port/postgres)")
    name = f"aegis_recovery_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield server.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def old_server_work(client: Aegis, customer) -> dict:
    """What the old server's users did, returning what the new one must give back."""
    User = get_user_model()
    risk_leads = Group.objects.get(name=ROLE_GROUPS[Role.RISK_LEAD])
    alice, bob = (User.objects.create_user(name, password=f"{name}-recovery-passphrase", is_staff=True)
                  for name in ("alice", "bob"))
    for person in (alice, bob):
        person.groups.add(risk_leads)
    team = Tier.objects.get(name="team")
    team.rate_per_minute = 700  # the operator raised the team tier's limit
    team.save()
    backup_schedule = PeriodicTask.objects.get(name="Daily backup")
    backup_schedule.enabled = False  # and moved backups to a schedule of their own
    backup_schedule.save()

    made = [client.evaluate(proposal_summary="Add Redis caching layer to reduce API latency"),
            client.evaluate(**HALTING)]
    applied = calibration.propose("novelty_threshold", 0.85, "Novel proposals are halted too often",
                                  actor=actor_for(alice))
    calibration.approve(applied.proposal_id, actor=actor_for(bob), comment="Checked against last quarter")
    calibration.apply(applied.proposal_id, actor=actor_for(bob))
    in_review = calibration.propose("quality_min_score", 0.75, "Quality floor for the new models",
                                    actor=actor_for(alice))
    assert seal_decisions() >= 1
    baseline = drift.set_baseline(customer, [0.02 + i / 1000 for i in range(60)], actor=actor_for(alice),
                                  source="risk-baseline.csv")
    DriftReport.objects.create(customer=customer, day=date(2026, 11, 30), baseline=baseline, kl_divergence=0.04,
                               status="normal", action="none", message="Within the warning threshold", n_current=80,
                               n_baseline=60, tau_warning=0.3, tau_critical=0.5, config_version=2)
    return {"decisions": {d.decision_id: as_read(client, d.decision_id) for d in made},
            "accounts": {u.username: u.pk for u in User.objects.all()},
            "in_review": str(in_review.proposal_id), "alice": alice.pk, "bob": bob.pk,
            "drift": [[baseline.pk, 60, ["2026-11-30"]]]}


def as_read(client: Aegis, decision_id: str) -> dict:
    """A decision as the official client returns it, less the id of the request that read it."""
    read = dataclasses.asdict(client.get_decision(decision_id))
    assert read.pop("request_id")
    return read


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


NEW_SERVER_CHECKS = """
import json
from django.contrib.auth import get_user_model
from django_celery_beat.models import PeriodicTask
from calibration import services
from calibration.versions import active_config
from governance.models import DriftBaseline, Tier
from workflows.services import actor_for
User = get_user_model()
proposal = services.get_proposal({in_review!r})
refusal = None
try:
    services.approve(proposal.proposal_id, actor=actor_for(User.objects.get(pk={alice})), comment="mine")
except Exception as exc:
    refusal = str(exc)
services.approve(proposal.proposal_id, actor=actor_for(User.objects.get(pk={bob})), comment="Reviewed")
applied = services.apply(proposal.proposal_id, actor=actor_for(User.objects.get(pk={bob})))
print(json.dumps({{
    "accounts": {{u.username: u.pk for u in User.objects.all()}},
    "alice_password": User.objects.get(username="alice").check_password("alice-recovery-passphrase"),
    "alice_groups": sorted(User.objects.get(username="alice").groups.values_list("name", flat=True)),
    "own_approval_refused": refusal, "applied": applied.version, "served": active_config()[0],
    "team_rate": Tier.objects.get(name="team").rate_per_minute,
    "backup_schedule_enabled": PeriodicTask.objects.get(name="Daily backup").enabled,
    "drift": [[b.pk, len(b.values), [str(r.day) for r in b.reports.all()]] for b in DriftBaseline.objects.all()],
}}))
"""


@pytest.mark.parametrize("new_server_database", ["sqlite", "postgresql"], indirect=True)
def test_a_backup_restores_onto_a_new_server_as_documented(plain_http_live_server, new_server_database, tmp_path,
                                                          monkeypatch):
    monkeypatch.delenv("AEGIS_BASE_URL", raising=False)
    customer, _key, plaintext = services.create_customer("Recovery Corp", tier=Tier.objects.get(name="team"))
    with Aegis(api_key=plaintext, base_url=plain_http_live_server.url, max_retries=0, timeout=10.0) as old_client:
        before = old_server_work(old_client, customer)
    backup = tmp_path / "aegis-backup.json.gz"
    call_command("aegis_backup", output=str(backup), stdout=open(os.devnull, "w"))

    # The new server: same keys (inherited from this process), its own database and anchors.
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "AEGIS_ANCHOR_DIR"}}
    env.update(DATABASE_URL=new_server_database, AEGIS_ANCHOR_DIR=str(tmp_path / "new-anchors"),
               SECURE_SSL_REDIRECT="0", TMPDIR=str(tmp_path))
    steps = documented_commands()
    assert [step[2] for step in steps] == ["migrate", "aegis_restore", "aegis_verify_chain"]
    for step in steps:
        result = manage(env, *[str(backup) if word == "$BACKUP_FILE" else word for word in step[2:]])
        assert result.returncode == 0, f"{shlex.join(step)}:\n{result.stdout}{result.stderr}"
        if step[2] == "aegis_verify_chain":
            assert ", 0 broken" in result.stdout and "anchored at entry" in result.stdout, result.stdout
            assert "0 rejected" in result.stdout and "v2 served" in result.stdout, result.stdout

    # The official client reads the same decisions from the new server.
    port = free_port()
    server = start_gunicorn(env, tmp_path / "new-server.log", workers=1, port=port)
    try:
        wait_for(lambda: answers(port) or server.poll() is not None, 60, "the new server to answer")
        assert server.poll() is None, (tmp_path / "new-server.log").read_text()
        with Aegis(api_key=plaintext, base_url=f"http://127.0.0.1:{port}", max_retries=0, timeout=10.0) as client:
            after = {decision_id: as_read(client, decision_id) for decision_id in before["decisions"]}
            assert after == before["decisions"]
            continued = client.evaluate(**HALTING)  # new work: a decision and its review workflow
            assert continued.status == "halt"
    finally:
        stop(server)

    # People keep their ids, passwords and roles; the operator's tier and schedule are back;
    # the proposal in review still knows alice proposed it.
    checked = manage(env, "shell", "-c", NEW_SERVER_CHECKS.format(**before))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    state = json.loads(checked.stdout.strip().splitlines()[-1])
    assert state["accounts"] == before["accounts"]
    assert state["alice_password"] is True and state["alice_groups"] == [ROLE_GROUPS[Role.RISK_LEAD]]
    assert state["own_approval_refused"] and "propos" in state["own_approval_refused"].lower()
    assert state["applied"] == 3 and state["served"] == 3
    assert state["team_rate"] == 700 and state["backup_schedule_enabled"] is False
    assert state["drift"] == before["drift"]  # the tenant's baseline under its id, with its report

    # Everything done on the new server continues the chains and the ledger.
    final = manage(env, "aegis_seal_decisions")
    assert final.returncode == 0, final.stdout + final.stderr
    verified = manage(env, "aegis_verify_chain", "--all")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "3 configuration version(s) checked, v3 served, 0 rejected." in verified.stdout
    lines = verified.stdout.splitlines()
    # Two reviews (one made on the new server) and two calibrations (one approved there): the
    # two untouched since the documented verification sealed them are accepted by their seals.
    assert lines[1] == "4 workflow(s) checked, 0 broken (2 unchanged since an earlier run verified and sealed them)."
    assert lines[2].startswith("3 decision(s) checked in 2 seal block(s)") and lines[2].endswith("0 unsealed, 0 broken.")
    assert re.fullmatch(r"(\d+) ledger entries checked against \1 stored object\(s\), head \1: 0 broken; anchored .*",
                        lines[-1]), lines[-1]
