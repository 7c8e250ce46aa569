"""deploy/: the environment template documents every setting, reads the same in both of its
readers (honcho and systemd's EnvironmentFile), and refuses to start until its secrets are
filled in, after which `check --deploy` is clean. The Procfile itself runs in
tests/integration/test_production_profile.py."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

from honcho.environ import parse as honcho_parse
from honcho.environ import parse_procfile

ROOT = Path(__file__).resolve().parent.parent
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
# The modules that read deployment settings from the environment.
SETTINGS_SOURCES = ["aegis_site/settings.py", "aegis_site/gunicorn.conf.py", "governance/engine/contract.py"]
READ = re.compile(r"""(?:environ\.get|environ\[|env_int|env_bool|env_list)\(?\s*["']([A-Z][A-Z0-9_]+)["']""")


def systemd_assignments(text: str) -> dict[str, str]:
    """KEY=value lines as systemd's EnvironmentFile reads them: every one counts, an empty
    value included; comments only on their own lines; one pair of quotes removed."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, equals, value = line.partition("=")
        assert equals and re.fullmatch(r"[A-Z][A-Z0-9_]*", key), f"not a KEY=value line: {line!r}"
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def manage(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "HOME": str(ROOT), **environment}, cwd=ROOT, timeout=120)


def test_every_setting_read_from_the_environment_is_in_the_template():
    read = {name for source in SETTINGS_SOURCES for name in READ.findall((ROOT / source).read_text())}
    procfile = parse_procfile((ROOT / "deploy" / "Procfile").read_text())
    read |= {name for command in procfile.processes.values() for name in re.findall(r"\$\{([A-Z_]+)", command)}
    read -= {"HONCHO_PROCESS_NAME"}  # set by honcho itself
    assert {"SECRET_KEY", "DATABASE_URL", "GUNICORN_WORKERS", "CELERY_CONCURRENCY"} <= read  # the scan works
    template = ENV_EXAMPLE.read_text()
    missing = sorted(name for name in read if not re.search(rf"\b{name}\b", template))
    assert not missing, f"deploy/env.example does not document {', '.join(missing)}"


def test_honcho_and_systemd_read_the_template_alike():
    text = ENV_EXAMPLE.read_text()
    strict = systemd_assignments(text)
    # honcho skips an empty value (unset); systemd sets it to "": the template has none but the secrets.
    assert {key for key, value in strict.items() if value == ""} == {"SECRET_KEY", "FERNET_KEYS", "AEGIS_METRICS_TOKEN",
                                                                           "AEGIS_ANCHOR_KEY"}
    assert honcho_parse(text) == {key: value for key, value in strict.items() if value != ""}
    assert "PROMETHEUS_MULTIPROC_DIR" not in strict, "every process would write metrics (or crash on an empty value)"


def test_the_template_refuses_to_start_until_its_secrets_are_set_then_passes_check_deploy():
    environment = systemd_assignments(ENV_EXAMPLE.read_text())
    refused = manage(environment, "check")
    assert refused.returncode != 0 and "SECRET_KEY is not set" in refused.stderr

    environment.update(SECRET_KEY=secrets.token_urlsafe(50), FERNET_KEYS=secrets.token_urlsafe(32),
                       AEGIS_ANCHOR_KEY=secrets.token_urlsafe(32))
    checked = manage(environment, "check", "--deploy", "--fail-level", "WARNING")
    assert checked.returncode == 0, checked.stdout + checked.stderr
