"""Attestation signing pairs: generate a new one, list them, export the verifier kit's files."""

import base64
import re
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from governance.api.errors import ApiError

from ... import keys
from ...envelope import SigningPair, fingerprint

VERSION_PATTERN = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,199}")


class Command(BaseCommand):
    help = ("Attestation signing keys. `generate`: a new Ed25519 + ML-DSA-65 pair signs from now on (older pairs "
            "keep verifying). `list`: every pair's keyids and status. `export DIR`: the public keys and a "
            "verifier-policy.yaml in the verifier kit's layout, for pipelines to pin.")

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        generate = actions.add_parser("generate", help="store a new pair that signs from now on")
        generate.add_argument("--print-env", action="store_true",
                              help="store nothing: print a new pair as the two environment variables instead")
        generate.add_argument("--if-none", action="store_true",
                              help="only when no pair exists yet (`make run` uses it for a development pair)")
        actions.add_parser("list", help="every pair, newest first")
        export = actions.add_parser("export", help="write the verifier kit's key and policy files")
        export.add_argument("directory", type=Path)
        export.add_argument("--policy-version", default="1.0.0",
                            help="the policy_version pipelines attest with (the kit compares it strictly)")

    def handle(self, *args, action, **options):
        getattr(self, f"_{action}")(**options)

    def _generate(self, *, print_env, if_none, **options):
        if print_env:
            pair = SigningPair.generate()
            self.stdout.write(f"AEGIS_ATTESTATION_ED25519_SEED={base64.b64encode(pair.ed25519_seed).decode()}")
            self.stdout.write(f"AEGIS_ATTESTATION_MLDSA65_SEED={base64.b64encode(pair.mldsa65_seed).decode()}")
            self.stderr.write("Keep these secret: whoever has them can sign attestations as this server.")
            return
        if if_none and keys.SigningKeyPair.objects.exists():
            self.stdout.write("A signing pair exists already; nothing generated.")
            return
        row = keys.generate_pair()
        public = row.public()
        self.stdout.write(self.style.SUCCESS(f"New signing pair:\n  {public.ed25519_keyid}\n  {public.mldsa65_keyid}"))
        if keys.environment_pair() is not None:
            self.stderr.write("Note: AEGIS_ATTESTATION_*_SEED are set, so the environment's pair still signs.")
        self.stdout.write("Export it for pipelines with `manage.py aegis_attestation_keys export DIR`.")

    def _list(self, **options):
        listed = keys.public_keys()
        if not listed:
            self.stdout.write("No signing pair yet: `manage.py aegis_attestation_keys generate`.")
        for key in listed:
            self.stdout.write(f"{key['status']:8} {key['algorithm']:10} {key['keyid']}  created {key['created_at'] or '(environment)'}")

    def _export(self, *, directory, policy_version, **options):
        if not VERSION_PATTERN.fullmatch(policy_version):
            raise CommandError(f"--policy-version must be a version such as 1.0.0, got {policy_version!r}")
        if directory.exists() and not directory.is_dir():
            raise CommandError(f"{directory} exists and is not a directory")
        try:
            kit = keys.export_kit(directory, policy_version=policy_version)
        except ApiError as error:
            raise CommandError(error.message) from None
        except OSError as error:
            raise CommandError(f"cannot write to {directory}: {error.strerror}") from None
        self.stdout.write(self.style.SUCCESS(
            f"Wrote {keys.ED25519_PEM}, {keys.MLDSA65_BIN} and {keys.POLICY_FILE} to {directory}\n"
            f"  ed25519 fingerprint {fingerprint(kit.public.ed25519)}\n"
            f"  mldsa65 fingerprint {fingerprint(kit.public.mldsa65)}\n"
            f"  policy_version {kit.policy_version}"))
