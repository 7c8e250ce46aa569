"""Create the demo administrator, risk leads, security lead and tenant for `make run`.

Passwords come from AEGIS_DEMO_<USER>_PASSWORD (see DEMO_USERS), or are
generated and printed once, when the user is created; the demo tenant's API key is printed
once, when the tenant is created. Later runs leave everything alone.
"""

import os
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from governance import services
from governance.models import Customer, Tier
from workflows.roles import RISK_LEAD_GROUP, SECURITY_LEAD_GROUP

DEMO_TENANT = "Demo"
DEMO_USERS = (
    # username, password env var, superuser, groups
    ("admin", "AEGIS_DEMO_ADMIN_PASSWORD", True, ()),
    ("risklead", "AEGIS_DEMO_RISK_LEAD_PASSWORD", False, (RISK_LEAD_GROUP,)),
    # A second risk lead, so four-eyes approval can be tried out.
    ("risklead2", "AEGIS_DEMO_RISK_LEAD2_PASSWORD", False, (RISK_LEAD_GROUP,)),
    ("securitylead", "AEGIS_DEMO_SECURITY_LEAD_PASSWORD", False, (SECURITY_LEAD_GROUP,)),
)


class Command(BaseCommand):
    help = "Create the demo administrator, risk lead and tenant (secrets from env or printed once)."

    @transaction.atomic
    def handle(self, *args, **options):
        User = get_user_model()
        for username, env_var, superuser, groups in DEMO_USERS:
            if User.objects.filter(username=username).exists():
                self.stdout.write(f"Demo user {username!r} already exists; password unchanged.")
                continue
            password = os.environ.get(env_var) or secrets.token_urlsafe(12)
            user = User.objects.create_user(
                username=username, password=password, is_staff=True, is_superuser=superuser
            )
            user.groups.set(Group.objects.filter(name__in=groups))
            shown = "(from $" + env_var + ")" if os.environ.get(env_var) else password
            self.stdout.write(self.style.SUCCESS(f"Created demo user {username!r} with password: {shown}"))
        self._demo_tenant()

    def _demo_tenant(self):
        if Customer.objects.filter(name=DEMO_TENANT).exists():
            self.stdout.write(f"Demo tenant {DEMO_TENANT!r} already exists; its API key was printed when it was created.")
            return
        customer, key, plaintext = services.create_customer(DEMO_TENANT, tier=Tier.objects.get(name="team"))
        self.stdout.write(self.style.SUCCESS(
            f"Created demo tenant {DEMO_TENANT!r} ({customer.customer_id}) with API key: {plaintext}"))
