"""Bootstrap tenants without a browser: create (prints the first key once), list, revoke-key."""

import json

from django.core.management.base import BaseCommand, CommandError

from governance import services
from governance.api.errors import ApiError
from governance.models import Customer, Tier


class Command(BaseCommand):
    help = "Manage tenants: create NAME [--tier TIER], list, revoke-key KEY_ID."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a tenant and print its first API key (shown once).")
        create.add_argument("name")
        create.add_argument("--tier", default="free", help="tier name (default: free)")
        create.add_argument("--email", default="")
        create.add_argument("--company", default="")
        create.add_argument("--json", dest="as_json", action="store_true", help="print the result as JSON")
        sub.add_parser("list", help="List tenants with their tiers and active keys.")
        revoke = sub.add_parser("revoke-key", help="Revoke an API key by its key_id.")
        revoke.add_argument("key_id")

    def handle(self, *args, action, **options):
        getattr(self, "handle_" + action.replace("-", "_"))(**options)

    def handle_create(self, name, tier, email, company, as_json, **_):
        if not name.strip():
            raise CommandError("NAME must not be empty")
        try:
            tier_obj = Tier.objects.get(name=tier)
        except Tier.DoesNotExist:
            names = ", ".join(Tier.objects.values_list("name", flat=True))
            raise CommandError(f"--tier: no tier {tier!r} (choose from: {names})") from None
        customer, key, plaintext = services.create_customer(name.strip(), tier=tier_obj, email=email, company=company)
        if as_json:
            self.stdout.write(json.dumps({"customer_id": customer.customer_id, "key_id": key.key_id, "key": plaintext}))
            return
        self.stdout.write(f"Created tenant {customer.name!r} ({customer.customer_id}), tier {tier_obj.name}.")
        self.stdout.write(f"API key {key.key_id} (shown only now): {plaintext}")

    def handle_list(self, **_):
        for customer in Customer.objects.select_related("tier").order_by("created_at"):
            active = customer.api_keys.filter(revoked_at__isnull=True).count()
            self.stdout.write(f"{customer.customer_id}\t{customer.name}\t{customer.tier.name}\t"
                              f"{customer.status}\t{active} active key(s)")

    def handle_revoke_key(self, key_id, **_):
        try:
            key = services.revoke_api_key(None, key_id)
        except ApiError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Revoked {key.key_id} ({key.name}) of {key.customer.customer_id}.")
