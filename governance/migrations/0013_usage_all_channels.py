"""Usage counters gain one row per tenant, month and kind over all channels: the monthly
quota reads it from the same upsert that counts the call, instead of summing the channels
in a second query (issue 12). Existing months get their sums."""

from django.db import migrations
from django.db.models import Sum

ALL_CHANNELS = "all"


def add_totals(apps, schema_editor):
    UsageCounter = apps.get_model("governance", "UsageCounter")
    sums = (UsageCounter.objects.exclude(channel=ALL_CHANNELS).values("customer_id", "month", "kind")
            .annotate(total=Sum("count")).order_by())
    UsageCounter.objects.bulk_create([
        UsageCounter(customer_id=row["customer_id"], month=row["month"], kind=row["kind"], channel=ALL_CHANNELS,
                     count=row["total"]) for row in sums], batch_size=1000)


def drop_totals(apps, schema_editor):
    apps.get_model("governance", "UsageCounter").objects.filter(channel=ALL_CHANNELS).delete()


class Migration(migrations.Migration):
    dependencies = [("governance", "0012_decision_seal_schedule")]

    operations = [migrations.RunPython(add_totals, drop_totals)]
