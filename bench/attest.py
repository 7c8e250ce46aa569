"""Attestation benchmark: `.venv/bin/python bench/attest.py [--requests N] [--database-url URL]`.

Measures, in one run, medians of single-threaded calls:

  1. the signature pair alone (attestations.envelope, no Django): one Ed25519 + one ML-DSA-65
     signature over the canonical statement, and verifying both (`verify_envelope`);
  2. `POST /attest` and `POST /attestations/verify` through the whole Django stack (test
     client: middleware, DRF, API-key auth, a fresh Idempotency-Key and decision_id per
     request; each attest commits its row, its idempotency record and its telemetry event)
     on a throwaway database: SQLite in a temp dir by default, or `--database-url`.

Prints one table: per operation the median and p95 latency and the throughput that median
gives (1 / median). Nothing listens on the network. Exit status 0.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_support import setup_django  # noqa: E402

CRYPTO_RUNS = 300


def attest_body(expires_at: str) -> dict:
    return {
        "decision_id": str(uuid.uuid4()), "subject_digest_sha256": uuid.uuid4().hex * 2, "environment": "production",
        "risk_class": "high", "policy_version": "1.0.0", "repository": "acme/payments",
        "workflow_ref": ".github/workflows/deploy.yml@refs/heads/main", "run_id": "9182736450", "run_attempt": 1,
        "gate_pass_states": {"risk": "pass", "profit": "pass", "novelty": "pass", "complexity": "pass",
                             "quality": "pass", "utility": "skipped"},
        "builder_id": "https://github.com/acme/payments/actions", "expires_at": expires_at,
        "external_parameters": {"ref": "refs/heads/main", "sha": "4f1c2d9e"},
    }


def timed(function, runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return seconds


def row(name: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    median = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"| {name} | {len(seconds)} | {median * 1000:.3f} ms | {p95 * 1000:.3f} ms | {1 / median:,.0f}/s |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="HTTP requests per endpoint (default 400)")
    parser.add_argument("--database-url", help="a PostgreSQL database to use (default: SQLite in a temp dir)")
    args = parser.parse_args()

    from attestations.envelope import SigningPair, verify_envelope

    pair = SigningPair.generate()
    public = pair.public()
    expires = datetime.now(timezone.utc) + timedelta(hours=2)
    statement = {"_type": "https://in-toto.io/Statement/v1",
                 "subject": [{"name": "acme/payments", "digest": {"sha256": "ab" * 32}}],
                 "predicateType": "https://aegis.undercurrentholdings.com/attestation/v1",
                 "predicate": {"governance": {"environment": "production", "expires_at": expires.isoformat()}}}
    envelope, _ = pair.sign(statement)
    results = [row("sign: Ed25519 + ML-DSA-65 (canonical JSON, PAE, both signatures)",
                   timed(lambda: pair.sign(statement), CRYPTO_RUNS))]
    results.append(row("verify: both signatures and every check", timed(
        lambda: verify_envelope(envelope, expected_digest="ab" * 32, expected_environment="production",
                                keys=public), CRYPTO_RUNS)))

    tmp = Path(tempfile.mkdtemp(prefix="aegis-bench-attest-"))
    try:
        setup_django(args.database_url, tmp, ALLOWED_HOSTS="testserver")
        from django.test import Client

        from attestations import keys
        from governance import services
        from governance.models import Tier

        keys.generate_pair()
        tier = Tier.objects.order_by("-monthly_evaluations").first()
        tier.rate_per_minute = 10_000_000
        tier.save()
        _, _, plaintext = services.create_customer("Bench", tier=tier)
        client = Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
        expires_at = (datetime.now(timezone.utc) + timedelta(hours=3)).isoformat()
        signed = []

        def attest():
            body = attest_body(expires_at)
            response = client.post("/attest", json.dumps(body), content_type="application/json",
                                   HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
            assert response.status_code == 201, response.content
            signed.append((response.json()["envelope"], body["subject_digest_sha256"]))

        results.append(row("POST /attest (HTTP stack, committed)", timed(attest, args.requests)))
        envelope, digest = signed[-1]
        verify_body = json.dumps({"envelope": envelope, "expected_digest": digest,
                                  "expected_environment": "production"})

        def verify():
            response = client.post("/attestations/verify", verify_body, content_type="application/json")
            assert response.status_code == 200 and response.json()["valid"], response.content

        results.append(row("POST /attestations/verify (HTTP stack)", timed(verify, args.requests)))
        from django.db import connection

        database = connection.vendor
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nAttestation benchmark ({database}; crypto {CRYPTO_RUNS} runs, HTTP {args.requests} requests each)\n")
    print("| operation | runs | median | p95 | per second (1/median) |")
    print("|---|---|---|---|---|")
    print("\n".join(results))


if __name__ == "__main__":
    main()
