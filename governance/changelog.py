"""CHANGELOG.md read as data, so `aegis_preflight --target-version` can list what an upgrade
breaks. The file is Keep a Changelog: `## [X.Y.Z] - YYYY-MM-DD` per release, newest first,
each with `### Section` headings holding `- ` entries. Anything else that looks like a
heading is an error naming the line, so a typo cannot hide a Breaking section."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CHANGELOG_PATH = Path(__file__).resolve().parents[1] / "CHANGELOG.md"

# Keep a Changelog's six, and the two an upgrade needs: what breaks, what `migrate` does.
SECTIONS = ("Added", "Changed", "Deprecated", "Removed", "Fixed", "Security", "Breaking", "Migrations")

VERSION = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")
RELEASE_HEADING = re.compile(r"## \[(?P<version>[^\]]*)\] - (?P<date>\d{4}-\d{2}-\d{2})")
UNRELEASED_HEADING = "## [Unreleased]"


class ChangelogError(ValueError):
    """A changelog or a version that cannot be read; the message says where and what was expected."""


def parse_version(text: str) -> tuple[int, int, int]:
    """`X.Y.Z` as a comparable tuple (no pre-release or build suffix: releases only)."""
    match = VERSION.fullmatch(text.strip())
    if not match:
        raise ChangelogError(f"{text!r} is not a version X.Y.Z (three numbers, e.g. 1.1.0)")
    return tuple(int(part) for part in match.groups())


@dataclass
class Release:
    version: str
    date: str
    sections: dict[str, list[str]] = field(default_factory=dict)

    @property
    def key(self) -> tuple[int, int, int]:
        return parse_version(self.version)

    @property
    def breaking(self) -> list[str]:
        return self.sections.get("Breaking", [])


def parse(text: str, source: str = "CHANGELOG.md") -> list[Release]:
    """The releases of a changelog, newest first ([Unreleased] is not a release: left out)."""
    releases: list[Release] = []
    release: Release | None = None
    entries: list[str] | None = None  # the entries of the current section, or None outside one
    skipping_unreleased = False
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{source} line {number}"
        if line.startswith("## "):
            skipping_unreleased = line.strip() == UNRELEASED_HEADING
            entries = None
            if skipping_unreleased:
                release = None
                continue
            heading = RELEASE_HEADING.fullmatch(line.strip())
            if not heading:
                raise ChangelogError(f"{where}: expected a release heading '## [X.Y.Z] - YYYY-MM-DD', got {line!r}")
            try:
                parse_version(heading["version"])
            except ChangelogError as exc:
                raise ChangelogError(f"{where}: {exc}") from None
            release = Release(heading["version"], heading["date"])
            if releases and release.key >= releases[-1].key:
                raise ChangelogError(f"{where}: release {release.version} must come after (be older than) "
                                     f"{releases[-1].version}: newest first, each version once")
            releases.append(release)
        elif skipping_unreleased:
            continue
        elif line.startswith("### "):
            name = line[4:].strip()
            if release is None:
                raise ChangelogError(f"{where}: section {name!r} outside a release")
            if name not in SECTIONS:
                raise ChangelogError(f"{where}: unknown section {name!r} (expected one of {', '.join(SECTIONS)})")
            if name in release.sections:
                raise ChangelogError(f"{where}: release {release.version} has a second {name!r} section")
            entries = release.sections[name] = []
        elif line.startswith("- ") and release is not None:
            if entries is None:
                raise ChangelogError(f"{where}: entry before the first '### Section' of release {release.version}")
            entries.append(line[2:].strip())
        elif line.startswith((" ", "\t")) and line.strip() and entries:
            entries[-1] += " " + line.strip()  # an entry's continuation line
    return releases


def read(path: Path = DEFAULT_CHANGELOG_PATH) -> list[Release]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ChangelogError(f"cannot read the changelog {path}: {exc}") from None
    return parse(text, source=str(path))


def releases_to_upgrade(releases: list[Release], running: str, target: str) -> list[Release]:
    """The releases an upgrade from `running` to `target` installs: after running, up to and
    including target, oldest first. The target must be one of `releases`, not older than running."""
    running_key, target_key = parse_version(running), parse_version(target)
    if target_key < running_key:
        raise ChangelogError(f"target version {target} is older than the running version {running}: "
                             "going back is a restore (docs/upgrade.md), not an upgrade")
    if not any(release.key == target_key for release in releases):
        known = ", ".join(release.version for release in releases) or "none"
        raise ChangelogError(f"the changelog has no release {target} (its releases: {known})")
    return sorted((release for release in releases if running_key < release.key <= target_key),
                  key=lambda release: release.key)
