from django.db import models
from django.utils import timezone


class LedgerEntry(models.Model):
    """One thing that must not vanish, recorded in the transaction that created it.

    Written unchained (`seq` NULL) by `ledger.services.record`, then given its place in the
    chain right after that transaction commits (`chain_pending`): the business transaction
    never waits on a ledger-wide lock. Append-only in the database: the only UPDATE a
    trigger lets through sets `seq`, `prev_hash` and `hash` of an unchained entry."""

    seq = models.PositiveBigIntegerField(unique=True, null=True, blank=True)
    kind = models.CharField(max_length=32)
    ref = models.CharField(max_length=64)
    digest = models.CharField(max_length=64)
    prev_hash = models.CharField(max_length=64, blank=True, default="")
    hash = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["seq"]
        verbose_name_plural = "ledger entries"
        constraints = [models.UniqueConstraint(fields=["kind", "ref"], name="ledger_one_entry_per_object")]

    def __str__(self) -> str:
        from .chain import describe
        return f"#{self.seq or 'unchained'}: {describe(self.kind, self.ref)}"
