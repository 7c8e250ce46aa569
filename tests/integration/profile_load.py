"""One load process of the production-profile test: the unmodified official client
(`aegis-governance`) calling evaluate() in a loop, as an integration does, until a deadline.

  python profile_load.py NAME BASE_URL API_KEY START_AT SECONDS OUTPUT

START_AT is a time.monotonic() value (one clock for every process on Linux), so that all
load processes start together and their timestamps compare with the test's kill times.
Each request carries its own Idempotency-Key; a request that fails is retried once with the
same key (what the key is for), and both outcomes are recorded. The client does not retry
by itself (max_retries=0): every error the server gives is seen. OUTPUT gets one JSON line
per request.
"""

from __future__ import annotations

import json
import sys
import time

from aegis import Aegis

RETRY_PAUSE = 0.5  # seconds before the one retry of a failed request


def evaluate(client: Aegis, name: str, seq: int) -> dict:
    started = time.monotonic()
    try:
        decision = client.evaluate(proposal_summary=f"Profile {name}: change {seq}", agent_id=name,
                                   idempotency_key=f"profile-{name}-{seq}")
    except Exception as exc:  # any failure is the result being measured
        return {"started": started, "ended": time.monotonic(), "error": f"{type(exc).__name__}: {exc}"}
    return {"started": started, "ended": time.monotonic(), "decision_id": decision.decision_id,
            "status": decision.status}


def main(name: str, base_url: str, api_key: str, start_at: str, seconds: str, output: str) -> None:
    client = Aegis(api_key=api_key, base_url=base_url, max_retries=0, timeout=30.0)
    time.sleep(max(0.0, float(start_at) - time.monotonic()))
    deadline = float(start_at) + float(seconds)
    records, seq = [], 0
    while time.monotonic() < deadline:
        seq += 1
        record = {"seq": seq, **evaluate(client, name, seq)}
        if "error" in record:
            time.sleep(RETRY_PAUSE)
            record["retry"] = evaluate(client, name, seq)
        records.append(record)
    client.close()
    with open(output, "w", encoding="utf-8") as out:
        out.writelines(json.dumps(record) + "\n" for record in records)


if __name__ == "__main__":
    main(*sys.argv[1:])
