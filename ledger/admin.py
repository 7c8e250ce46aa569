from django.contrib import admin

from governance.admin import ReadOnlyAdmin

from .chain import describe
from .models import LedgerEntry


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    """The ledger is append-only (ledger.services): view only, each row naming its object."""

    list_display = ("seq", "kind", "subject", "digest", "hash", "created_at")
    list_filter = ("kind",)
    search_fields = ("ref",)

    @admin.display(description="records")
    def subject(self, entry: LedgerEntry) -> str:
        return describe(entry.kind, entry.ref)
