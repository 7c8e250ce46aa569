"""The attestation pages under /decisions/attestations/ and the attestations on a decision
page: who may see them (anonymous → login, staff without attestations.view_attestation →
403, the role groups → the page), what an attestation's page shows (its signed fields, both
keys with their pair's status, a verdict computed now, the canonical statement), the links
both ways between a decision and its attestations, and 404 for a missing or malformed id."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.html import escape

from append_only_support import attestations_writable
from attestation_review_support import (ANONYMOUS, PROCEED, RISK_LEAD, SECURITY_LEAD, STAFF, WORKFLOW_REF, attest,
                                        decide, make_tenant)
from attestations import keys, views
from attestations.envelope import ErrorClass
from attestations.models import Attestation

pytestmark = pytest.mark.django_db

KINDS = [ANONYMOUS, STAFF, RISK_LEAD, SECURITY_LEAD]


def page(attestation) -> str:
    return f"/decisions/attestations/{attestation.decision_id}/"


def html_of(response) -> str:
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


# --- who may see ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("target", ["list", "detail"])
def test_access(client_for, signing_pair, tenant, decision, kind, target):
    attestation = attest(tenant, decision=decision)
    url = "/decisions/attestations/" if target == "list" else page(attestation)
    response = client_for(kind).get(url)
    if kind == ANONYMOUS:
        assert response.status_code == 302 and response["Location"] == f"/accounts/login/?next={url}"
        return
    html = response.content.decode()
    if kind == STAFF:
        assert response.status_code == 403
        assert "attestations.view_attestation" in html and "Risk Lead and Security Lead groups have it" in html
        assert str(attestation.decision_id) not in html and attestation.artifact_digest not in html
        assert 'href="/decisions/attestations/"' not in html  # no nav link either
    else:
        assert response.status_code == 200
        assert str(attestation.decision_id) in html and 'href="/decisions/attestations/">Attestations</a>' in html


@pytest.mark.parametrize("kind", [STAFF, RISK_LEAD])
def test_a_missing_attestation_is_refused_before_it_is_looked_up(client_for, signing_pair, kind):
    response = client_for(kind).get("/decisions/attestations/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == (403 if kind == STAFF else 404)


@pytest.mark.parametrize("path", ["00000000-0000-0000-0000-000000000000/", "not-a-uuid/", "1234/",
                                  "00000000-0000/"])
def test_a_missing_or_malformed_id_is_the_404_page(client_for, signing_pair, path):
    response = client_for(RISK_LEAD).get(f"/decisions/attestations/{path}")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html") and "Page not found (404)" in response.content.decode()


# --- one attestation ----------------------------------------------------------------------------

def test_the_page_shows_what_was_signed(client_for, signing_pair, tenant, decision):
    attestation = attest(tenant, decision=decision, risk_class="high", environment="staging", hours=3)
    html = html_of(client_for(RISK_LEAD).get(page(attestation)))
    governance = attestation.predicate["governance"]
    for shown in ("Acme Payments", tenant.customer_id, f"sha256:{attestation.artifact_digest}",
                  "payments-api-1.4.0.tar.gz", "staging", "high", "aegis-policy-v1", "acme/payments", WORKFLOW_REF,
                  "run id 9137, attempt 2", "https://github.com/actions/runner", governance["nonce"],
                  attestation.statement_sha256):
        assert shown in html, shown
    assert len(governance["nonce"]) == 64
    for moment in (attestation.issued_at, attestation.expires_at):  # |when: a <time> in UTC
        assert f'datetime="{moment.replace("+00:00", "Z")}"' in html
    canonical = base64.b64decode(attestation.envelope["payload"]).decode()
    assert f'<pre class="statement" id="canonical-statement">{escape(canonical)}</pre>' in html
    assert '<span class="badge valid">valid</span>' in html


def test_both_keyids_are_shown_with_their_pairs_status(client_for, signing_pair, tenant):
    old = attest(tenant)
    keys.generate_pair()  # rotation: the old pair only verifies now
    new = attest(tenant)
    client = client_for(SECURITY_LEAD)
    old_html, new_html = html_of(client.get(page(old))), html_of(client.get(page(new)))
    public = signing_pair.public()
    for keyid in (public.ed25519_keyid, public.mldsa65_keyid):
        assert f'<tr data-keyid="{keyid}">' in old_html
        assert keyid not in new_html
    assert old_html.count('<span class="badge retired">retired</span>') == 2
    assert new_html.count('<span class="badge active">active</span>') == 2
    assert '<span class="badge valid">valid</span>' in old_html  # an old envelope still verifies


def test_an_expired_attestation_says_so(client_for, signing_pair, tenant):
    attestation = attest(tenant, now=timezone.now() - timedelta(hours=3), hours=1)
    html = html_of(client_for(RISK_LEAD).get(page(attestation)))
    assert '<span class="badge expired">expired</span>' in html and "valid</span>" not in html


def test_a_tampered_envelope_shows_its_error_class(client_for, signing_pair, tenant):
    attestation = attest(tenant)
    other = attest(tenant, artifact="another-build.tar.gz")
    with attestations_writable():
        Attestation.objects.filter(pk=attestation.pk).update(envelope={**attestation.envelope,
                                                                       "payload": other.envelope["payload"]})
    html = html_of(client_for(RISK_LEAD).get(page(attestation)))
    assert f'<span class="badge broken">{ErrorClass.ED25519_VERIFY_FAILED.value}</span>' in html


def test_verdict_is_valid_expired_or_the_error_class(signing_pair, tenant):
    attestation = attest(tenant, hours=1)
    ring = keys.keyring()
    assert views.verdict(attestation, ring, timezone.now()) == "valid"
    assert views.verdict(attestation, ring, attestation.expires) == "expired"
    attestation.envelope["signatures"] = attestation.envelope["signatures"][:1]  # in memory only
    assert views.verdict(attestation, ring, timezone.now()) == ErrorClass.SIGNATURE_SET_INCOMPLETE.value


# --- linked both ways -------------------------------------------------------------------------

def test_decision_and_attestations_link_both_ways(client_for, signing_pair, tenant, decision):
    first = attest(tenant, decision=decision, environment="staging")
    second = attest(tenant, decision=decision, environment="production")
    unrelated = attest(tenant, decision=decide(tenant, {**PROCEED, "proposal_summary": "Another change"}))
    client = client_for(RISK_LEAD)
    decision_html = html_of(client.get(f"/decisions/{decision.decision_id}/"))
    assert "2 artifacts attested" in decision_html
    for attestation in (first, second):
        assert f'href="/decisions/attestations/{attestation.decision_id}/"' in decision_html
        attestation_html = html_of(client.get(page(attestation)))
        assert f'href="/decisions/{decision.decision_id}/"' in attestation_html
        assert "Cache the rate table" in attestation_html
        assert '<span class="badge proceed">proceed</span>' in attestation_html
    assert str(unrelated.decision_id) not in decision_html
    assert decision_html.index(str(second.decision_id)) < decision_html.index(str(first.decision_id))  # newest first


def test_a_decision_page_without_the_permission_counts_its_attestations_without_links(client_for, signing_pair,
                                                                                          tenant, decision):
    attestation = attest(tenant, decision=decision)
    html = html_of(client_for(STAFF).get(f"/decisions/{decision.decision_id}/"))
    assert "1 attestation names this decision; reading them needs the permission attestations.view_attestation" in html
    assert str(attestation.decision_id) not in html


def test_a_decision_without_attestations_says_none(client_for, signing_pair, decision):
    html = html_of(client_for(RISK_LEAD).get(f"/decisions/{decision.decision_id}/"))
    assert "none: no pipeline attested an artifact under this decision" in html and 'id="attestations"' not in html


def test_an_attestation_naming_no_decision_says_so(client_for, signing_pair, tenant):
    html = html_of(client_for(RISK_LEAD).get(page(attest(tenant))))
    assert '<dd id="governance-decision"><span class="muted">none: the pipeline named no decision' in html
    assert "its governance decision</a>" not in html


# --- the list ---------------------------------------------------------------------------------

def test_the_list_is_newest_first_with_tenant_environment_digest_and_decision(client_for, signing_pair, tenant,
                                                                               decision):
    now = timezone.now()
    older = attest(tenant, now=now - timedelta(minutes=5))
    newer = attest(tenant, decision=decision, environment="preview", now=now)
    response = client_for(RISK_LEAD).get("/decisions/attestations/")
    html = html_of(response)
    assert [row["attestation"].pk for row in response.context["rows"]] == [newer.pk, older.pk]
    assert html.index(str(newer.decision_id)) < html.index(str(older.decision_id))
    assert "Acme Payments" in html and "preview" in html and newer.artifact_digest[:16] in html
    assert f'href="/decisions/{decision.decision_id}/"' in html and "none named" in html


def test_the_list_filters_by_tenant(client_for, signing_pair, tenant):
    mine = attest(tenant)
    theirs = attest(make_tenant("Globex"))
    client = client_for(RISK_LEAD)
    html = html_of(client.get(f"/decisions/attestations/?tenant={tenant.customer_id}"))
    assert str(mine.decision_id) in html and str(theirs.decision_id) not in html
    response = client.get("/decisions/attestations/?tenant=cus_nobody")
    assert response.status_code == 200 and 'data-field="tenant"' in response.content.decode()
    assert str(mine.decision_id) not in response.content.decode()


def test_the_list_pages_by_keyset(client_for, signing_pair, tenant, monkeypatch):
    now = timezone.now()
    made = [attest(tenant, now=now - timedelta(minutes=minutes)) for minutes in range(3)]  # newest first
    first = views.list_attestations(limit=2)
    assert [a.pk for a in first.attestations] == [made[0].pk, made[1].pk] and first.next_before is not None
    second = views.list_attestations(limit=2, before=first.next_before)
    assert [a.pk for a in second.attestations] == [made[2].pk] and second.next_before is None
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    client = client_for(RISK_LEAD)
    html = html_of(client.get("/decisions/attestations/"))
    assert 'id="next-page"' in html and str(made[2].decision_id) not in html
    bad = client.get("/decisions/attestations/?cursor=nonsense")
    assert bad.status_code == 200 and "This page link is not valid" in bad.content.decode()


def test_an_unreadable_payload_is_shown_as_such_not_a_server_error(client_for, signing_pair, tenant):
    attestation = attest(tenant)
    with attestations_writable():
        Attestation.objects.filter(pk=attestation.pk).update(envelope={**attestation.envelope, "payload": "%%%"})
    html = html_of(client_for(RISK_LEAD).get(page(attestation)))
    assert f'<span class="badge broken">{ErrorClass.PAYLOAD_DECODE_FAILED.value}</span>' in html
    assert "The stored envelope's payload is not a base64-encoded JSON statement." in html
    assert '<dd id="subject-name">—</dd>' in html
