"""Test-only stand-in for liboqs-python's `oqs`, whose C library no package index here
provides. The official client's offline verifier (aegis._verify_local) calls
`oqs.Signature("ML-DSA-65").verify(message, signature, public_key)` inside a `with`; this
answers it with `cryptography`'s ML-DSA-65 (FIPS 204, empty context), so the client's code
runs unmodified against our envelopes. Only ML-DSA-65 verification exists here."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PublicKey


class Signature:
    def __init__(self, algorithm: str):
        if algorithm != "ML-DSA-65":
            raise NotImplementedError(f"this test shim verifies ML-DSA-65 only, not {algorithm}")

    def __enter__(self) -> "Signature":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def verify(self, message: bytes, signature: bytes, public_key: bytes) -> bool:
        try:
            MLDSA65PublicKey.from_public_bytes(public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True
