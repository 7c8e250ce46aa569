"""Settings for the test suite: production settings (DEBUG off) with a test-only secret key."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("AEGIS_ANCHOR_KEY", "test-only-anchor-key-9876543210")
# Anchors of the test run (and of the commands it starts, which inherit this) stay out of the
# checkout; each test gets its own directory besides (tests/conftest.py).
if not os.environ.get("AEGIS_ANCHOR_DIR"):
    os.environ["AEGIS_ANCHOR_DIR"] = tempfile.mkdtemp(prefix="aegis-test-anchors-")

from .settings import *  # noqa: E402,F401,F403
from .settings import DATABASES, STORAGES  # noqa: E402

# Pages render and /static/ is served straight from the apps' files, so the suite needs no
# collectstatic; tests/test_production_serving.py and tests/integration/test_production_start.py
# run collectstatic themselves to check the hashed, compressed production files.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True

if DATABASES["default"]["ENGINE"] == "aegis_site.sqlite3":
    # A file, not memory: the real Celery worker of the integration tests is another
    # process and must see the same test database.
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("AEGIS_TEST_SQLITE") or os.path.join(tempfile.gettempdir(),
                                                                     f"aegis-test-{os.getpid()}.sqlite3")}
