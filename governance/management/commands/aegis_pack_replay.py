"""Pack the closed days not packed yet for the calibration preview (governance.replay_packs);
the periodic task does the same every hour. --rebuild drops every pack and packs again."""

from django.core.management.base import BaseCommand

from governance.replay_packs import pack_closed_days, rebuild_replay_packs


class Command(BaseCommand):
    help = ("Pack each closed day's non-shadow decisions for the calibration preview. Use --rebuild after "
            "inserting decisions with an old created_at by any other way than restore_backup.")

    def add_arguments(self, parser):
        parser.add_argument("--rebuild", action="store_true", help="drop every pack and pack all closed days again")

    def handle(self, *args, rebuild, **options):
        days = rebuild_replay_packs() if rebuild else pack_closed_days()
        self.stdout.write(self.style.SUCCESS(f"Packed {days} day(s)."))
