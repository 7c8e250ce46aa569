"""aegis_preflight --target-version: the Breaking entries of every release after the running
version up to the target, read from the target's changelog (--changelog) or the shipped one;
a malformed, older or unknown target fails the preflight with a message naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from governance import __version__
from test_wf_commands import run, run_refused

pytestmark = pytest.mark.django_db

TARGET_CHANGELOG = Path(__file__).resolve().parents[1] / "fixtures" / "changelog" / "CHANGELOG.md"


@pytest.fixture
def running_1_1_0(monkeypatch):
    """The fixture changelog is written for a server running 1.1.0, whatever the code's version."""
    monkeypatch.setattr("workflows.management.commands.aegis_preflight.__version__", "1.1.0")


def test_preflight_lists_the_breaking_entries_up_to_the_target_and_still_passes(running_1_1_0, tmp_path):
    out, _ = run("aegis_preflight", target_version="1.2.0", changelog_path=str(TARGET_CHANGELOG),
                 backup=str(tmp_path / "b.json"))
    assert ("       breaking in 1.2.0: `AEGIS_OLD_SETTING` is gone: set `AEGIS_NEW_SETTING` instead before "
            "migrating.\n") in out
    assert "       breaking in 1.2.0: `/customer/usage` answers months as `YYYY-MM` only.\n" in out
    assert ("[WARN] upgrade 1.1.0 → 1.2.0: 2 breaking change(s) in 2 release(s) of CHANGELOG.md "
            "(act on each before migrating)") in out
    assert "Beyond the target" not in out and "Already running" not in out
    assert "Preflight passed: nothing blocks the upgrade." in out


def test_preflight_upgrade_without_breaking_changes_is_ok(running_1_1_0, tmp_path):
    out, _ = run("aegis_preflight", target_version="1.1.1", changelog_path=str(TARGET_CHANGELOG),
                 backup=str(tmp_path / "b.json"))
    assert "[OK  ] upgrade 1.1.0 → 1.1.1: 0 breaking change(s) in 1 release(s) of CHANGELOG.md" in out
    assert "breaking in" not in out


def test_preflight_reads_the_shipped_changelog_by_default(tmp_path):
    out, _ = run("aegis_preflight", target_version=__version__, backup=str(tmp_path / "b.json"))
    assert f"[OK  ] upgrade {__version__} → {__version__}: 0 breaking change(s) in 0 release(s) of CHANGELOG.md" in out


@pytest.mark.parametrize("options, message", [
    ({"target_version": "1.2"}, "--target-version 1.2: '1.2' is not a version X.Y.Z (three numbers, e.g. 1.1.0)"),
    ({"target_version": "1.0.9"}, "--target-version 1.0.9: target version 1.0.9 is older than the running version "
                                  "1.1.0"),
    ({"target_version": "1.2.5"}, "--target-version 1.2.5: the changelog has no release 1.2.5 (its releases: 1.3.0, "
                                  "1.2.0, 1.1.1, 1.1.0)"),
    ({}, "--changelog needs --target-version (the version whose breaking changes to list)"),
])
def test_preflight_fails_naming_a_bad_target(running_1_1_0, tmp_path, options, message):
    error, out, _ = run_refused("aegis_preflight", changelog_path=str(TARGET_CHANGELOG),
                                backup=str(tmp_path / "b.json"), **options)
    assert error.returncode == 1
    assert f"[FAIL] {message}" in out
    assert f"Upgrade blocked by 1 problem(s):\n  - {message}" in out


def test_preflight_fails_naming_the_line_of_a_malformed_changelog(running_1_1_0, tmp_path):
    broken = tmp_path / "CHANGELOG.md"
    broken.write_text(TARGET_CHANGELOG.read_text().replace("### Breaking", "### Breaking changes", 1))
    error, out, _ = run_refused("aegis_preflight", target_version="1.2.0", changelog_path=str(broken),
                                backup=str(tmp_path / "b.json"))
    assert error.returncode == 1
    assert f"[FAIL] --target-version 1.2.0: {broken} line 7: unknown section 'Breaking changes'" in out
