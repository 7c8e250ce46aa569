"""A key missing from FERNET_KEYS gives a clear 503 naming the cause, never ciphertext,
garbage or a bare 500 — on pages, the admin and the API alike."""

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

from governance.engine.inputs import parse_proposal
from workflows import services
from workflows.machines import Actor
from governance import services as governance_services

pytestmark = pytest.mark.django_db

OTHER_KEY = "a-key-that-wrote-nothing-here"


@pytest.fixture
def workflow():
    return governance_services.submit_proposal(parse_proposal({"proposal_summary": "secret plan", "agent_id": "agent-7"}),
                                    actor=Actor("nina"))


@pytest.fixture
def admin_client():
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-for-tests-only")
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("path", ["/workflows/{id}/", "/admin/workflows/workflowtransition/",
                                  "/admin/workflows/workflowinstance/{pk}/change/"])
def test_pages_answer_503_with_the_cause_when_no_key_decrypts(admin_client, workflow, path, caplog):
    url = path.format(id=workflow.workflow_id, pk=workflow.pk)
    assert admin_client.get(url, secure=True).status_code == 200  # readable with the right keys
    with override_settings(FERNET_KEYS=[OTHER_KEY]):
        response = admin_client.get(url, secure=True)
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "decryption_failed" and "FERNET_KEYS" in body["error"]
    assert b"gAAAAA" not in response.content and b"secret plan" not in response.content
    assert any("cannot decrypt" in record.getMessage() for record in caplog.records)
    assert all("secret plan" not in record.getMessage() for record in caplog.records)


def test_the_api_answers_503_with_the_cause(workflow):
    user = get_user_model().objects.create_user("nina", password="pw-for-tests-only")
    client = Client()
    client.force_login(user)
    url = f"/api/workflows/{workflow.workflow_id}"
    assert client.get(url, secure=True).status_code == 200
    with override_settings(FERNET_KEYS=[OTHER_KEY, "another-unrelated-key"]):
        response = client.get(url, secure=True)
    assert response.status_code == 503 and response.json()["code"] == "decryption_failed"


def test_reads_work_again_once_the_key_is_back_at_the_end_of_the_list(workflow):
    with override_settings(FERNET_KEYS=[OTHER_KEY, *settings.FERNET_KEYS]):
        transition = services.get_workflow(workflow.workflow_id).transitions.order_by("seq").first()
        assert transition.triggered_by == "nina"


def test_management_commands_end_with_the_clear_error_not_a_traceback(tmp_path):
    """`manage.py aegis_backup` (and every other command) run with keys that do not decrypt
    the database: exit 1 and one CommandError line naming the column."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "FERNET_KEYS"}}
    env.update(DEBUG="1", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")

    def manage(*args, keys):
        return subprocess.run([sys.executable, str(root / "manage.py"), *args], cwd=root, capture_output=True,
                              text=True, timeout=180, env={**env, "FERNET_KEYS": keys})

    assert manage("migrate", "--no-input", keys="key-that-wrote-it").returncode == 0
    refused = manage("aegis_backup", "--output", str(tmp_path / "backup.json.gz"), keys=OTHER_KEY)
    assert refused.returncode == 1
    assert refused.stderr.startswith("CommandError: cannot decrypt calibration.ConfigurationVersion.author")
    assert "Traceback" not in refused.stderr and "Exception ignored" not in refused.stderr
    assert manage("aegis_backup", "--output", str(tmp_path / "backup.json.gz"), keys="key-that-wrote-it").returncode == 0
