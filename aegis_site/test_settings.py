"""Settings for the test suite: production settings (DEBUG off) with a test-only secret key."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")

from .settings import *  # noqa: E402,F401,F403
from .settings import DATABASES  # noqa: E402

if DATABASES["default"]["ENGINE"] == "aegis_site.sqlite3":
    # A file, not memory: the real Celery worker of the integration tests is another
    # process and must see the same test database.
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("AEGIS_TEST_SQLITE") or os.path.join(tempfile.gettempdir(),
                                                                     f"aegis-test-{os.getpid()}.sqlite3")}
