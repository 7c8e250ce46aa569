"""Tampering with stored decisions by raw SQL, the triggers dropped first as an attacker with
database access would, is found by `aegis_verify_chain --all`, by the nightly verification
task (its ChainVerificationRun) and by POST /api/decisions/<id>/verify, each naming the
decision id; an unsealed decision is reported as unsealed, not broken."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from append_only_support import drop_decision_triggers
from sealing_support import (TABLE, db_value, decide, decisions_line, https, insert_copy, pk_of, raw_response, run, run_refused,
                             skip_a_pk, sql, verify_over_api)

from governance.models import Decision, DecisionSeal
from governance.sealing import decision_digest, seal_decisions, verify_decision
from workflows import tasks as workflow_tasks
from workflows.models import ChainVerificationRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def sealed(tenant):
    """Six sealed decisions of `tenant` in one block, with an unused pk (a rolled-back insert)
    between the third and the fourth."""
    ids = decide(tenant, 3)
    skip_a_pk()
    ids += decide(tenant, 3)
    assert seal_decisions() == 6
    block = DecisionSeal.objects.get()
    assert [entry[1] for entry in block.entries] == ids and block.last_pk == pk_of(ids[-1])
    assert pk_of(ids[3]) == pk_of(ids[2]) + 2  # the gap
    return ids


def gap_pk(ids) -> int:
    return pk_of(ids[2]) + 1


# --- the tampering, each returning the ids that must be named ----------------------------------

def change_status(ids):
    stored = Decision.objects.get(decision_id=ids[1]).status
    sql(f"UPDATE {TABLE} SET status = %s WHERE id = %s", ["halt" if stored != "halt" else "proceed", pk_of(ids[1])])
    return {ids[1]}


def swap_summary_ciphertexts(ids):
    one, two = pk_of(ids[1]), pk_of(ids[4])
    with_tokens = dict(Decision.objects.filter(pk__in=[one, two]).values_list("pk", "proposal_summary"))
    assert with_tokens[one] != with_tokens[two]
    sql(f"UPDATE {TABLE} SET proposal_summary = (SELECT proposal_summary FROM {TABLE} AS other WHERE other.id = %s) "
        f"WHERE id = %s", [two, one])
    return {ids[1]}


def change_response(ids):
    response = raw_response(ids[1])
    response["rationale"] = "Approved after all."
    sql(f"UPDATE {TABLE} SET response = %s WHERE id = %s", [db_value("response", response), pk_of(ids[1])])
    return {ids[1]}


def delete_row(ids):
    sql(f"DELETE FROM {TABLE} WHERE id = %s", [pk_of(ids[1])])
    return {ids[1]}


def insert_inside_the_sealed_range(ids):
    return {insert_copy(ids[1], pk=gap_pk(ids))}


def insert_after_the_last_block(ids):
    return {insert_copy(ids[1])}


def replace_a_row_at_its_pk(ids):
    pk = pk_of(ids[1])
    sql(f"DELETE FROM {TABLE} WHERE id = %s", [pk])
    return {ids[1], insert_copy(ids[2], pk=pk)}


TAMPERING = [change_status, swap_summary_ciphertexts, change_response, delete_row, insert_inside_the_sealed_range,
             insert_after_the_last_block, replace_a_row_at_its_pk]


@pytest.mark.parametrize("tamper", TAMPERING, ids=[t.__name__ for t in TAMPERING])
def test_tampering_is_found_by_the_command_the_task_and_the_api(sealed, tenant, tenant_api, staff_api, tamper):
    drop_decision_triggers()
    named = tamper(sealed)
    untouched = [i for i in sealed if i not in named]
    stored = {str(d) for d in Decision.objects.values_list("decision_id", flat=True)}

    # The command: exit 1, one BROKEN line per finding, each naming its decision.
    error, out, err = run_refused("aegis_verify_chain", all=True)
    assert error.returncode == 1 and "decision finding(s) failed verification" in str(error)
    for decision_id in named:
        assert f"BROKEN decision {decision_id}: " in err, err
    assert "workflow(s) checked, 0 broken." in out
    assert not any(i in err for i in untouched), err

    # The API: broken, for the tenant's key and for staff; a deleted one only staff can name.
    for decision_id in named:
        by_staff = verify_over_api(staff_api, decision_id)
        assert by_staff.status_code == 200, by_staff.content
        assert by_staff.json()["state"] == "broken" and by_staff.json()["is_valid"] is False
        assert by_staff.json()["decision_id"] == decision_id
        by_key = verify_over_api(tenant_api, decision_id)
        if decision_id in stored:
            assert by_key.status_code == 200 and by_key.json() == by_staff.json()
        else:
            assert by_key.status_code == 404 and by_key.json()["code"] == "not_found"
            assert by_staff.json()["message"].startswith("deleted: sealed in block 1")
    for decision_id in untouched:
        assert verify_over_api(tenant_api, decision_id).json()["state"] == "sealed-valid"

    # The nightly task: it seals first, then records every decision failure in the run.
    result = workflow_tasks.verify_chains.delay().get()
    run_ = ChainVerificationRun.objects.get()
    assert result == {"checked": run_.checked, "broken": run_.broken}
    assert run_.broken >= len(named) and not run_.ok
    failed = {f["decision_id"] for f in run_.failures if "decision_id" in f}
    assert named <= failed and not failed & set(untouched)
    for failure in run_.failures:
        assert failure["reason"] and failure["message"].endswith(failure["reason"])
    for decision_id in named:  # sealing did not make anything valid again
        report = verify_decision(decision_id)
        assert report is not None and report.state == "broken"


def test_a_swapped_ciphertext_names_both_rows(sealed):
    drop_decision_triggers()
    one, two = pk_of(sealed[1]), pk_of(sealed[4])
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, proposal_summary FROM {TABLE} WHERE id IN (%s, %s)", [one, two])
        tokens = {pk: bytes(token) for pk, token in cursor.fetchall()}
    for target, source in ((one, two), (two, one)):
        sql(f"UPDATE {TABLE} SET proposal_summary = %s WHERE id = %s",
            [connection.Database.Binary(tokens[source]), target])
    assert Decision.objects.get(pk=one).proposal_summary != Decision.objects.get(pk=two).proposal_summary
    _, _, err = run_refused("aegis_verify_chain", all=True)
    assert [line.split(":")[0] for line in err.splitlines()] == [f"BROKEN decision {sealed[1]}",
                                                                f"BROKEN decision {sealed[4]}"]  # in pk order


def test_the_messages_say_what_happened(sealed):
    block = DecisionSeal.objects.get()
    deleted_pk = pk_of(sealed[3])
    drop_decision_triggers()
    change_status(sealed)
    sql(f"DELETE FROM {TABLE} WHERE id = %s", [deleted_pk])
    inserted = insert_copy(sealed[0], pk=gap_pk(sealed))
    sql(f"UPDATE {TABLE} SET content_hash = %s WHERE id = %s", ["0" * 64, pk_of(sealed[5])])
    later = insert_copy(sealed[0])

    _, _, err = run_refused("aegis_verify_chain", all=True)
    lines = dict(line.removeprefix("BROKEN decision ").split(": ", 1) for line in err.splitlines())

    assert lines[sealed[1]] == "changed: its record no longer matches the digest sealed in block 1"
    assert lines[sealed[3]] == f"deleted: sealed in block 1 (pk {deleted_pk}) but no longer stored"
    assert lines[inserted] == (f"inserted: pk {gap_pk(sealed)} lies in the range of block 1 "
                               f"({block.first_pk}–{block.last_pk}) but was never sealed in it")
    assert lines[sealed[5]] == "changed: its content_hash column differs from the digest sealed in block 1"
    assert lines[later] == ("changed or inserted by hand before it was sealed: its record does not match its "
                            "content_hash")
    assert len(lines) == 5


def test_a_changed_row_with_its_content_hash_rewritten_too_is_still_found(sealed, staff_api):
    drop_decision_triggers()
    change_status(sealed)
    row = Decision.objects.select_related("customer", "api_key").get(decision_id=sealed[1])
    sql(f"UPDATE {TABLE} SET content_hash = %s WHERE id = %s", [decision_digest(row), row.pk])

    body = verify_over_api(staff_api, sealed[1]).json()

    assert body["state"] == "broken" and body["block"] == 1
    assert body["message"] == ("changed: its record no longer matches the digest sealed in block 1; its "
                               "content_hash column was altered too")


def test_a_value_no_key_decrypts_is_broken_cannot_decrypt_not_an_error(sealed, tenant_api):
    drop_decision_triggers()
    sql(f"UPDATE {TABLE} SET metadata = %s WHERE id = %s", [db_value("replay_vector", b"not a fernet token"),
                                                            pk_of(sealed[2])])
    _, _, err = run_refused("aegis_verify_chain", all=True)
    assert err.strip() == (f"BROKEN decision {sealed[2]}: broken (cannot decrypt): no key in FERNET_KEYS decrypts "
                           "its encrypted columns")
    response = verify_over_api(tenant_api, sealed[2])
    assert response.status_code == 200 and response.json()["state"] == "broken"
    assert "cannot decrypt" in response.json()["message"]


def test_a_clean_database_verifies_everywhere(sealed, tenant, tenant_api):
    later = decide(tenant, 2)  # not sealed yet

    out, err = run("aegis_verify_chain", all=True)
    assert err == ""
    assert decisions_line(out).startswith("8 decision(s) checked in 1 seal block(s), newest block 1 (")
    assert decisions_line(out).endswith(": 2 unsealed, 0 broken.")
    for decision_id in sealed:
        body = verify_over_api(tenant_api, decision_id).json()
        assert body == {"decision_id": decision_id, "state": "sealed-valid", "is_valid": True,
                        "message": "sealed in block 1 and unchanged since", "block": 1}
    for decision_id in later:
        body = verify_over_api(tenant_api, decision_id).json()
        assert body["state"] == "unsealed" and body["is_valid"] is True and body["block"] is None

    assert workflow_tasks.verify_chains.delay().get() == {"checked": 8 + 1, "broken": 0}  # and configuration v1
    run_ = ChainVerificationRun.objects.get()
    assert run_.ok and run_.failures == []
    assert [verify_over_api(tenant_api, i).json()["state"] for i in later] == ["sealed-valid"] * 2
    out, _ = run("aegis_verify_chain", all=True)
    assert decisions_line(out).endswith(": 0 unsealed, 0 broken.") and "in 2 seal block(s)" in out


def test_a_tenant_key_sees_only_its_own_decisions(sealed, other_tenant, tenant_api):
    [foreign] = decide(other_tenant)
    seal_decisions()
    as_other = verify_over_api(tenant_api, foreign)
    missing = verify_over_api(tenant_api, "00000000-0000-4000-8000-000000000000")
    garbage = verify_over_api(tenant_api, "not-a-uuid")

    assert as_other.status_code == missing.status_code == garbage.status_code == 404
    for response, decision_id in ((as_other, foreign), (missing, "00000000-0000-4000-8000-000000000000")):
        body = response.json()
        assert (body["code"], body["error"]) == ("not_found", f"No decision {decision_id}")
        assert set(body) == {"error", "code", "request_id"}


def test_the_api_needs_a_key_or_a_session(sealed):
    response = verify_over_api(https(), sealed[0])
    assert response.status_code == 401 and response.json()["code"] == "invalid_api_key"
    assert https(Authorization=f"Bearer {sealed[0]}").get(f"/api/decisions/{sealed[0]}/verify").status_code == 401


def test_an_unsealed_decision_is_unsealed_not_broken(tenant, tenant_api):
    [decision_id] = decide(tenant)

    out, err = run("aegis_verify_chain", all=True)
    body = verify_over_api(tenant_api, decision_id).json()

    assert err == "" and decisions_line(out) == ("1 decision(s) checked in 0 seal block(s), no block yet: "
                                                  "1 unsealed, 0 broken.")
    assert body["state"] == "unsealed" and body["is_valid"] is True
    assert body["message"].startswith("not sealed yet")


def test_responses_are_json_of_the_documented_shape(sealed, staff_api):
    response = verify_over_api(staff_api, sealed[0])
    assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
    assert set(json.loads(response.content)) == {"decision_id", "state", "is_valid", "message", "block"}
    assert staff_api.get(f"/api/decisions/{sealed[0]}/verify").status_code == 405
