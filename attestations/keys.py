"""Signing key pairs: which pair signs, which keys verify, rotation and the verifier-kit export.

A pair from the environment (AEGIS_ATTESTATION_ED25519_SEED + AEGIS_ATTESTATION_MLDSA65_SEED)
wins: it signs, and every stored pair then only verifies. Otherwise the newest active stored
pair signs. Each pair that ever signed keeps a row (an environment pair with its public keys
only), so `GET /attestations/keys`, the server's verifier and the audit verification know
every key an envelope may name.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from governance.api.errors import ApiError
from governance.telemetry import Event, emit

from .envelope import (CONTEXT, ED25519_PREFIX, MLDSA65_PREFIX, PAYLOAD_TYPE, ErrorClass, KeyRing, PublicPair,
                       SigningPair, fingerprint)
from .models import SigningKeyPair

NONCE_RISK_CLASSES = ("high", "critical")
NO_KEYS_MESSAGE = ("No attestation signing keys are configured: run `manage.py aegis_attestation_keys generate`, "
                   "or set AEGIS_ATTESTATION_ED25519_SEED and AEGIS_ATTESTATION_MLDSA65_SEED")


def provider_unavailable() -> ApiError:
    return ApiError(503, "AttestationProviderUnavailable", NO_KEYS_MESSAGE)


@lru_cache(maxsize=8)
def _pair(ed25519_seed: bytes, mldsa65_seed: bytes) -> SigningPair:
    """One SigningPair per seeds in the process, so its expanded keys are built once."""
    return SigningPair(ed25519_seed, mldsa65_seed)


def environment_pair() -> SigningPair | None:
    """The pair the environment configures (settings checked both seeds at start-up)."""
    ed, ml = settings.AEGIS_ATTESTATION_ED25519_SEED, settings.AEGIS_ATTESTATION_MLDSA65_SEED
    if not (ed and ml):
        return None
    return _pair(base64.b64decode(ed), base64.b64decode(ml))


def _row_for(public: PublicPair, **fields) -> SigningKeyPair:
    return SigningKeyPair(ed25519_fingerprint=fingerprint(public.ed25519), ed25519_public=public.ed25519,
                          mldsa65_public=public.mldsa65, **fields)


def signer() -> tuple[SigningKeyPair, SigningPair]:
    """The pair that signs now, with its row; raises the 503 when there is none."""
    pair = environment_pair()
    if pair is not None:
        public = pair.public()
        row = SigningKeyPair.objects.filter(ed25519_fingerprint=fingerprint(public.ed25519)).first()
        if row is None:
            try:
                with transaction.atomic():
                    row = _row_for(public)
                    row.save()
            except IntegrityError:  # another request recorded it first
                row = SigningKeyPair.objects.get(ed25519_fingerprint=fingerprint(public.ed25519))
        return row, pair
    row = SigningKeyPair.objects.filter(status=SigningKeyPair.Status.ACTIVE, ed25519_seed__isnull=False).first()
    if row is None:
        raise provider_unavailable()
    return row, _pair(bytes(row.ed25519_seed), bytes(row.mldsa65_seed))


def status_of(row: SigningKeyPair, environment: PublicPair | None) -> str:
    """active or retired as callers see it: with an environment pair, only that one is active;
    without one, a pair the environment once provided (no stored seeds) cannot sign any more."""
    if environment is not None:
        return "active" if bytes(row.ed25519_public) == environment.ed25519 else "retired"
    return "retired" if row.from_environment else row.status


def keyring() -> KeyRing:
    """Every public key an envelope of this server may name (raises the 503 when none)."""
    pairs = [row.public() for row in SigningKeyPair.objects.all()]
    environment = environment_pair()
    if environment is not None:
        pairs.append(environment.public())
    if not pairs:
        raise provider_unavailable()
    return KeyRing(pairs)


def public_keys() -> list[dict[str, Any]]:
    """`GET /attestations/keys`: each public key, newest pair first, Ed25519 before ML-DSA-65."""
    environment = environment_pair()
    environment_public = environment.public() if environment is not None else None
    rows = list(SigningKeyPair.objects.all())
    pairs = [(row.public(), status_of(row, environment_public), row.created_at) for row in rows]
    if environment_public is not None and not any(p == environment_public for p, _, _ in pairs):
        pairs.insert(0, (environment_public, "active", None))
    listed = []
    for public, status, created_at in pairs:
        for keyid, algorithm, raw in ((public.ed25519_keyid, "ed25519", public.ed25519),
                                      (public.mldsa65_keyid, "ml-dsa-65", public.mldsa65)):
            listed.append({"keyid": keyid, "algorithm": algorithm, "public_key": base64.b64encode(raw).decode("ascii"),
                           "fingerprint_sha256": fingerprint(raw), "status": status,
                           "created_at": created_at.isoformat().replace("+00:00", "Z") if created_at else None})
    return listed


def generate_pair(*, actor: str = "aegis_attestation_keys") -> SigningKeyPair:
    """A new stored pair that signs from now on; the previous active pairs are retired and
    keep verifying."""
    pair = SigningPair.generate()
    now = timezone.now()
    public = pair.public()
    with transaction.atomic():
        retired = [fingerprint(bytes(key)) for key in SigningKeyPair.objects.select_for_update().filter(
            status=SigningKeyPair.Status.ACTIVE).values_list("ed25519_public", flat=True)]
        SigningKeyPair.objects.filter(status=SigningKeyPair.Status.ACTIVE).update(
            status=SigningKeyPair.Status.RETIRED, retired_at=now)
        row = _row_for(public, ed25519_seed=pair.ed25519_seed, mldsa65_seed=pair.mldsa65_seed, created_at=now)
        row.save()
        emit(Event.ATTESTATION_PAIR_GENERATED, actor=actor, subject=public.ed25519_keyid,
             data={"ed25519_keyid": public.ed25519_keyid, "mldsa65_keyid": public.mldsa65_keyid,
                   "retired_ed25519_fingerprints": retired})
    return row


# --- the verifier kit's files ------------------------------------------------------------

ED25519_PEM = "ed25519-public.pem"
MLDSA65_BIN = "mldsa65-public.bin"
POLICY_FILE = "verifier-policy.yaml"


@dataclass(frozen=True)
class ExportedKit:
    directory: Path
    public: PublicPair
    policy_version: str


def verifier_policy(public: PublicPair, policy_version: str) -> dict[str, Any]:
    """The verifier kit's policy for this server's signing pair (its layout and names)."""
    ttl = settings.AEGIS_ATTESTATION_TTL_HOURS
    return {
        "policy_version": policy_version,
        "crypto": {
            "required_algorithms": ["ed25519", "ml-dsa-65"],
            "verification_rule": "AND-of-2",
            "context_string": CONTEXT.decode("ascii"),
            "payload_type": PAYLOAD_TYPE,
            "ed25519_keyid_prefix": ED25519_PREFIX,
            "mldsa65_keyid_prefix": MLDSA65_PREFIX,
            "ed25519_public_size_bytes": len(public.ed25519),
            "mldsa65_public_size_bytes": len(public.mldsa65),
            "ed25519_binding": "hash_and_sign",
            "mldsa65_binding": "prefix_hash_sign",
        },
        "required_keyids": {"ed25519": fingerprint(public.ed25519), "mldsa65": fingerprint(public.mldsa65)},
        "ttl_per_risk_class": {risk_class: f"{hours}h" for risk_class, hours in ttl.items()},
        "nonce_required_for_risk_classes": list(NONCE_RISK_CLASSES),
        "nonce_byte_length": 32,
        "fail_closed_on": [error.policy_name for error in ErrorClass],
        "policy_version_compatibility": "strict-equal",
    }


def export_kit(directory: Path, *, policy_version: str) -> ExportedKit:
    """Write the signing pair's public keys and a verifier policy into `directory`, in the
    layout the verifier kit reads (PEM Ed25519 key, raw ML-DSA-65 key, policy YAML)."""
    row, pair = signer()
    public = row.public()
    directory.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PublicKey.from_public_bytes(public.ed25519).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (directory / ED25519_PEM).write_bytes(pem)
    (directory / MLDSA65_BIN).write_bytes(public.mldsa65)
    policy = verifier_policy(public, policy_version)
    header = ("# Verifier policy for this AEGIS server's attestation signing pair, written by\n"
              "# `manage.py aegis_attestation_keys export`. required_keyids are the SHA-256 of the raw\n"
              "# public keys next to this file; policy_version must equal what pipelines attest with.\n")
    (directory / POLICY_FILE).write_text(header + yaml.safe_dump(policy, sort_keys=False), encoding="utf-8")
    return ExportedKit(directory, public, policy_version)
