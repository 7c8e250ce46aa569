"""Signing pairs: `manage.py aegis_attestation_keys generate|list|export`, rotation (a new
pair signs, envelopes of the old one keep verifying), a pair from the environment, the
verifier kit's files loaded the way the kit loads them, and the settings' seed checks."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from aegis import AttestationVerifyKey, verify_attestation_locally
from aegis.types import DSSEEnvelope
from attestation_http import ARTIFACT, Pipeline
from cryptography.hazmat.primitives import serialization
from django.core.management import CommandError, call_command
from django.test.utils import override_settings

from attestations.envelope import ErrorClass, SigningPair, fingerprint
from attestations.models import Attestation, SigningKeyPair
from governance.models import TelemetryEvent

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("aegis_attestation_keys", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def keyids(envelope) -> list[str]:
    return [entry["keyid"] for entry in envelope["signatures"]]


def pair_keyids(row: SigningKeyPair) -> list[str]:
    public = row.public()
    return [public.ed25519_keyid, public.mldsa65_keyid]


def listed_by_status(keys: list[dict]) -> dict[str, list[str]]:
    by_status: dict[str, list[str]] = {}
    for key in keys:
        by_status.setdefault(key["status"], []).append(key["keyid"])
    return by_status


def test_generating_again_rotates_the_pair_and_old_envelopes_keep_verifying():
    pipeline = Pipeline()
    assert "New signing pair" in run("generate")
    old = SigningKeyPair.objects.get()
    old_envelope = pipeline.attest()
    assert keyids(old_envelope) == pair_keyids(old)

    run("generate")
    new = SigningKeyPair.objects.exclude(pk=old.pk).get()
    new_envelope = pipeline.attest()

    assert keyids(new_envelope) == pair_keyids(new)
    assert Attestation.objects.filter(signing_pair=new).count() == 1
    for envelope in (old_envelope, new_envelope):
        answer = pipeline.verify(envelope).json()
        assert (answer["valid"], answer["error_class"]) == (True, None)
    old.refresh_from_db()
    assert (old.status, new.status) == ("retired", "active") and old.retired_at is not None
    generated = TelemetryEvent.objects.filter(name="attestation.pair_generated").order_by("id")
    assert [event.subject for event in generated] == [pair_keyids(old)[0], pair_keyids(new)[0]]
    assert generated.last().data["retired_ed25519_fingerprints"] == [old.ed25519_fingerprint]
    listed = pipeline.public_keys()
    assert listed_by_status(listed) == {"active": pair_keyids(new), "retired": pair_keyids(old)}
    assert [key["algorithm"] for key in listed] == ["ed25519", "ml-dsa-65"] * 2
    for key in listed:
        raw = base64.b64decode(key["public_key"])
        assert key["fingerprint_sha256"] == hashlib.sha256(raw).hexdigest() == key["keyid"].split(":", 1)[1]
        assert len(raw) == {"ed25519": 32, "ml-dsa-65": 1952}[key["algorithm"]]
        assert datetime.fromisoformat(key["created_at"].replace("Z", "+00:00")).tzinfo is not None


def test_if_none_generates_only_the_first_pair():
    assert "New signing pair" in run("generate", "--if-none")
    first = SigningKeyPair.objects.get()
    assert "nothing generated" in run("generate", "--if-none")
    assert list(SigningKeyPair.objects.all()) == [first]


def test_list_shows_every_key_newest_pair_first():
    assert "No signing pair yet" in run("list")
    run("generate")
    run("generate")
    new, old = SigningKeyPair.objects.all()
    lines = run("list").splitlines()
    assert len(lines) == 4
    assert [line.split()[:3] for line in lines] == [
        ["active", "ed25519", pair_keyids(new)[0]], ["active", "ml-dsa-65", pair_keyids(new)[1]],
        ["retired", "ed25519", pair_keyids(old)[0]], ["retired", "ml-dsa-65", pair_keyids(old)[1]]]


def printed_env() -> dict[str, str]:
    """`generate --print-env`'s two lines as environment variables."""
    return dict(line.split("=", 1) for line in run("generate", "--print-env").splitlines())


def test_print_env_prints_a_pair_that_signs_from_the_environment():
    run("generate")
    stored = SigningKeyPair.objects.get()
    env = printed_env()
    assert set(env) == {"AEGIS_ATTESTATION_ED25519_SEED", "AEGIS_ATTESTATION_MLDSA65_SEED"}
    assert SigningKeyPair.objects.count() == 1  # --print-env stores nothing
    pipeline = Pipeline()

    with override_settings(**env):
        envelopes = [pipeline.attest() for _ in range(3)]
        recorded = SigningKeyPair.objects.exclude(pk=stored.pk)
        assert recorded.count() == 1, "the environment's pair is recorded once"
        env_row = recorded.get()
        assert env_row.from_environment and env_row.ed25519_seed is None and env_row.mldsa65_seed is None
        assert all(keyids(envelope) == pair_keyids(env_row) for envelope in envelopes)
        assert set(Attestation.objects.values_list("signing_pair", flat=True)) == {env_row.pk}
        assert listed_by_status(pipeline.public_keys()) == {"active": pair_keyids(env_row),
                                                            "retired": pair_keyids(stored)}
        assert pipeline.verify(envelopes[0]).json()["valid"] is True
        printed = SigningPair(base64.b64decode(env["AEGIS_ATTESTATION_ED25519_SEED"]),
                              base64.b64decode(env["AEGIS_ATTESTATION_MLDSA65_SEED"])).public()
        assert pair_keyids(env_row) == [printed.ed25519_keyid, printed.mldsa65_keyid]

    # Without the environment the stored pair signs again; the environment's envelopes still verify.
    assert keyids(pipeline.attest()) == pair_keyids(stored)
    assert pipeline.verify(envelopes[0]).json()["valid"] is True
    assert listed_by_status(pipeline.public_keys()) == {"active": pair_keyids(stored),
                                                        "retired": pair_keyids(env_row)}


# --- the verifier kit ------------------------------------------------------------------------

def load_kit(directory) -> tuple[dict, bytes, bytes]:
    """The kit's way: the Ed25519 PEM to raw bytes, the ML-DSA-65 key raw, the policy YAML."""
    pem = serialization.load_pem_public_key((directory / "ed25519-public.pem").read_bytes())
    ed25519 = pem.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    mldsa65 = (directory / "mldsa65-public.bin").read_bytes()
    policy = yaml.safe_load((directory / "verifier-policy.yaml").read_text(encoding="utf-8"))
    return policy, ed25519, mldsa65


def test_the_exported_kit_pins_the_signing_pair_and_verifies_its_envelopes_offline(tmp_path):
    run("generate")
    run("generate")
    signing = SigningKeyPair.objects.filter(status="active").get()
    envelope = Pipeline().attest(risk_class="high", expires_at=(datetime.now(timezone.utc)
                                                               + timedelta(hours=2)).isoformat())
    kit = tmp_path / "kit"

    out = run("export", str(kit), "--policy-version", "2.1.0")

    assert "policy_version 2.1.0" in out and fingerprint(signing.public().ed25519) in out
    assert sorted(p.name for p in kit.iterdir()) == ["ed25519-public.pem", "mldsa65-public.bin",
                                                     "verifier-policy.yaml"]
    policy, ed25519, mldsa65 = load_kit(kit)
    assert len(ed25519) == 32 and len(mldsa65) == 1952
    assert (ed25519, mldsa65) == (signing.public().ed25519, signing.public().mldsa65)
    assert policy["required_keyids"] == {"ed25519": hashlib.sha256(ed25519).hexdigest(),
                                         "mldsa65": hashlib.sha256(mldsa65).hexdigest()}
    assert policy["policy_version"] == "2.1.0"
    assert policy["ttl_per_risk_class"] == {"low": "24h", "medium": "24h", "high": "4h", "critical": "4h"}
    assert policy["nonce_required_for_risk_classes"] == ["high", "critical"]
    assert policy["fail_closed_on"] == [error.policy_name for error in ErrorClass]
    assert len(policy["fail_closed_on"]) == 15
    assert all(name == name.lower() and " " not in name for name in policy["fail_closed_on"])
    assert policy["crypto"]["verification_rule"] == "AND-of-2"

    valid, error_class = verify_attestation_locally(
        envelope=DSSEEnvelope.from_response(envelope), expected_digest=ARTIFACT, expected_environment="production",
        keys=AttestationVerifyKey(ed25519_public=ed25519, mldsa65_public=mldsa65))
    assert (valid, error_class) == (True, None)
    assert verify_attestation_locally(
        envelope=DSSEEnvelope.from_response(envelope), expected_digest=ARTIFACT, expected_environment="staging",
        keys=AttestationVerifyKey(ed25519, mldsa65)) == (False, "AttestationEnvironmentMismatch")


def test_the_policy_takes_the_ttl_settings(tmp_path):
    run("generate")
    with override_settings(AEGIS_ATTESTATION_TTL_HOURS={"low": 12, "medium": 8, "high": 2, "critical": 1}):
        run("export", str(tmp_path))
    policy, _, _ = load_kit(tmp_path)
    assert policy["ttl_per_risk_class"] == {"low": "12h", "medium": "8h", "high": "2h", "critical": "1h"}
    assert policy["policy_version"] == "1.0.0"


@pytest.mark.parametrize("arguments, message", [
    (["--policy-version", ""], "--policy-version must be a version such as 1.0.0, got ''"),
    (["--policy-version", "1.0 beta"], "--policy-version must be a version such as 1.0.0, got '1.0 beta'"),
    (["--policy-version", "../1.0"], "--policy-version must be a version"),
], ids=["empty", "space", "path"])
def test_export_refuses_a_bad_policy_version(tmp_path, arguments, message):
    run("generate")
    with pytest.raises(CommandError, match=message.replace(".", r"\.").replace("(", r"\(")):
        run("export", str(tmp_path / "kit"), *arguments)
    assert not (tmp_path / "kit").exists()


def test_export_refuses_a_file_in_place_of_the_directory(tmp_path):
    run("generate")
    existing = tmp_path / "kit"
    existing.write_text("not a directory")
    with pytest.raises(CommandError, match="exists and is not a directory"):
        run("export", str(existing))
    assert existing.read_text() == "not a directory"


def test_export_that_cannot_write_a_file_says_where(tmp_path):
    run("generate")
    (tmp_path / "ed25519-public.pem").mkdir()
    with pytest.raises(CommandError, match=f"cannot write to {tmp_path}: Is a directory"):
        run("export", str(tmp_path))


def test_export_without_a_pair_says_how_to_make_one(tmp_path):
    with pytest.raises(CommandError, match="No attestation signing keys are configured: run `manage.py "
                                           "aegis_attestation_keys generate`"):
        run("export", str(tmp_path / "kit"))
    assert not (tmp_path / "kit").exists()


# --- the settings' checks of the environment's seeds ---------------------------------------

SEED = base64.b64encode(bytes(range(32))).decode()


def settings_with(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_ATTESTATION_")}
    return subprocess.run([sys.executable, "-c", "import aegis_site.settings"], capture_output=True, text=True,
                          env={**clean, "SECRET_KEY": "x" * 50, **env}, timeout=60)


@pytest.mark.parametrize("env, message", [
    ({"AEGIS_ATTESTATION_ED25519_SEED": SEED}, "Set both AEGIS_ATTESTATION_ED25519_SEED and "
                                               "AEGIS_ATTESTATION_MLDSA65_SEED"),
    ({"AEGIS_ATTESTATION_MLDSA65_SEED": SEED}, "Set both AEGIS_ATTESTATION_ED25519_SEED and "
                                               "AEGIS_ATTESTATION_MLDSA65_SEED"),
    ({"AEGIS_ATTESTATION_ED25519_SEED": "not base64!", "AEGIS_ATTESTATION_MLDSA65_SEED": SEED},
     "AEGIS_ATTESTATION_ED25519_SEED must be the base64 of a 32-byte private seed"),
    ({"AEGIS_ATTESTATION_ED25519_SEED": SEED, "AEGIS_ATTESTATION_MLDSA65_SEED": base64.b64encode(b"x" * 31).decode()},
     "AEGIS_ATTESTATION_MLDSA65_SEED must be the base64 of a 32-byte private seed"),
], ids=["only-ed25519", "only-mldsa65", "not-base64", "31-bytes"])
def test_the_settings_refuse_a_malformed_or_lone_seed(env, message):
    result = settings_with(**env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr
    assert SEED not in result.stderr  # the secret is not echoed


def test_the_settings_accept_the_pair_print_env_prints():
    result = settings_with(**printed_env())
    assert result.returncode == 0, result.stderr
