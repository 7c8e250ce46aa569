"""Every relative link in the repository's documentation resolves, #anchor included, and no
document sends the reader outside the repository (../shared)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "deploy").rglob("*.md"), *(ROOT / "docs").glob("*.md")])

FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)
EXPLICIT_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"", re.I)


def prose(path: Path) -> str:
    """The document without its code blocks, where brackets are not links."""
    return FENCE.sub("", path.read_text(encoding="utf-8"))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = prose(path)
    found: set[str] = set(EXPLICIT_ANCHOR.findall(text))
    seen: dict[str, int] = {}
    for heading in HEADING.findall(text):
        base = slug(heading)
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return found


def relative_links(path: Path) -> list[str]:
    return [target for target in LINK.findall(INLINE_CODE.sub("", prose(path)))
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I)]


def test_the_documents_are_found():
    names = {path.relative_to(ROOT).as_posix() for path in DOCS}
    assert {"README.md", "deploy/README.md", "docs/engine.md", "docs/api.md", "docs/operations.md"} <= names


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(doc):
    broken = []
    for target in relative_links(doc):
        file_part, _, anchor = target.partition("#")
        destination = (doc.parent / file_part).resolve() if file_part else doc
        if not destination.exists():
            broken.append(f"{target}: no file {file_part}")
        elif not destination.is_relative_to(ROOT):
            broken.append(f"{target}: outside the repository")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: no heading or anchor #{anchor} in {destination.relative_to(ROOT)}")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_no_document_names_the_shared_directory(doc):
    assert "../shared" not in doc.read_text(encoding="utf-8")


def test_the_checker_sees_a_broken_link_and_a_missing_anchor(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## A `code` heading, too\n\n[ok](#a-code-heading-too) [bad](#nowhere) "
                    "[gone](missing.md) `[not a link](x.md)`\n\n```\n[in code](y.md)\n```\n", encoding="utf-8")
    assert relative_links(page) == ["#a-code-heading-too", "#nowhere", "missing.md"]
    assert anchors(page) == {"title", "a-code-heading-too"}


def test_every_alert_runbook_names_a_section_of_the_operations_guide():
    """The shipped rules' `runbook` annotations are links too (relative to the repository)."""
    import yaml

    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "aegis-rules.yml").read_text(encoding="utf-8"))
    runbooks = {rule["alert"]: rule["annotations"]["runbook"] for group in rules["groups"] for rule in group["rules"]}
    targets = anchors(ROOT / "docs" / "operations.md")
    missing = {alert: link for alert, link in runbooks.items()
               if not link.startswith("docs/operations.md#") or link.partition("#")[2] not in targets}
    assert runbooks and not missing, missing
