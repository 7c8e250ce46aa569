"""Verify audit chains: one workflow, or --all (every workflow chain, every stored decision
against its seal block, every stored attestation against its signed envelope, every
configuration version against its hashes and its approved calibration, then the ledger both
ways and against its anchor, anchoring its head anew when everything in it verifies). Exit status
1 if anything is broken. --all checks each workflow's newest checkpoint, as the nightly run
does; --full re-hashes every checkpoint (one workflow is always checked in full)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from attestations import audit as attestation_audit
from calibration.integrity import verify_all_versions
from governance import sealing
from ledger.audit import audit_ledger
from workflows.persistence.durable import DurableWorkflowEngine
from workflows.persistence.models import VerificationDepth


class Command(BaseCommand):
    help = ("Verify the hash-chained audit trail of one workflow (WORKFLOW_ID) or of all (--all: every "
            "workflow, every sealed decision, every attestation and every configuration version).")

    def add_arguments(self, parser):
        parser.add_argument("workflow_id", nargs="?")
        parser.add_argument("--all", action="store_true", help="verify every workflow, decision and attestation")
        parser.add_argument("--full", action="store_true",
                            help="with --all: re-hash every checkpoint, not only each workflow's newest")
        parser.add_argument("--processes", type=int,
                            help="with --all: worker processes (default AEGIS_VERIFY_PROCESSES; 1 = this process)")

    def handle(self, *args, workflow_id=None, all=False, full=False, processes=None, **options):
        if bool(workflow_id) == bool(all):
            raise CommandError("give either a WORKFLOW_ID or --all")
        if processes is not None and processes < 1:
            raise CommandError(f"--processes must be 1 or more, got {processes}")
        depth = VerificationDepth.FULL if full or not all else VerificationDepth.NEWEST
        engine = DurableWorkflowEngine(depth=depth, processes=processes or settings.AEGIS_VERIFY_PROCESSES, seal=all)
        configurations_rejected = self._configurations() if all else 0  # what every decision is made under
        reports = engine.verify_all() if all else [engine.report(workflow_id)]
        checked = broken = by_seal = 0
        for report in reports:
            checked += 1
            by_seal += report.by_seal
            if not report.is_valid:
                broken += 1
                self.stderr.write(f"BROKEN {report.workflow_id}: {report.message}")
            elif not all:
                self.stdout.write(f"OK {report.workflow_id}: {report.message}")
        unchanged = f" ({by_seal} unchanged since an earlier run verified and sealed them)" if by_seal else ""
        self.stdout.write(f"{checked} workflow(s) checked, {broken} broken{unchanged}.")
        decisions_broken = self._decisions() if all else 0
        attestations_broken = self._attestations() if all else 0
        ledger_broken = self._ledger() if all else 0
        if broken or decisions_broken or attestations_broken or configurations_rejected or ledger_broken:
            parts = [f"{broken} audit chain(s)"] if broken else []
            parts += [f"{decisions_broken} decision finding(s)"] if decisions_broken else []
            parts += [f"{attestations_broken} broken attestation(s)"] if attestations_broken else []
            parts += [f"{configurations_rejected} rejected configuration version(s)"] if configurations_rejected else []
            parts += [f"{ledger_broken} ledger finding(s)"] if ledger_broken else []
            raise CommandError(" and ".join(parts) + " failed verification", returncode=1)

    def _decisions(self) -> int:
        tally = sealing.Tally()
        for finding in sealing.verify_decisions(tally):
            self.stderr.write(f"BROKEN {finding.message}")
        head = (f"newest block {tally.head_seq} ({tally.head_hash})" if tally.head_seq is not None
                else "no block yet")
        self.stdout.write(f"{tally.checked} decision(s) checked in {tally.blocks} seal block(s), {head}: "
                          f"{tally.unsealed} unsealed, {tally.broken} broken.")
        return tally.broken

    def _attestations(self) -> int:
        tally = attestation_audit.Tally()
        for finding in attestation_audit.verify_attestations(tally):
            self.stderr.write(f"BROKEN {finding.message}")
        self.stdout.write(f"{tally.checked} attestation(s) checked, {tally.broken} broken.")
        return tally.broken

    def _ledger(self) -> int:
        audit = audit_ledger(keep=0, on_finding=lambda finding: self.stderr.write(f"BROKEN {finding.message}"))
        tally = audit.tally
        self.stdout.write(f"{tally.entries} ledger entries checked against {tally.objects} stored object(s), head "
                          f"{tally.head_seq}: {tally.broken} broken; {audit.anchor_note}.")
        return tally.broken

    def _configurations(self) -> int:
        status = verify_all_versions()
        for rejection in status.rejected:
            self.stderr.write(f"BROKEN configuration {rejection}")
        served = f"v{status.served} served" if status.served is not None else "none served"
        self.stdout.write(f"{status.checked} configuration version(s) checked, {served}, "
                          f"{len(status.rejected)} rejected.")
        return len(status.rejected)
