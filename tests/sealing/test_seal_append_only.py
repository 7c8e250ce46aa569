"""Decisions and their seal blocks are append-only in the database (governance 0011): a
trigger refuses UPDATE and DELETE on SQLite and PostgreSQL; key rotation alone may rewrite
a decision's encrypted columns, inside its window; the ORM refuses before any SQL runs;
and the admin cannot delete a tenant that has decisions (the cascade would delete them)."""

from __future__ import annotations

import re

import pytest
from append_only_support import EXPECTED_TRIGGERS, SEALS, decision_triggers, decisions_writable
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction
from sealing_support import SEAL_TABLE, TABLE, db_value, decide, https, pk_of, sql

from governance.fields import EncryptedField
from governance.models import Customer, Decision, DecisionSeal
from governance.sealing import seal_decisions
from workflows.models import ReencryptionWindow

pytestmark = pytest.mark.django_db


def refused(statement: str, params=()) -> str:
    """The database's refusal of `statement` (in a savepoint, so the test goes on)."""
    with pytest.raises(DatabaseError) as error, transaction.atomic():
        sql(statement, params)
    return str(error.value)


def test_the_triggers_are_installed():
    assert EXPECTED_TRIGGERS[connection.vendor] <= decision_triggers()


def test_the_trigger_leaves_open_exactly_the_encrypted_columns():
    """A column added to Decision later must be added to the trigger's list, or it could be
    rewritten inside a rotation window."""
    columns = {f.column for f in Decision._meta.concrete_fields}
    encrypted = {f.column for f in Decision._meta.concrete_fields if isinstance(f, EncryptedField)}
    assert encrypted == {"proposal_summary", "agent_id", "session_id", "metadata"}
    assert set(SEALS.DECISION_UNCHANGED) == columns - encrypted
    assert set(SEALS.SEAL_UNCHANGED) == {f.column for f in DecisionSeal._meta.concrete_fields}


@pytest.mark.parametrize("statement", [
    f"UPDATE {TABLE} SET status = 'halt' WHERE id = %s",
    f"UPDATE {TABLE} SET content_hash = '' WHERE id = %s",
    f"DELETE FROM {TABLE} WHERE id = %s",
    f"DELETE FROM {TABLE} WHERE id >= %s",
], ids=["update-status", "update-hash", "delete-one", "delete-all"])
def test_raw_sql_cannot_change_or_delete_a_decision(tenant, statement):
    [decision_id] = decide(tenant)
    before = Decision.objects.get(decision_id=decision_id)

    assert "decisions are append-only" in refused(statement, [pk_of(decision_id)])

    after = Decision.objects.get(decision_id=decision_id)
    assert (after.status, after.content_hash) == (before.status, before.content_hash)


@pytest.mark.parametrize("statement", [
    f"UPDATE {SEAL_TABLE} SET hash = 'x'", f"UPDATE {SEAL_TABLE} SET entries = '[]'", f"DELETE FROM {SEAL_TABLE}",
], ids=["update-hash", "update-entries", "delete"])
def test_raw_sql_cannot_change_or_delete_a_seal_block(tenant, statement):
    decide(tenant)
    assert seal_decisions() == 1
    block = DecisionSeal.objects.get()

    assert "decision seals are append-only" in refused(statement)
    assert DecisionSeal.objects.get().hash == block.hash


def test_the_orm_refuses_before_any_sql_runs(tenant):
    [decision_id] = decide(tenant)
    decision = Decision.objects.get(decision_id=decision_id)
    stored = decision.status
    other = "halt" if stored != "halt" else "proceed"
    decision.status = other
    with pytest.raises(ValueError, match="never changed"):
        decision.save()
    with pytest.raises(ValueError, match="never deleted"):
        decision.delete()
    seal_decisions()
    block = DecisionSeal.objects.get()
    with pytest.raises(ValueError, match="append-only"):
        block.save()
    with pytest.raises(ValueError, match="append-only"):
        block.delete()
    # Querysets go straight to SQL: the trigger refuses them.
    with pytest.raises(DatabaseError), transaction.atomic():
        Decision.objects.filter(decision_id=decision_id).update(status=other)
    with pytest.raises(DatabaseError), transaction.atomic():
        Decision.objects.all().delete()
    assert Decision.objects.get(decision_id=decision_id).status == stored


def test_inside_a_rotation_window_only_the_encrypted_columns_may_change(tenant):
    [decision_id] = decide(tenant)
    pk = pk_of(decision_id)
    with transaction.atomic():
        window = ReencryptionWindow.objects.create()
        sql(f"UPDATE {TABLE} SET proposal_summary = %s WHERE id = %s", [db_value("proposal_summary", "rotated"), pk])
        assert "decisions are append-only" in refused(f"UPDATE {TABLE} SET status = 'halt' WHERE id = %s", [pk])
        assert "decisions are append-only" in refused(f"DELETE FROM {TABLE} WHERE id = %s", [pk])
        window.delete()
    assert Decision.objects.get(pk=pk).proposal_summary == "rotated"
    # Outside the window the encrypted columns are closed again.
    assert "decisions are append-only" in refused(
        f"UPDATE {TABLE} SET proposal_summary = %s WHERE id = %s", [db_value("proposal_summary", "again"), pk])


def test_lifting_the_triggers_in_tests_puts_them_back(tenant):
    [decision_id] = decide(tenant)
    with decisions_writable():
        assert not decision_triggers()
        sql(f"UPDATE {TABLE} SET status = 'halt' WHERE id = %s", [pk_of(decision_id)])
    assert decision_triggers() == EXPECTED_TRIGGERS[connection.vendor]
    assert "append-only" in refused(f"DELETE FROM {TABLE}")


def test_the_admin_does_not_delete_a_tenant_with_decisions(tenant):
    """Deleting a tenant would cascade to its decisions; the admin refuses, because decisions
    (and API keys) may not be deleted there. A tenant is suspended instead."""
    decide(tenant, 2)
    admin = get_user_model().objects.create_superuser("sealing-admin", "admin@example.com", "x")
    client = https()
    client.force_login(admin)
    url = f"/admin/governance/customer/{tenant.customer.pk}/delete/"

    page = client.get(url)
    single = client.post(url, {"post": "yes"})
    bulk = client.post("/admin/governance/customer/", {"action": "delete_selected", "post": "yes",
                                                        "_selected_action": [tenant.customer.pk]})

    assert page.status_code == 200
    assert b"Cannot delete customer" in page.content
    text = " ".join(re.sub(r"<[^>]+>", " ", page.content.decode()).split())
    refused_types = text.split("permission to delete the following types of objects:", 1)[1]
    assert "decision" in refused_types.split()
    assert single.status_code == 403 and bulk.status_code == 403
    assert Customer.objects.filter(pk=tenant.customer.pk).exists() and Decision.objects.count() == 2
