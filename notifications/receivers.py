"""The signals of the lower layers, turned into announcements. Connected in
NotificationsConfig.ready(); the senders never import this app."""

from __future__ import annotations

from django.dispatch import receiver

from governance.signals import drift_reported
from workflows.signals import backup_failed, chains_verified, workflow_transitioned

from . import events, services


def _announce(announcement) -> None:
    if announcement is not None:
        services.announce(announcement)


@receiver(workflow_transitioned, dispatch_uid="notifications.workflow_transitioned")
def on_workflow_transitioned(sender, *, workflow_id, workflow_type, from_state, to_state, seq, **kwargs):
    _announce(events.waiting_announcement(workflow_id, workflow_type=workflow_type, from_state=from_state,
                                          to_state=to_state, seq=seq))


@receiver(drift_reported, dispatch_uid="notifications.drift_reported")
def on_drift_reported(sender, *, report_id, **kwargs):
    _announce(events.drift_announcement(report_id))


@receiver(chains_verified, dispatch_uid="notifications.chains_verified")
def on_chains_verified(sender, *, run_id, **kwargs):
    _announce(events.verification_announcement(run_id))


@receiver(backup_failed, dispatch_uid="notifications.backup_failed")
def on_backup_failed(sender, *, run_id, **kwargs):
    _announce(events.backup_announcement(run_id))
