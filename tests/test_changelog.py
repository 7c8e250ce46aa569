"""CHANGELOG.md: the version in code has its release there (and pyproject.toml says the same),
every migration is named in exactly one release, and governance.changelog reads releases,
sections and entries, refusing what would hide an entry."""

import re
import tomllib
from pathlib import Path

import pytest

from governance import __version__, changelog
from governance.changelog import ChangelogError, Release

ROOT = Path(__file__).resolve().parent.parent
MIGRATION_NAME = re.compile(r"^`(\w+) (\d{4}_\w+)`")


def test_the_version_in_code_is_pyproject_s_and_the_newest_release_of_the_changelog():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == __version__
    releases = changelog.read()
    assert releases, "CHANGELOG.md has no release"
    assert releases[0].version == __version__, (
        f"governance.__version__ is {__version__} but the newest release in CHANGELOG.md is {releases[0].version}")


def test_every_release_lists_its_migrations_and_every_migration_is_in_exactly_one_release():
    named = [MIGRATION_NAME.match(entry) for release in changelog.read()
             for entry in release.sections.get("Migrations", [])]
    assert all(named), "each Migrations entry starts with `app NNNN_name`"
    listed = [match.groups() for match in named]
    on_disk = [(path.parent.parent.name, path.stem) for path in ROOT.glob("*/migrations/0*.py")]
    assert len(listed) == len(set(listed)), "a migration is listed twice"
    assert sorted(listed) == sorted(on_disk)


def test_the_shipped_changelog_has_the_four_sections_where_they_apply():
    releases = {release.version: release for release in changelog.read()}
    assert set(releases["1.1.0"].sections) == {"Added", "Changed", "Breaking", "Migrations"}
    assert any("append-only" in entry for entry in releases["1.1.0"].breaking)
    assert releases["1.0.0"].breaking == []  # the first release breaks nothing before it


EXAMPLE = """# Changelog

Some prose, and a list that belongs to no release:

- not an entry

## [Unreleased]

### Added

- something not released yet

## [2.0.0] - 2027-01-15

### Breaking

- The `foo` setting is gone: use
  `bar` instead.
- Second.

### Added

- Baz.

## [1.10.0] - 2026-12-20

### Migrations

- `governance 0099_x`: instant.

## [1.9.0] - 2026-12-10
"""


def test_parse_reads_releases_sections_and_wrapped_entries_newest_first():
    releases = changelog.parse(EXAMPLE)
    assert [(r.version, r.date) for r in releases] == [("2.0.0", "2027-01-15"), ("1.10.0", "2026-12-20"),
                                                       ("1.9.0", "2026-12-10")]
    assert releases[0].breaking == ["The `foo` setting is gone: use `bar` instead.", "Second."]
    assert releases[0].sections["Added"] == ["Baz."]
    assert releases[1].sections == {"Migrations": ["`governance 0099_x`: instant."]} and releases[1].breaking == []
    assert releases[2].sections == {}


@pytest.mark.parametrize("text, message", [
    ("## [1.0] - 2026-01-01\n", "x.md line 1: '1.0' is not a version X.Y.Z"),
    ("## [01.0.0] - 2026-01-01\n", "x.md line 1: '01.0.0' is not a version X.Y.Z"),
    ("## 1.0.0 - 2026-01-01\n", "x.md line 1: expected a release heading '## [X.Y.Z] - YYYY-MM-DD'"),
    ("## [1.0.0]\n", "x.md line 1: expected a release heading"),
    ("## [1.0.0] - 2026-01-01\n### Breakng\n- x\n", "x.md line 2: unknown section 'Breakng' (expected one of Added"),
    ("## [1.0.0] - 2026-01-01\n- x\n", "x.md line 2: entry before the first '### Section' of release 1.0.0"),
    ("### Added\n", "x.md line 1: section 'Added' outside a release"),
    ("## [1.0.0] - 2026-01-01\n### Added\n### Added\n", "x.md line 3: release 1.0.0 has a second 'Added' section"),
    ("## [1.0.0] - 2026-01-01\n## [1.1.0] - 2026-02-01\n", "x.md line 2: release 1.1.0 must come after"),
    ("## [1.0.0] - 2026-01-01\n## [1.0.0] - 2026-01-01\n", "x.md line 2: release 1.0.0 must come after"),
])
def test_parse_refuses_what_would_hide_or_misplace_an_entry(text, message):
    with pytest.raises(ChangelogError) as info:
        changelog.parse(text, source="x.md")
    assert str(info.value).startswith(message)


def test_read_names_a_file_it_cannot_read(tmp_path):
    with pytest.raises(ChangelogError, match=f"cannot read the changelog {tmp_path / 'missing.md'}"):
        changelog.read(tmp_path / "missing.md")


RELEASES = [Release("2.0.0", "2027-01-15"), Release("1.10.0", "2026-12-20"), Release("1.9.0", "2026-12-10"),
            Release("1.1.0", "2026-12-03")]


@pytest.mark.parametrize("running, target, expected", [
    ("1.1.0", "2.0.0", ["1.9.0", "1.10.0", "2.0.0"]),   # oldest first; 1.10 after 1.9, not as text
    ("1.1.0", "1.9.0", ["1.9.0"]),
    ("1.9.0", "1.10.0", ["1.10.0"]),
    ("1.1.0", "1.1.0", []),
    ("1.0.0", "1.1.0", ["1.1.0"]),                     # a running version the changelog does not list
])
def test_releases_to_upgrade_are_those_after_running_up_to_and_including_target(running, target, expected):
    assert [r.version for r in changelog.releases_to_upgrade(RELEASES, running, target)] == expected


@pytest.mark.parametrize("running, target, message", [
    ("1.10.0", "1.9.0", "target version 1.9.0 is older than the running version 1.10.0"),
    ("1.1.0", "1.2.0", "the changelog has no release 1.2.0 (its releases: 2.0.0, 1.10.0, 1.9.0, 1.1.0)"),
    ("1.1.0", "2.0", "'2.0' is not a version X.Y.Z"),
    ("1.1.0", "v2.0.0", "'v2.0.0' is not a version X.Y.Z"),
])
def test_releases_to_upgrade_refuses_an_older_unknown_or_malformed_target(running, target, message):
    with pytest.raises(ChangelogError) as info:
        changelog.releases_to_upgrade(RELEASES, running, target)
    assert str(info.value).startswith(message)
