"""Encryption benchmark: `.venv/bin/python bench/encryption.py [--requests N] [--rounds R]
[--workflows W] [--database-url URL] [--keep]`.

Measures, in one run on one throwaway database (SQLite in a temp dir by default, DEBUG=1,
`manage.py migrate`; nothing listens on the network):

  1. `POST /evaluate`, one request at a time, through the whole Django stack (test client: middleware, DRF, auth by
     API key, a fresh Idempotency-Key per request, one transaction writing the decision,
     its telemetry event and the idempotency record) with PII encryption on, and with it
     off — the same build, with the cipher of `governance.fields.EncryptedField` swapped for
     an identity for the "off" requests (bench-only; production has no switch). The modes
     alternate every 10 requests so machine noise hits both alike; prints each mode's median
     latency and mean throughput, and the throughput lost: the median over adjacent on/off
     block pairs of their time ratio (robust to the fsync stalls a mean picks up)
                                                                    target ≤ 10 % slower
  2. `aegis_rotate_keys` speed (measured first, on data written with encryption on):
     W proposal workflows (each with its transitions and checkpoints) plus N decisions
     with their telemetry and idempotency records, written under key A, rotated
     to FERNET_KEYS = [B, A] with the default batch size: rows/s and values/s; then the same
     pass again, with nothing left to rotate (what a resumed or repeated run costs), and
     `--check`.

Exit status 0 whether or not the target is met.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from api import EVALUATE_BODY  # the official client's request, as bench/api.py sends it
from bench_support import setup_django

TARGET_SLOWDOWN = 0.10
BLOCK = 10
KEY_A = "bench-encryption-key-A"
KEY_B = "bench-encryption-key-B"


class IdentityCipher:
    """Stands in for Fernet in the "encryption off" rounds: stores the value_type-tagged
    plaintext as is."""

    @staticmethod
    def encrypt(data: bytes) -> bytes:
        return data

    @staticmethod
    def decrypt(data: bytes) -> bytes:
        return data


class EncryptionSwitch:
    def __init__(self):
        from governance.fields import EncryptedField

        self.field_class = EncryptedField
        self.real = EncryptedField.__dict__["fernet"]

    def set(self, on: bool) -> None:
        self.field_class.fernet = self.real if on else property(lambda self: IdentityCipher)


def make_client():
    from django.test import Client

    from governance import services
    from governance.models import Tier

    tier, _ = Tier.objects.update_or_create(name="bench", defaults=dict(
        display_name="Bench (unlimited)", monthly_evaluations=2_000_000_000, rate_per_minute=2_000_000_000,
        max_keys=10, features=["evaluate"]))
    _, _, key = services.create_customer("Encryption bench", tier=tier)
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_HOST="127.0.0.1")


def evaluate_once(client) -> float:
    """Seconds for one POST /evaluate."""
    started = time.perf_counter()
    response = client.post("/evaluate", EVALUATE_BODY, content_type="application/json",
                           HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"/evaluate answered {response.status_code}: {response.content[:300]!r}")
    return elapsed


def compare(client, switch, requests: int, rounds: int) -> tuple[dict[bool, list[float]], list[float]]:
    """Per-request seconds with encryption on and off, and the throughput ratio off/on of
    each pair of adjacent blocks. The modes alternate every BLOCK requests (which one goes
    first alternating too), so load spikes, a growing table and caches hit both alike; the
    median of the paired ratios then ignores the blocks a spike landed in."""
    times: dict[bool, list[float]] = {True: [], False: []}
    ratios: list[float] = []
    blocks = max(1, requests * rounds // BLOCK)
    for block in range(blocks):
        spent = {}
        for on in ((True, False) if block % 2 == 0 else (False, True)):
            switch.set(on)
            block_times = [evaluate_once(client) for _ in range(BLOCK)]
            times[on].extend(block_times)
            spent[on] = sum(block_times)
        ratios.append(spent[True] / spent[False])
    switch.set(True)
    return times, ratios


def populate_workflows(count: int) -> None:
    from governance.engine.inputs import parse_proposal
    from workflows import services
    from workflows.machines import Actor

    actor = Actor("bench_rita")
    for i in range(count):
        services.submit_proposal(parse_proposal({"proposal_summary": f"bench proposal {i}",
                                                 "novelty_score": 0.95 if i % 3 == 0 else 0.2,
                                                 "agent_id": f"agent-{i % 17}"}), actor=actor)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="POST /evaluate calls per round and mode (default 300)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--workflows", type=int, default=3000, help="proposal workflows to rotate (default 3000)")
    parser.add_argument("--database-url", help="a throwaway database to use instead of a temp SQLite file")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="aegis-bench-encryption-"))
    try:
        setup_django(args.database_url, tmp, FERNET_KEYS=KEY_A)
        from django.conf import settings
        from django.db import connection
        from django.test import override_settings

        from governance.key_rotation import rotate_keys

        switch = EncryptionSwitch()
        client = make_client()
        switch.set(True)
        for _ in range(30):  # warm-up: imports, caches, the active configuration
            evaluate_once(client)

        # Rotation first, while every stored value is a real token (the "off" requests
        # below store plaintext, which no rotation could read).
        for _ in range(args.requests):
            evaluate_once(client)
        started = time.perf_counter()
        populate_workflows(args.workflows)
        populate_seconds = time.perf_counter() - started
        with override_settings(FERNET_KEYS=[KEY_B, *settings.FERNET_KEYS]):
            first = rotate_keys()
            again = rotate_keys()
            check = rotate_keys(check_only=True)

        with override_settings(FERNET_KEYS=[KEY_B]):  # the old key removed, as after a rotation
            times, ratios = compare(client, switch, args.requests, args.rounds)
        on_ms, off_ms = (statistics.median(times[mode]) * 1000 for mode in (True, False))
        on_rate, off_rate = (len(times[mode]) / sum(times[mode]) for mode in (True, False))
        slowdown = 1 - 1 / statistics.median(ratios)  # throughput lost, from paired blocks
        quartiles = statistics.quantiles(ratios, n=4)

        print()
        print(f"Encryption benchmark — {connection.vendor}, {len(times[True])} + {len(times[False])} sequential "
              f"POST /evaluate (Django test client, full stack), on/off alternating every {BLOCK} requests")
        print(f"{'measure':<46} {'median latency':>15} {'mean throughput':>16}")
        print(f"{'/evaluate, encryption on':<46} {on_ms:>12.2f} ms {on_rate:>12.1f} r/s")
        print(f"{'/evaluate, encryption off (identity cipher)':<46} {off_ms:>12.2f} ms {off_rate:>12.1f} r/s")
        verdict = "met" if slowdown <= TARGET_SLOWDOWN else "NOT met"
        print(f"throughput lost with encryption (target ≤ 10 %): {slowdown:.1%} {verdict} — median over "
              f"{len(ratios)} paired blocks (quartiles {1 - 1 / quartiles[0]:.1%} … {1 - 1 / quartiles[2]:.1%}); "
              f"by median latency {on_ms / off_ms - 1:.1%}, by mean throughput {1 - on_rate / off_rate:.1%}")
        print()
        print(f"Key rotation A → B over {first.rows:,} rows ({args.workflows:,} workflows written in "
              f"{populate_seconds:.1f} s, plus decisions, telemetry, idempotency records)")
        for label, result in (("first pass (re-encrypts)", first), ("second pass (nothing left)", again),
                              ("--check", check)):
            values = result.reencrypted
            print(f"{label:<28} {result.seconds:>7.2f} s {result.rows / result.seconds:>10,.0f} rows/s "
                  f"{values:>9,} values re-encrypted" + ("" if label != "--check" else " (counted)"))
        for table in first.tables:
            print(f"    {table.label:<36} {table.rows:>8,} rows {table.reencrypted:>9,} values")
        return 0
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
