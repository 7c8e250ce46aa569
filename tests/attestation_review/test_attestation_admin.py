"""The read-only admin of attestations and signing pairs: shown, never added, changed or
deleted; the envelope as indented JSON; a pair's keyids, fingerprints and status, never its
private seeds; the change list says how pairs are made."""

from __future__ import annotations

import base64

import pytest
from django.contrib.auth import get_user_model

from attestation_review_support import ANONYMOUS, RISK_LEAD, STAFF, SecureClient, attest
from attestations import keys
from attestations.models import Attestation, SigningKeyPair

pytestmark = pytest.mark.django_db

ATTESTATIONS, PAIRS = "/admin/attestations/attestation/", "/admin/attestations/signingkeypair/"


@pytest.fixture
def admin_client(db):
    client = SecureClient()
    client.force_login(get_user_model().objects.create_superuser("root", password=None))
    return client


def seed_texts(pair: SigningKeyPair) -> list[str]:
    """Every way a page could spell the pair's private seeds."""
    texts = []
    for seed in (bytes(pair.ed25519_seed), bytes(pair.mldsa65_seed)):
        texts += [seed.hex(), base64.b64encode(seed).decode(), repr(seed)]
    return texts


def test_an_attestation_is_shown_with_its_envelope_as_indented_json(admin_client, signing_pair, tenant, decision):
    attestation = attest(tenant, decision=decision)
    listing = admin_client.get(ATTESTATIONS).content.decode()
    assert str(attestation.decision_id) in listing and "Acme Payments" in listing
    html = admin_client.get(f"{ATTESTATIONS}{attestation.pk}/change/").content.decode()
    assert '<pre style="margin:0;white-space:pre-wrap">{\n  &quot;payload&quot;: ' in html
    assert ('\n  &quot;payloadType&quot;: &quot;application/vnd.in-toto+json&quot;,\n'
            '  &quot;signatures&quot;: [\n    {') in html
    assert attestation.envelope["signatures"][1]["sig"] in html
    assert 'name="environment"' not in html and 'name="_save"' not in html  # view only: no form fields

@pytest.mark.parametrize("admin_path", [ATTESTATIONS, PAIRS])
def test_nothing_is_added_changed_or_deleted(admin_client, signing_pair, tenant, admin_path):
    attestation = attest(tenant)
    pk = attestation.pk if admin_path == ATTESTATIONS else signing_pair.pk
    assert admin_client.get(f"{admin_path}add/").status_code == 403
    assert admin_client.get(f"{admin_path}{pk}/delete/").status_code == 403
    response = admin_client.post(f"{admin_path}{pk}/change/", {"environment": "preview", "status": "retired"})
    assert response.status_code == 403
    response = admin_client.post(admin_path, {"action": "delete_selected", "_selected_action": [pk]})
    assert "delete_selected" not in response.content.decode()
    assert Attestation.objects.get(pk=attestation.pk).environment == "production"
    assert SigningKeyPair.objects.get(pk=signing_pair.pk).status == "active"


def test_a_pair_shows_its_keys_and_status_never_its_seeds(admin_client, signing_pair, tenant):
    old = signing_pair
    new = keys.generate_pair()
    listing = admin_client.get(PAIRS).content.decode()
    assert "manage.py aegis_attestation_keys generate" in listing
    for pair, status in ((old, "retired"), (new, "active")):
        public = pair.public()
        assert public.ed25519_keyid in listing and public.mldsa65_keyid in listing
        html = admin_client.get(f"{PAIRS}{pair.pk}/change/").content.decode()
        assert public.ed25519_keyid in html and public.mldsa65_keyid.split(":")[1] in html and status in html
        assert "stored encrypted (FERNET_KEYS)" in html
        for page in (listing, html):
            assert "ed25519_seed" not in page and "mldsa65_seed" not in page
            assert not any(text in page for text in seed_texts(pair))


@pytest.mark.parametrize("kind", [ANONYMOUS, STAFF, RISK_LEAD])
def test_who_may_read_attestations_in_the_admin(client_for, signing_pair, tenant, kind):
    attestation = attest(tenant)
    client = client_for(kind)
    response = client.get(f"{ATTESTATIONS}{attestation.pk}/change/")
    if kind == ANONYMOUS:
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    elif kind == STAFF:
        assert response.status_code == 403
    else:  # the role groups may view attestations, not the signing pairs
        assert response.status_code == 200 and str(attestation.decision_id) in response.content.decode()
        assert client.get(PAIRS).status_code == 403
