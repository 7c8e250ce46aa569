"""Regenerate docs/workflows.md from the state machine declarations."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from workflows.docs import render_markdown

DOCS_PATH = Path(settings.BASE_DIR) / "docs" / "workflows.md"


class Command(BaseCommand):
    help = "Write docs/workflows.md from workflows/machines.py."

    def handle(self, *args, **options):
        DOCS_PATH.write_text(render_markdown(), encoding="utf-8")
        self.stdout.write(f"Wrote {DOCS_PATH}")
