"""Configuration versions from the shell: show, history, diff A B, import FILE.

`import` validates a config file and opens one calibration proposal per calibratable
parameter it changes; it never applies anything (approval is always a person's step).
"""

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from calibration import services
from calibration.api import version_diff
from calibration.models import ConfigurationVersion
from calibration.versions import active_config
from governance.engine import CALIBRATABLE_PARAMETERS, AegisConfig, ConfigError
from governance.engine.contract import ContractError
from workflows.services import actor_for


class Command(BaseCommand):
    help = "Show, list, diff configuration versions, or import a config file as calibration proposals."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("show", help="the active configuration")
        sub.add_parser("history", help="all versions, newest first")
        diff = sub.add_parser("diff", help="parameters that differ between versions A and B")
        diff.add_argument("a", type=int)
        diff.add_argument("b", type=int)
        imp = sub.add_parser("import", help="open proposals for the calibratable parameters FILE changes")
        imp.add_argument("file")
        imp.add_argument("--actor", required=True, help="username of the proposer")
        imp.add_argument("--justification", required=True)

    def handle(self, *args, action, **options):
        getattr(self, "handle_" + action)(**options)

    def handle_show(self, **_):
        version, config = active_config()
        self.stdout.write(json.dumps({"version": version, "parameters": config.to_dict()}, indent=2))

    def handle_history(self, **_):
        for v in ConfigurationVersion.objects.all():
            self.stdout.write(f"v{v.version}\t{v.created_at:%Y-%m-%d %H:%M}\t{v.author}\t{v.source}\t{v.source_ref}")

    def handle_diff(self, a, b, **_):
        versions = {v.version: v for v in ConfigurationVersion.objects.filter(version__in=[a, b])}
        missing = [str(n) for n in (a, b) if n not in versions]
        if missing:
            raise CommandError(f"no configuration version {', '.join(missing)}")
        for change in version_diff(versions[a], versions[b]):
            self.stdout.write(f"{change['parameter']}: {change['from']} -> {change['to']}")

    def handle_import(self, file, actor, justification, **_):
        try:
            wanted = AegisConfig.from_yaml(file)
        except ContractError as exc:
            raise CommandError(str(exc)) from None
        except ConfigError as exc:
            raise CommandError("invalid config: " + "; ".join(f"{e.path}: {e.message}" for e in exc.errors)) from None
        try:
            person = actor_for(get_user_model().objects.get(username=actor))
        except get_user_model().DoesNotExist:
            raise CommandError(f"--actor: no user {actor!r}") from None
        version, current = active_config()
        changed = {k: v for k, v in wanted.to_dict().items() if current.to_dict()[k] != v}
        fixed = sorted(set(changed) - CALIBRATABLE_PARAMETERS)
        if fixed:
            raise CommandError(f"{file} changes parameter(s) calibration cannot change: {', '.join(fixed)}; "
                               "those change only with a new interface contract")
        if not changed:
            self.stdout.write(f"{file} matches the active configuration v{version}; nothing to propose.")
            return
        with transaction.atomic():  # all proposals or none
            proposals = []
            for parameter, value in sorted(changed.items()):
                try:
                    proposals.append(services.propose(parameter, value, justification, actor=person))
                except services.CalibrationError as exc:
                    raise CommandError(f"{parameter}: {exc.message}; nothing was proposed") from None
        for proposal in proposals:
            self.stdout.write(f"Proposed {proposal.parameter}: {proposal.current_value:g} -> {proposal.proposed_value:g} "
                              f"({proposal.proposal_id}); awaiting approval.")
