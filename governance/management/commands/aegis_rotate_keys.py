"""Re-encrypt every encrypted value under the first of FERNET_KEYS (see governance.key_rotation)."""

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from governance.fields import DecryptionError
from governance.key_rotation import DEFAULT_BATCH, TableRotation, rotate_keys


class Command(BaseCommand):
    help = ("Re-encrypt every encrypted column under the first key of FERNET_KEYS, in batches; safe while the app "
            "runs and resumable (run it again after an interruption). --check only counts what is left.")

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                            help=f"rows per transaction (default {DEFAULT_BATCH})")
        parser.add_argument("--check", action="store_true",
                            help="change nothing; exit 1 if any value is not yet under the first key")

    def handle(self, *args, batch_size, check, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be a positive integer")
        verbose = options["verbosity"] >= 2

        def progress(table: TableRotation) -> None:
            if verbose:
                self.stdout.write(f"  {table.label}: {table.rows} rows scanned, {table.reencrypted} re-encrypted")

        try:
            result = rotate_keys(batch_size=batch_size, check_only=check, on_batch=progress)
        except DecryptionError as error:
            raise CommandError(f"{error}. Values done so far stay re-encrypted; run again once the key is back.") \
                from None
        except DatabaseError as error:
            raise CommandError(f"the database refused a rotation batch ({error}). Batches done so far stay "
                               "re-encrypted; run the command again to finish.") from None
        for table in result.tables:
            verb = "not under the first key" if check else "re-encrypted"
            self.stdout.write(f"{table.label} ({', '.join(table.columns)}): {table.rows} rows, "
                              f"{table.reencrypted} values {verb}, {table.already_current} already current")
        rate = result.rows / result.seconds if result.seconds else 0.0
        if check:
            if result.reencrypted:
                raise CommandError(f"{result.reencrypted} encrypted values are not under the first key of "
                                   "FERNET_KEYS yet: run `manage.py aegis_rotate_keys` before removing any key")
            self.stdout.write(self.style.SUCCESS(
                f"Every encrypted value is under the first key ({result.rows} rows checked); the other keys in "
                "FERNET_KEYS are no longer needed by the database (backups written under them still are)."))
            return
        self.stdout.write(self.style.SUCCESS(
            f"Re-encrypted {result.reencrypted} values in {result.rows} rows in {result.seconds:.1f} s "
            f"({rate:,.0f} rows/s). Confirm with `manage.py aegis_rotate_keys --check`, then remove the old key."))
