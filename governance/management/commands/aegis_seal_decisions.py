"""Seal every stored decision not yet in a seal block (see governance.sealing); the periodic
task does the same every 5 minutes."""

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from governance.sealing import DEFAULT_BLOCK, newest_block, seal_decisions


class Command(BaseCommand):
    help = ("Seal every decision stored since the last seal block into new hash-chained blocks "
            "(one short transaction each). Verify with `manage.py aegis_verify_chain --all`.")

    def add_arguments(self, parser):
        parser.add_argument("--block-size", type=int, default=DEFAULT_BLOCK,
                            help=f"decisions per block and transaction (default {DEFAULT_BLOCK})")

    def handle(self, *args, block_size, **options):
        if block_size < 1:
            raise CommandError("--block-size must be a positive integer")
        try:
            sealed = seal_decisions(max_per_block=block_size)
        except DatabaseError as error:
            raise CommandError(f"the database refused a seal block ({error}). Blocks sealed so far stay; "
                               "run the command again to finish.") from None
        newest = newest_block()
        # Printed in full so it can be kept outside the database: removed newest blocks show then.
        where = f"newest block {newest.seq}, hash {newest.hash}" if newest is not None else "no block yet"
        self.stdout.write(self.style.SUCCESS(f"Sealed {sealed} decision(s); {where}."))
