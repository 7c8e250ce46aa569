"""Verify audit chains: one workflow, or --all. Exit status 1 if any chain is broken."""

from django.core.management.base import BaseCommand, CommandError

from workflows.persistence.durable import DurableWorkflowEngine


class Command(BaseCommand):
    help = "Verify the hash-chained audit trail of one workflow (WORKFLOW_ID) or of all (--all)."

    def add_arguments(self, parser):
        parser.add_argument("workflow_id", nargs="?")
        parser.add_argument("--all", action="store_true", help="verify every workflow")

    def handle(self, *args, workflow_id=None, all=False, **options):
        if bool(workflow_id) == bool(all):
            raise CommandError("give either a WORKFLOW_ID or --all")
        engine = DurableWorkflowEngine()
        reports = engine.verify_all() if all else [engine.report(workflow_id)]
        checked = broken = 0
        for report in reports:
            checked += 1
            if not report.is_valid:
                broken += 1
                self.stderr.write(f"BROKEN {report.workflow_id}: {report.message}")
            elif not all:
                self.stdout.write(f"OK {report.workflow_id}: {report.message}")
        self.stdout.write(f"{checked} workflow(s) checked, {broken} broken.")
        if broken:
            raise CommandError(f"{broken} audit chain(s) failed verification", returncode=1)
