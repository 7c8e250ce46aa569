"""What every server makes by itself (configuration version 1, the default tiers, groups,
schedules, system accounts) is reconciled with a backup's copy; what another server's people
or tenants already use is not overwritten: the restore is refused in one line and nothing
changes. The whole recovery onto a new server runs in tests/integration/test_disaster_recovery.py."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django_celery_beat.models import PeriodicTask

from calibration.versions import configuration_status, forget_newest
from calibration.models import ConfigurationVersion
from governance import services as governance_services
from governance.models import Tier
from workflows.backup import write_backup
from workflows.roles import ROLE_GROUPS, Role

pytestmark = pytest.mark.django_db

RISK_LEADS = ROLE_GROUPS[Role.RISK_LEAD]


@pytest.fixture
def alice():
    user = get_user_model().objects.create_user("alice", password=None, is_staff=True)
    user.groups.add(Group.objects.get(name=RISK_LEADS))
    return user


@pytest.fixture
def backup(tmp_path, alice) -> Path:
    path = tmp_path / "backup.json"
    write_backup(path)
    return path


def restore(path: Path) -> str:
    out = io.StringIO()
    call_command("aegis_restore", str(path), stdout=out)
    return out.getvalue()


def refusal(path: Path) -> str:
    with pytest.raises(CommandError) as info:
        call_command("aegis_restore", str(path), stdout=io.StringIO())
    message = str(info.value)
    assert message.startswith("restore refused, nothing was changed: ") and "\n" not in message
    return message


def test_version_one_of_another_time_takes_the_backups(backup):
    original = ConfigurationVersion.objects.get(version=1)
    ConfigurationVersion.objects.filter(version=1).update(created_at=original.created_at + timedelta(days=3),
                                                          chain_hash="")
    restore(backup)
    again = ConfigurationVersion.objects.get(version=1)
    assert (again.created_at, again.chain_hash) == (original.created_at, original.chain_hash)
    forget_newest()  # what the restore does after its commit
    assert not configuration_status().rejected


def test_version_one_with_other_parameters_is_a_conflict(backup):
    version = ConfigurationVersion.objects.get(version=1)
    ConfigurationVersion.objects.filter(version=1).update(
        parameters={**version.parameters, "novelty_threshold": 0.5}, created_at=version.created_at + timedelta(days=1))
    assert "configuration_versions 1 exists with different contents" in refusal(backup)
    assert ConfigurationVersion.objects.get(version=1).parameters["novelty_threshold"] == 0.5


@pytest.mark.parametrize("tenant_on_it", [False, True], ids=["unused", "a tenant on it"])
def test_a_default_tier_takes_the_backups_limits_unless_a_tenant_uses_it(tmp_path, alice, tenant_on_it):
    team = Tier.objects.get(name="team")
    team.rate_per_minute = 700  # the old server's operator raised it
    team.save()
    path = tmp_path / "backup.json"
    write_backup(path)
    Tier.objects.filter(name="team").update(rate_per_minute=600)  # the new server's default
    if tenant_on_it:
        governance_services.create_customer("Already Here", tier=team)
        assert "tiers team exists with different contents" in refusal(path)
        assert Tier.objects.get(name="team").rate_per_minute == 600
    else:
        restore(path)
        assert Tier.objects.get(name="team").rate_per_minute == 700


def test_groups_and_schedules_take_the_backups_settings(backup):
    group = Group.objects.get(name=RISK_LEADS)
    kept = set(group.permissions.values_list("codename", flat=True))
    group.permissions.clear()
    PeriodicTask.objects.filter(name="Daily backup").update(enabled=False)
    restore(backup)
    assert set(group.permissions.values_list("codename", flat=True)) == kept
    assert PeriodicTask.objects.get(name="Daily backup").enabled is True


def test_an_account_comes_back_under_its_id_with_its_roles(backup, alice):
    pk = alice.pk
    alice.delete()
    restore(backup)
    back = get_user_model().objects.get(username="alice")
    assert back.pk == pk and back.is_staff
    assert list(back.groups.values_list("name", flat=True)) == [RISK_LEADS]


def test_an_id_given_to_someone_else_here_refuses_the_restore(backup, alice):
    get_user_model().objects.filter(pk=alice.pk).update(username="mallory")
    message = refusal(backup)
    assert f"user id {alice.pk} is 'mallory' here but 'alice' in the backup" in message
    assert not get_user_model().objects.filter(username="alice").exists()


def test_a_username_under_another_id_here_refuses_the_restore(backup, alice):
    pk = alice.pk
    alice.delete()
    other = get_user_model().objects.create_user("alice", password="a-password-of-this-server", pk=pk + 1000)
    message = refusal(backup)
    assert f"account 'alice' is user id {other.pk} here but {pk} in the backup" in message
    assert get_user_model().objects.get(username="alice").pk == other.pk


def test_a_system_account_made_here_gives_way_to_the_backups(backup):
    """drift-monitor is made by a migration on every server, perhaps under another id."""
    User = get_user_model()
    original = User.objects.get(username="drift-monitor")
    User.objects.filter(pk=original.pk).delete()
    made_here = User.objects.create(username="drift-monitor", password="!unusable", pk=original.pk + 500)
    restore(backup)
    assert User.objects.get(username="drift-monitor").pk == original.pk
    assert not User.objects.filter(pk=made_here.pk).exists()


def test_an_account_this_server_has_is_left_as_it_is(backup, alice):
    """A restore never changes a person's password or roles here (the backup's are older)."""
    alice.set_password("changed-after-the-backup")
    alice.is_staff = False
    alice.save()
    alice.groups.clear()
    restore(backup)
    alice.refresh_from_db()
    assert alice.check_password("changed-after-the-backup") and not alice.is_staff
    assert not alice.groups.exists()
