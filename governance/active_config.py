"""The configuration every decision is made under, and its version number.

Until configuration versions are stored (the calibration issue), the active
configuration is the interface contract's defaults, version 1.
"""

from __future__ import annotations

from governance.engine import AegisConfig


def active_config() -> tuple[int, AegisConfig]:
    return 1, AegisConfig.default()
