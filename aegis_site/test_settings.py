"""Settings for the test suite: production settings (DEBUG off) with a test-only secret key."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")

from .settings import *  # noqa: E402,F401,F403
