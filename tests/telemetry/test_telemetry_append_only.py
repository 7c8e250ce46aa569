"""Telemetry events are append-only in the database itself (raw SQL and the ORM alike);
only key rotation's own transaction may re-encrypt their PII columns."""

import pytest
from django.db import DatabaseError, connection, transaction

from governance.models import TelemetryEvent
from governance.telemetry import Event, emit
from workflows.models import ReencryptionWindow

pytestmark = pytest.mark.django_db

TABLE = "governance_telemetryevent"


@pytest.fixture
def event():
    with transaction.atomic():
        emit(Event.BACKUP_RESTORED, actor="olga", subject="backup.json.gz", data={"workflows": 3})
    return TelemetryEvent.objects.get()


def refused(action):
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic():
            action()


def sql(statement, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


@pytest.mark.parametrize("statement", [
    f"UPDATE {TABLE} SET name = 'audit.verified'",
    f"UPDATE {TABLE} SET subject = 'rewritten'",
    f"DELETE FROM {TABLE}",
])
def test_raw_sql_cannot_change_or_remove_an_event(event, statement):
    refused(lambda: sql(statement))
    assert TelemetryEvent.objects.get().subject == "backup.json.gz"


@pytest.mark.parametrize("how", ["queryset-update", "queryset-delete", "instance-save", "instance-delete"])
def test_the_orm_cannot_change_or_remove_an_event(event, how):
    action = {
        "queryset-update": lambda: TelemetryEvent.objects.update(subject="x"),
        "queryset-delete": lambda: TelemetryEvent.objects.all().delete(),
        "instance-save": lambda: event.save(),
        "instance-delete": lambda: event.delete(),
    }[how]
    with pytest.raises((DatabaseError, ValueError), match="append-only"):
        with transaction.atomic():
            action()
    assert TelemetryEvent.objects.count() == 1


def test_a_rotation_window_allows_re_encrypting_the_pii_columns_only(event):
    actor_field, data_field = (TelemetryEvent._meta.get_field(name) for name in ("actor", "data"))
    with transaction.atomic():
        window = ReencryptionWindow.objects.create()
        sql(f"UPDATE {TABLE} SET actor = %s, data = %s WHERE id = %s",
            [actor_field.get_db_prep_save("olga", connection), data_field.get_db_prep_save({"workflows": 3}, connection),
             event.pk])
        window.delete()
    assert TelemetryEvent.objects.values_list("actor", "data").get() == ("olga", {"workflows": 3})

    def rename_inside_a_window():
        ReencryptionWindow.objects.create()
        sql(f"UPDATE {TABLE} SET name = 'audit.verified' WHERE id = %s", [event.pk])

    refused(rename_inside_a_window)
