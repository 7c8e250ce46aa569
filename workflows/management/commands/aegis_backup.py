"""Write a streaming backup (workflows, decisions, tenants, configuration) with a manifest."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from workflows.backup import write_backup


def default_backup_path() -> Path:
    return Path(settings.BACKUP_DIR) / f"aegis-backup-{timezone.now():%Y%m%dT%H%M%S%fZ}.json.gz"


class Command(BaseCommand):
    help = "Write a backup file (gzip when it ends in .gz; default: BACKUP_DIR/aegis-backup-<time>.json.gz)."

    def add_arguments(self, parser):
        parser.add_argument("--output", help="file to write")

    def handle(self, *args, output=None, **options):
        path = Path(output) if output else default_backup_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            manifest = write_backup(path)
        except OSError as exc:
            raise CommandError(f"cannot write {path}: {exc}") from None
        counts = ", ".join(f"{name} {count}" for name, count in manifest["counts"].items())
        self.stdout.write(f"Backup written to {path} ({counts}; sha256 {manifest['sha256']}).")
