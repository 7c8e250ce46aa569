"""Production settings (aegis_site.settings, DEBUG from the environment) with the test-only
URLconf of serving_urls.py, for the real gunicorn of tests/integration/test_production_start.py."""

from aegis_site.settings import *  # noqa: F401,F403

ROOT_URLCONF = "serving_urls"
