"""The migration guide's pre-migration checklist as one command (PLATFORM.md §5).

Steps: take a backup; verify every stored configuration version (one not served blocks) and
validate the active configuration against the target contract;
classify the contract differences; list the changelog's breaking changes up to the target
version; verify every audit chain, every sealed decision and the ledger (against its anchor);
list unapplied migrations;
with --prometheus-rules, check that every metric the deployment's alert rules read is one
this version exports.
Prints a report and exits 1 if anything blocks the upgrade.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from calibration.integrity import verify_all_versions
from ledger.audit import audit_ledger
from calibration.versions import config_of
from governance import __version__, changelog, monitoring, sealing
from governance.engine.config import AegisConfig, ConfigError
from governance.engine.contract import Compatibility, Contract, ContractError, compatibility, diff_contracts, migrate_config
from workflows.backup import write_backup
from workflows.management.commands.aegis_backup import default_backup_path
from workflows.persistence.durable import DurableWorkflowEngine


class Command(BaseCommand):
    help = "Run the pre-upgrade checklist; exit 1 if anything blocks the upgrade."

    def add_arguments(self, parser):
        parser.add_argument("--target-schema", help="the interface contract of the version to upgrade to")
        parser.add_argument("--backup", help="where to write the pre-upgrade backup (default: BACKUP_DIR)")
        parser.add_argument("--target-version", metavar="X.Y.Z",
                            help="the version to upgrade to: lists its changelog's breaking changes since the running one")
        parser.add_argument("--changelog", dest="changelog_path", metavar="FILE",
                            help="the target version's CHANGELOG.md (default: this installation's)")
        parser.add_argument("--prometheus-rules", metavar="FILE",
                            help="the deployment's Prometheus rules file, checked against this version's metrics")

    def handle(self, *args, target_schema=None, backup=None, target_version=None, changelog_path=None,
               prometheus_rules=None, **options):
        self.blockers: list[str] = []
        self._backup(Path(backup) if backup else default_backup_path())
        self._configuration(target_schema)
        self._breaking_changes(target_version, changelog_path)
        self._chains()
        self._decisions()
        self._ledger()
        self._migrations()
        if prometheus_rules:
            self._prometheus_rules(Path(prometheus_rules))
        if self.blockers:
            self.stdout.write(f"\nUpgrade blocked by {len(self.blockers)} problem(s):")
            for problem in self.blockers:
                self.stdout.write(f"  - {problem}")
            raise CommandError("preflight failed", returncode=1)
        self.stdout.write("\nPreflight passed: nothing blocks the upgrade.")

    def step(self, ok: bool, text: str, *, blocking: bool = True) -> None:
        mark = "OK  " if ok else ("FAIL" if blocking else "WARN")
        self.stdout.write(f"[{mark}] {text}")
        if not ok and blocking:
            self.blockers.append(text)

    def _backup(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            manifest = write_backup(path)
            self.step(True, f"backup written to {path} (sha256 {manifest['sha256'][:16]}…)")
        except OSError as exc:
            self.step(False, f"backup could not be written to {path}: {exc}")

    def _configuration(self, target_schema) -> None:
        stored = verify_all_versions()
        for rejected in stored.rejected:
            self.step(False, f"configuration v{rejected.version} is stored but not served: {rejected.reason} "
                             f"(docs/operations.md#alert-configuration-rejected)")
        if stored.served is None:
            return
        version, config = stored.served, config_of(stored.served, stored.served_content_hash)
        try:
            current = Contract.load()
            target = Contract.load(target_schema) if target_schema else current
        except ContractError as exc:
            self.step(False, f"contract unreadable: {exc}")
            return
        migrated, changes = migrate_config({"parameters": config.to_yaml_dict()}, target)
        for change in changes:
            self.step(False, f"active configuration v{version}: {change['parameter']} is {change['action']} "
                             f"in schema {target.version} (run aegis migrate-config / recalibrate)", blocking=False)
        try:
            AegisConfig.from_dict(migrated["parameters"])
            self.step(True, f"active configuration v{version} is valid for schema {target.version}")
        except ConfigError as exc:
            self.step(False, f"active configuration v{version} is invalid for schema {target.version}: {exc}")
        diff = diff_contracts(current, target)
        verdict = compatibility(diff)
        for change in diff:
            self.stdout.write(f"       {change['change_type']}: {change['parameter']} — {change['action']}")
        self.step(verdict != Compatibility.BREAKING,
                  f"schema {current.version} → {target.version}: {verdict.name.lower()} ({len(diff)} change(s))",
                  blocking=verdict == Compatibility.BREAKING)

    def _breaking_changes(self, target_version, changelog_path) -> None:
        """The Breaking entries of every release the upgrade crosses: things to act on, not blockers."""
        if target_version is None:
            if changelog_path:
                self.step(False, "--changelog needs --target-version (the version whose breaking changes to list)")
            return
        path = Path(changelog_path) if changelog_path else changelog.DEFAULT_CHANGELOG_PATH
        try:
            releases = changelog.releases_to_upgrade(changelog.read(path), __version__, target_version)
        except changelog.ChangelogError as exc:
            self.step(False, f"--target-version {target_version}: {exc}")
            return
        breaking = [(release.version, entry) for release in releases for entry in release.breaking]
        for version, entry in breaking:
            self.stdout.write(f"       breaking in {version}: {entry}")
        self.step(not breaking, f"upgrade {__version__} → {target_version}: {len(breaking)} breaking change(s) in "
                                f"{len(releases)} release(s) of {path.name} (act on each before migrating)",
                  blocking=False)

    def _chains(self) -> None:
        checked, broken = 0, []
        for report in DurableWorkflowEngine().verify_all():
            checked += 1
            if not report.is_valid:
                broken.append(f"{report.workflow_id}: {report.message}")
        for problem in broken[:20]:
            self.stdout.write(f"       broken chain {problem}")
        self.step(not broken, f"audit chains: {checked} verified, {len(broken)} broken")

    def _decisions(self) -> None:
        tally, broken = sealing.Tally(), []
        for finding in sealing.verify_decisions(tally):
            if len(broken) < 20:
                broken.append(finding.message)
        for problem in broken:
            self.stdout.write(f"       broken {problem}")
        self.step(not tally.broken, f"decisions: {tally.checked} verified in {tally.blocks} seal block(s), "
                                    f"{tally.unsealed} unsealed, {tally.broken} broken")

    def _ledger(self) -> None:
        audit = audit_ledger(keep=20)
        for finding in audit.findings:
            self.stdout.write(f"       broken {finding.message}")
        tally = audit.tally
        self.step(not tally.broken, f"ledger: {tally.entries} entries against {tally.objects} stored object(s), "
                                    f"{tally.broken} broken; {audit.anchor_note}")

    def _migrations(self) -> None:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        for migration, _ in plan:
            self.stdout.write(f"       unapplied: {migration.app_label}.{migration.name}")
        self.step(True, f"{len(plan)} unapplied migration(s) (applied by `manage.py migrate`)")

    def _prometheus_rules(self, path: Path) -> None:
        """An alert reading a metric this version no longer exports never fires again."""
        try:
            rules = monitoring.read_rules(path.read_text(encoding="utf-8"), str(path))
            unknown = monitoring.unknown_in_rules(rules, monitoring.exported_by_this_version())
        except (OSError, UnicodeDecodeError) as exc:
            self.step(False, f"Prometheus rules {path} could not be read: {exc}")
            return
        except monitoring.PromQLError as exc:
            self.step(False, f"Prometheus rules unreadable: {exc}")
            return
        for problem in unknown:
            self.stdout.write(f"       {problem}")
        self.step(not unknown, f"Prometheus rules {path}: {len(rules)} rule(s), "
                               f"{len(unknown)} metric(s) this version does not export")
