"""governance 0013 on a database that already counted calls: each tenant's month gets its
all-channels row (the sum the quota reads), the quota then counts on from it, and the
migration goes back leaving the channel rows as they were."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from governance import services
from governance.models import Tier, UsageCounter

BEFORE = [("governance", "0012_decision_seal_schedule")]


def migrate(targets) -> None:
    MigrationExecutor(connection).migrate(targets)


def rows(customer) -> dict[tuple[str, str, str], int]:
    return {(month, kind, channel): count for month, kind, channel, count in
            UsageCounter.objects.filter(customer=customer).values_list("month", "kind", "channel", "count")}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_counted_months_get_their_totals_and_the_quota_goes_on_from_them():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    customer, _, _ = services.create_customer("Acme", tier=Tier.objects.get(name="team"))
    try:
        migrate(BEFORE)
        before = {("2026-11", "evaluation", "api"): 5, ("2026-11", "evaluation", "sdk"): 7,
                  ("2026-11", "risk_check", "api"): 2, ("2026-12", "evaluation", "mcp"): 1}
        UsageCounter.objects.bulk_create([UsageCounter(customer=customer, month=m, kind=k, channel=c, count=n)
                                          for (m, k, c), n in before.items()])

        migrate(latest)
        assert rows(customer) == {**before, ("2026-11", "evaluation", "all"): 12, ("2026-11", "risk_check", "all"): 2,
                                  ("2026-12", "evaluation", "all"): 1}
        assert services._count_call(customer, "2026-11", "evaluation", "sdk") == 13
        assert services.usage_report(customer, "2026-11")["total_evaluations"] == 13

        migrate(BEFORE)
        assert rows(customer) == {**before, ("2026-11", "evaluation", "sdk"): 8}
    finally:
        migrate(latest)
