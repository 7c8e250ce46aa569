"""The table bench/api.py prints: per database and concurrency the medians of both
endpoints, the ratio and the p99 against the targets; then per database what one
/evaluate does in process (SQL, service time, stages, optional cProfile)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

TARGET_RATIO = 0.40
TARGET_P99_MS = {4: 50.0, 16: 150.0}  # by concurrency; other concurrencies are reported only
DATABASE_LABELS = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


@dataclass
class Run:
    """One database's results: {concurrency: {endpoint: [round results]}} and the in-process part."""

    database: str
    loads: dict[int, dict[str, list[dict]]]
    info: dict
    generator: str
    source: str


def medians(rounds: list[dict]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rounds) for k in ("rps", "p50", "p99")}


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def print_report(args, runs: list[Run]) -> None:
    worker = args.worker_class + (f" ×{args.threads} threads" if args.worker_class == "gthread" else "")
    print()
    print(f"AEGIS HTTP benchmark — gunicorn {args.workers} workers ({worker}); code: {runs[0].source}")
    print(f"outcome: {args.outcome}; generator {runs[0].generator}; {args.rounds} alternating rounds × "
          f"{args.seconds} s per endpoint, medians; Idempotency-Key per /evaluate request: "
          f"{'no' if args.no_idempotency_key else 'yes (unique)'}")
    print(f"targets: /evaluate ≥ {TARGET_RATIO:.0%} of trivial's req/s; /evaluate p99 ≤ "
          + ", ".join(f"{ms:.0f} ms at c={c}" for c, ms in TARGET_P99_MS.items()))
    print()
    header = (f"{'database':<12}{'c':>4}{'trivial req/s':>15}{'evaluate req/s':>16}{'ratio':>8}  {'ratio target':<14}"
              f"{'trivial p99':>12}{'evaluate p50':>14}{'evaluate p99':>14}  {'p99 target':<10}")
    print(header)
    print("-" * len(header))
    warnings = []
    for run in runs:
        for concurrency, results in run.loads.items():
            trivial, evaluate = medians(results["trivial"]), medians(results["evaluate"])
            ratio = evaluate["rps"] / trivial["rps"]
            p99_target = TARGET_P99_MS.get(concurrency)
            p99_verdict = verdict(evaluate["p99"] <= p99_target) if p99_target else "-"
            print(f"{DATABASE_LABELS[run.database]:<12}{concurrency:>4}{trivial['rps']:>15.0f}"
                  f"{evaluate['rps']:>16.0f}{ratio:>8.1%}  {verdict(ratio >= TARGET_RATIO):<14}"
                  f"{trivial['p99']:>10.2f}ms{evaluate['p50']:>12.2f}ms{evaluate['p99']:>12.2f}ms  {p99_verdict:<10}")
            for name, rounds in results.items():
                bad = sum(r["non2xx"] for r in rounds)
                errors = sum(r["socket_errors"] for r in rounds)
                if bad or errors:
                    warnings.append(f"WARNING: {run.database} c={concurrency} {name}: {bad} non-2xx answers and "
                                    f"{errors} socket errors of {sum(r['requests'] for r in rounds)} requests "
                                    "(included above)")
    print()
    print("per-round req/s (trivial | evaluate):")
    for run in runs:
        for concurrency, results in run.loads.items():
            print(f"    {DATABASE_LABELS[run.database]:<11} c={concurrency:<3} "
                  + ", ".join(f"{r['rps']:.0f}" for r in results["trivial"]) + " | "
                  + ", ".join(f"{r['rps']:.0f}" for r in results["evaluate"]))
    for line in warnings:
        print(line)
    for run in runs:
        print_in_process(run)


def print_in_process(run: Run) -> None:
    info = run.info
    label = DATABASE_LABELS[run.database]
    queries = info["with_idempotency_key"]
    print()
    print(f"{label}: SQL per /evaluate (test client, same settings): {len(queries)} with an Idempotency-Key, "
          f"{len(info['without_idempotency_key'])} without")
    for sql in queries:
        print("   ", sql[:150])
    print(f"{label}: in-process service time (Django test client, no HTTP): /evaluate {info['ms_evaluate']:.2f} ms "
          f"({info['ms_evaluate_no_idem']:.2f} ms without Idempotency-Key), trivial {info['ms_trivial']:.3f} ms; "
          f"a 4 KiB write + fsync in the temp dir: {info['fsync_ms']:.2f} ms")
    breakdown = info.get("breakdown")
    if breakdown:
        print(f"{label}: where one /evaluate's {breakdown['wall_ms']:.2f} ms go ({breakdown['requests']} requests, "
              "inclusive wall time per request; SQL time = inside cursor.execute):")
        print(f"    {'stage':<40}{'ms':>8}{'queries':>9}")
        for stage, (ms, count, _calls) in breakdown["stages"].items():
            print(f"    {stage:<40}{ms:>8.2f}{count:>9.1f}")
        print(f"    {'SQL execution, all queries':<40}{breakdown['sql_ms']:>8.2f}{breakdown['queries']:>9.1f}")
        print(f"    {'COMMITs':<40}{breakdown['commit_ms']:>8.2f}{breakdown['commits']:>9.1f}")
        rest = breakdown["wall_ms"] - breakdown["sql_ms"] - breakdown["commit_ms"]
        print(f"    {'Python (ORM, DRF, Django, engine)':<40}{rest:>8.2f}")
    if info.get("profile_groups"):
        print(f"{label}: cProfile self time per /evaluate by package (cProfile inflates Python-heavy code):")
        for group, ms, share in info["profile_groups"]:
            print(f"    {group:<58}{ms:>7.2f} ms {share:>6.1%}")
    if info.get("profile"):
        print(info["profile"])
