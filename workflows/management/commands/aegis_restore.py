"""Restore a backup atomically: check the manifest, insert, verify every chain, or change nothing."""

from django.core.management.base import BaseCommand, CommandError

from workflows.backup import BackupError, restore_backup


class Command(BaseCommand):
    help = "Restore a backup file written by aegis_backup (idempotent; refuses a corrupted file)."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--allow-unauthenticated", action="store_true",
                            help="restore a file whose manifest has no MAC (written without AEGIS_ANCHOR_KEY or "
                                 "before 1.2.0), or with AEGIS_ANCHOR_KEY unset")

    def handle(self, *args, file, allow_unauthenticated=False, **options):
        try:
            inserted = restore_backup(file, allow_unauthenticated=allow_unauthenticated)
        except BackupError as exc:
            raise CommandError(f"restore refused, nothing was changed: {exc}") from None
        summary = ", ".join(f"{name} {count}" for name, count in inserted.items())
        self.stdout.write(f"Restored from {file}: inserted {summary}; every audit chain and the ledger verified.")
