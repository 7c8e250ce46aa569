"""Key rotation (`manage.py aegis_rotate_keys`): A → B, remove A, everything reads and every
chain verifies; an interrupted rotation resumes; append-only transitions stay closed to any
other change; a missing key stops it with a clear error."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.test import override_settings

from calibration import services as calibration_services
from governance.engine.inputs import parse_proposal
from governance.fields import DecryptionError
from governance.key_rotation import encrypted_tables, rotate_keys
from governance.models import TelemetryEvent
from workflows import services
from workflows.machines import Actor
from workflows.models import ReencryptionWindow
from workflows.persistence.durable import DurableWorkflowEngine
from workflows.persistence.models import WorkflowTransition
from workflows.roles import Role
from governance import services as governance_services

KEY_A = settings.FERNET_KEYS[0]  # the key the migrations wrote the first configuration version under
KEY_B = "rotation-test-key-B"
RISK = Actor("rotation_rita", id=None, roles=frozenset({Role.RISK_LEAD}))

pytestmark = pytest.mark.django_db


def populate() -> None:
    """Workflows (with an override's justification), a calibration proposal and the telemetry
    they emit, all written under whatever FERNET_KEYS is in force."""
    for summary, novelty in [("rotate me: routine", 0.1), ("rotate me: novel", 0.95), ("rotate me: third", 0.2)]:
        workflow = governance_services.submit_proposal(parse_proposal({"proposal_summary": summary, "novelty_score": novelty,
                                                            "agent_id": "agent-rotation"}), actor=RISK)
        if novelty > 0.9:
            services.request_override(workflow.workflow_id, actor=RISK, justification="Rotation test: business need")
    calibration_services.propose("epsilon_R", 0.02, "Rotation test justification", actor=RISK)


def every_value() -> dict[tuple[str, int, str], object]:
    """Every encrypted value of every row, read (decrypted) through the ORM."""
    values = {}
    for model, columns in encrypted_tables():
        for row in model.objects.values("pk", *(c.name for c in columns)):
            for column in columns:
                values[(model._meta.label, row["pk"], column.name)] = row[column.name]
    return values


def raw_tokens() -> dict[tuple[str, int, str], bytes]:
    tokens = {}
    with connection.cursor() as cursor:
        for model, columns in encrypted_tables():
            names = ", ".join(c.column for c in columns)
            cursor.execute(f"SELECT {model._meta.pk.column}, {names} FROM {model._meta.db_table}")
            for pk, *values in cursor.fetchall():
                for column, value in zip(columns, values):
                    if value is not None:
                        tokens[(model._meta.label, pk, column.name)] = bytes(value)
    return tokens


def all_chains_valid() -> bool:
    reports = list(DurableWorkflowEngine().verify_all())
    return bool(reports) and all(report.is_valid for report in reports)


def test_rotation_from_a_to_b_then_removing_a_keeps_everything_readable_and_verified():
    with override_settings(FERNET_KEYS=[KEY_A]):
        populate()
        before = every_value()
        tokens_before = raw_tokens()
        assert all_chains_valid()
    tables = {label for label, _, _ in before}
    assert {"workflows.WorkflowTransition", "workflows.WorkflowInstance", "workflows.WorkflowCheckpoint",
            "calibration.CalibrationProposal", "governance.TelemetryEvent"} <= tables

    with override_settings(FERNET_KEYS=[KEY_B, KEY_A]):
        assert rotate_keys(check_only=True).reencrypted == len(tokens_before)
        result = rotate_keys(batch_size=3)
        assert result.reencrypted == len(tokens_before)
        assert rotate_keys(check_only=True).reencrypted == 0

    with override_settings(FERNET_KEYS=[KEY_B]):
        after = every_value()
        assert {k: v for k, v in after.items() if k in before} == before
        assert all_chains_valid()
        tokens_after = raw_tokens()
        assert all(tokens_after[key] != token for key, token in tokens_before.items())
    with override_settings(FERNET_KEYS=[KEY_A]):
        with pytest.raises(DecryptionError):
            every_value()
    assert not ReencryptionWindow.objects.exists()


def test_an_interrupted_rotation_resumes_and_finishes():
    with override_settings(FERNET_KEYS=[KEY_A]):
        populate()
        before = every_value()
        total = len(raw_tokens())

    class Interrupted(Exception):
        pass

    batches = []

    def stop_after_two_batches(table):
        batches.append(table.rows)
        if len(batches) == 2:
            raise Interrupted

    with override_settings(FERNET_KEYS=[KEY_B, KEY_A]):
        with pytest.raises(Interrupted):
            rotate_keys(batch_size=2, on_batch=stop_after_two_batches)
        left = rotate_keys(check_only=True).reencrypted
        assert 0 < left < total  # the two committed batches stay rotated
    with override_settings(FERNET_KEYS=[KEY_B]):
        with pytest.raises(DecryptionError):  # not finished: A is still needed
            every_value()
    with override_settings(FERNET_KEYS=[KEY_B, KEY_A]):
        assert rotate_keys(batch_size=2).reencrypted == left
    with override_settings(FERNET_KEYS=[KEY_B]):
        assert {k: v for k, v in every_value().items() if k in before} == before
        assert all_chains_valid()


def test_a_value_no_key_decrypts_stops_the_command_with_a_clear_error():
    with override_settings(FERNET_KEYS=[KEY_A]):
        populate()
    with override_settings(FERNET_KEYS=[KEY_B]):
        with pytest.raises(CommandError) as error:
            call_command("aegis_rotate_keys")
    message = str(error.value)
    assert "cannot decrypt" in message and "FERNET_KEYS" in message and "run again" in message
    with override_settings(FERNET_KEYS=[KEY_A]):
        assert all_chains_valid()  # nothing was damaged


def test_the_command_reports_and_check_exits_non_zero_until_done(capsys):
    with override_settings(FERNET_KEYS=[KEY_A]):
        populate()
    with override_settings(FERNET_KEYS=[KEY_B, KEY_A]):
        with pytest.raises(CommandError) as error:
            call_command("aegis_rotate_keys", "--check")
        assert "not under the first key" in str(error.value)
        call_command("aegis_rotate_keys", "--batch-size", "4")
        out = capsys.readouterr().out
        assert "workflows.WorkflowTransition (triggered_by, reason, payload)" in out and "rows/s" in out
        call_command("aegis_rotate_keys", "--check")
        assert "Every encrypted value is under the first key" in capsys.readouterr().out
        event = TelemetryEvent.objects.filter(name="keys.rotated").latest("occurred_at")
        assert event.actor == "aegis_rotate_keys" and event.data["reencrypted"] > 0
    with pytest.raises(CommandError, match="--batch-size"):
        call_command("aegis_rotate_keys", "--batch-size", "0")


def _transition():
    return WorkflowTransition.objects.order_by("id").first()


def _rewrite(sql: str, params: list) -> None:
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def test_outside_a_rotation_the_encrypted_columns_of_transitions_stay_append_only():
    populate()
    transition = _transition()
    token = WorkflowTransition._meta.get_field("reason").get_db_prep_save("rewritten", connection)
    with pytest.raises(DatabaseError, match="append-only"):
        _rewrite("UPDATE workflows_workflowtransition SET reason = %s WHERE id = %s", [token, transition.pk])


@pytest.mark.parametrize("column, value", [("hash", "0" * 64), ("to_state", "approved"), ("seq", 99)])
def test_inside_a_rotation_window_only_the_encrypted_columns_may_change(column, value):
    populate()
    transition = _transition()
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic():
            ReencryptionWindow.objects.create()
            with connection.cursor() as cursor:
                cursor.execute(f"UPDATE workflows_workflowtransition SET {column} = %s WHERE id = %s",
                               [value, transition.pk])
    with transaction.atomic():
        window = ReencryptionWindow.objects.create()
        token = WorkflowTransition._meta.get_field("reason").get_db_prep_save(transition.reason, connection)
        with connection.cursor() as cursor:
            cursor.execute("UPDATE workflows_workflowtransition SET reason = %s WHERE id = %s", [token, transition.pk])
        window.delete()
    assert _transition().reason == transition.reason
    assert all_chains_valid()


@pytest.mark.django_db(transaction=True)
def test_rotation_is_safe_while_the_app_keeps_writing():
    """The app (new key first) submits proposals and overrides in another thread while the
    rotation runs in small batches: afterwards nothing is left under the old key, and
    everything reads and verifies without it."""
    import threading

    from django.db import connections

    with override_settings(FERNET_KEYS=[KEY_A]):
        populate()
        populate()
    errors: list[BaseException] = []

    def app_writes():
        try:
            for _ in range(4):
                populate()
        except BaseException as error:  # reported by the assertion below
            errors.append(error)
        finally:
            connections.close_all()

    with override_settings(FERNET_KEYS=[KEY_B, KEY_A]):
        writer = threading.Thread(target=app_writes)
        writer.start()
        rotated = rotate_keys(batch_size=2)
        writer.join()
        assert not errors, errors
        assert rotated.reencrypted > 0
        leftover = rotate_keys(check_only=True).reencrypted
        # Rows the rotation passed before the app rewrote them were rewritten under B by the app.
        assert leftover == 0, f"{leftover} values still under the old key"
    with override_settings(FERNET_KEYS=[KEY_B]):
        every_value()
        assert all_chains_valid()


@pytest.mark.django_db(transaction=True)
def test_rows_the_app_holds_are_left_for_later_not_waited_for():
    """On PostgreSQL the rotation skips rows another transaction has locked (so it never
    waits while holding locks, and cannot deadlock with the app) and rotates them once they
    are free; on SQLite the app's write transaction holds the whole database, so the
    rotation waits for it. Either way everything ends under the new key."""
    import threading

    from django.db import connections
    from django.db.models import F

    from workflows.persistence.models import WorkflowInstance

    with override_settings(FERNET_KEYS=[KEY_A]):
        populate()
    held = WorkflowInstance.objects.order_by("-id").values_list("id", flat=True)[0]
    holding, release = threading.Event(), threading.Event()

    def app_holds_a_row():
        try:
            with transaction.atomic():
                if connection.vendor == "sqlite":
                    # A write that changes nothing still takes SQLite's write lock.
                    WorkflowInstance.objects.filter(pk=held).update(status=F("status"))
                else:
                    WorkflowInstance.objects.select_for_update().get(pk=held)
                holding.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    passed_while_held: list[tuple[str, int]] = []

    def progress(table):
        if not release.is_set():
            passed_while_held.append((table.label, table.rows))

    outcome: dict = {}

    def rotation():
        try:
            outcome["result"] = rotate_keys(batch_size=1000, on_batch=progress)  # one batch a table
        except BaseException as error:  # reported below
            outcome["error"] = error
        finally:
            connections.close_all()

    with override_settings(FERNET_KEYS=[KEY_B, KEY_A]):
        app = threading.Thread(target=app_holds_a_row)
        app.start()
        assert holding.wait(timeout=10)
        rotator = threading.Thread(target=rotation)
        rotator.start()
        rotator.join(timeout=3)  # long enough to reach the held row's table if nothing is waited for
        release.set()
        app.join()
        rotator.join(timeout=60)
        assert "error" not in outcome, outcome.get("error")
        if connection.vendor == "postgresql":
            # The instances' one batch committed all rows but the held one while it was held.
            assert ("workflows.WorkflowInstance", WorkflowInstance.objects.count() - 1) in passed_while_held
        else:
            assert passed_while_held == []  # waited for the app's write transaction
        assert rotate_keys(check_only=True).reencrypted == 0
    with override_settings(FERNET_KEYS=[KEY_B]):
        assert WorkflowInstance.objects.get(pk=held).state_data is not None
        assert all_chains_valid()


def test_a_database_error_mid_rotation_ends_the_command_with_a_clear_message(monkeypatch):
    """E.g. the database refusing a batch (a lost connection, a statement timeout): what was
    committed stays, and the command says to run it again — which then finishes."""
    from django.db import OperationalError

    from governance.key_rotation import _TablePass

    with override_settings(FERNET_KEYS=[KEY_A]):
        populate()
    original, calls = _TablePass.rotate, []

    def failing_on_the_third_batch(self, cursor, ids, *, skip_locked):
        calls.append(ids)
        if len(calls) == 3:
            raise OperationalError("canceling statement due to statement timeout")
        return original(self, cursor, ids, skip_locked=skip_locked)

    with override_settings(FERNET_KEYS=[KEY_B, KEY_A]):
        monkeypatch.setattr(_TablePass, "rotate", failing_on_the_third_batch)
        with pytest.raises(CommandError, match="statement timeout.*run the command again"):
            call_command("aegis_rotate_keys", "--batch-size", "1")
        monkeypatch.setattr(_TablePass, "rotate", original)
        assert rotate_keys(check_only=True).reencrypted > 0
        call_command("aegis_rotate_keys")
        assert rotate_keys(check_only=True).reencrypted == 0
    assert not ReencryptionWindow.objects.exists()
