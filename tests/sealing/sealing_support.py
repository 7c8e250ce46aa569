"""Helpers of the sealed-decision tests (imported as `sealing_support`): making decisions,
and tampering with them by raw SQL the way an attacker with database access would."""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass
from io import StringIO
from typing import Any

from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from governance import services
from governance.engine.inputs import parse_proposal
from governance.models import ApiKey, Customer, Decision, DecisionSeal, Tier

TABLE = Decision._meta.db_table
_numbers = itertools.count(1)  # every decision's summary differs, so swapping two changes both
SEAL_TABLE = DecisionSeal._meta.db_table


@dataclass
class Tenant:
    customer: Customer
    key: ApiKey
    plaintext: str


def make_tenant(name: str = "Sealed Co") -> Tenant:
    return Tenant(*services.create_customer(name, tier=Tier.objects.get(name="team")))


def decide(tenant: Tenant, count: int = 1, **changes) -> list[str]:
    """`count` decisions of `tenant` made by the /evaluate service; their ids in pk order."""
    ctx = services.CallContext(customer=tenant.customer, api_key=tenant.key, request_id="sealing-test")
    return [services.evaluate_proposal(ctx, parse_proposal({"proposal_summary": f"Sealed change {next(_numbers)}",
                                                             "agent_id": "sealing-agent", **changes}))["decision_id"]
            for _ in range(count)]


def pk_of(decision_id: str) -> int:
    return Decision.objects.filter(decision_id=decision_id).values_list("pk", flat=True).get()


def sql(statement: str, params=()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(statement, list(params))
        return cursor.rowcount


def db_value(field_name: str, value: Any) -> Any:
    """`value` as the decision column stores it."""
    return Decision._meta.get_field(field_name).get_db_prep_save(value, connection)


def raw_response(decision_id: str) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT response FROM {TABLE} WHERE id = %s", [pk_of(decision_id)])
        value = cursor.fetchone()[0]
    return json.loads(value) if isinstance(value, str) else value


def insert_copy(source_id: str, *, pk: int | None = None) -> str:
    """A new row copied from another with a fresh decision_id (and no review link, which is
    unique); at `pk`, or the next pk. Returns its decision_id."""
    new_id = str(uuid.uuid4())
    columns = [f.column for f in Decision._meta.concrete_fields
               if f.column not in ("id", "decision_id", "review_workflow_id")]
    names = ", ".join(columns)
    id_column, id_value = ("id, ", "%s, ") if pk is not None else ("", "")
    params = ([pk] if pk is not None else []) + [db_value("decision_id", uuid.UUID(new_id)), pk_of(source_id)]
    sql(f"INSERT INTO {TABLE} ({id_column}decision_id, {names}) SELECT {id_value}%s, {names} FROM {TABLE} "
        "WHERE id = %s", params)
    return new_id


def skip_a_pk() -> None:
    """Leave one pk unused, as a rolled-back insert does on PostgreSQL."""
    if connection.vendor == "sqlite":
        sql("UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = %s", [TABLE])
    else:
        sql(f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'), "
            f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {TABLE}))")


def run(command: str, *args, **options) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(command, *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def run_refused(command: str, *args, **options) -> tuple[CommandError, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command(command, *args, stdout=out, stderr=err, **options)
    except CommandError as error:
        return error, out.getvalue(), err.getvalue()
    raise AssertionError(f"{command} succeeded:\n{out.getvalue()}{err.getvalue()}")


class SecureClient(Client):
    """The test client over HTTPS (the production settings redirect plain http)."""

    def generic(self, *args, secure=True, **kwargs):
        return super().generic(*args, secure=True, **kwargs)


def https(**headers) -> Client:
    return SecureClient(headers=headers)


def verify_over_api(client: Client, decision_id: str):
    return client.post(f"/api/decisions/{decision_id}/verify", content_type="application/json")


def decisions_line(out: str) -> str:
    """The line of `aegis_verify_chain --all`'s output about decisions."""
    return next(line for line in out.splitlines() if " decision(s) checked in " in line)
