"""Helpers for the backup tests (imported as `backup_support`): read and rewrite backup
files, decrypt their records, and write a format-1 (plain records) file as releases before
encrypted backups did."""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from governance import __version__ as APP_VERSION
from governance.engine.config import contract_version
from governance.fields import current_ciphers
from ledger import anchors

# The first line of every format-1 file, spelled out: that is what older backups hold.
FORMAT_1_HEADER = '{"format": "aegis-backup", "format_version": 1, "sections": {\n'
MANIFEST_PREFIX = '"manifest": '
# Sections 1.2.0 added, long after format 1 (and decisions' pks): no format-1 file has them.
SECTIONS_OF_1_2 = {"decision_seals", "ledger_entries", "groups", "accounts", "schedules",
                   "drift_baselines", "drift_reports"}


def read_text(path: Path) -> str:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="\n") as f:
        return f.read()


def write_text(path: Path, text: str) -> None:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8", newline="\n") as f:
        f.write(text)


def is_format_1(text: str) -> bool:
    return text.startswith(FORMAT_1_HEADER)


def record_positions(lines: list[str]) -> list[tuple[str, int]]:
    """(section, line index) of every record line of a backup split with keepends."""
    positions, section = [], None
    for index, line in enumerate(lines[1:], start=1):
        stripped = line.rstrip("\n")
        if line.startswith(MANIFEST_PREFIX):
            break
        if section is None:
            if stripped != "},":
                section = json.loads(stripped.lstrip(",").removesuffix(": ["))
        elif stripped == "]":
            section = None
        else:
            positions.append((section, index))
    return positions


def records_of(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every (section, record) of a backup file, format-2 records decrypted with FERNET_KEYS
    and decompressed."""
    lines = read_text(path).splitlines(keepends=True)
    ciphers, _ = current_ciphers()
    result = []
    for section, index in record_positions(lines):
        item = json.loads(lines[index].rstrip("\n").lstrip(","))
        if isinstance(item, str):
            item = json.loads(zlib.decompress(ciphers.decrypt(item.encode("ascii"))))
        result.append((section, item))
    return result


def with_manifest_rehashed(text: str, *, counts: dict[str, int] | None = None, remac: bool = True) -> str:
    """`text` with its manifest's sha256 (and `counts`, if given) recomputed: what someone
    who alters a file and covers their tracks would do. `remac` also recomputes the MAC, as
    only someone holding AEGIS_ANCHOR_KEY can: that reaches the checks behind the MAC."""
    body, _, manifest_line = text.rpartition("\n" + MANIFEST_PREFIX)
    body += "\n"
    manifest = json.loads(manifest_line.rstrip().removesuffix("}"))
    manifest["sha256"] = hashlib.sha256(body.encode("utf-8")).hexdigest()
    manifest["counts"].update(counts or {})
    if remac and "mac" in manifest:
        manifest["mac"] = anchors.mac({name: value for name, value in manifest.items() if name != "mac"})
    return body + MANIFEST_PREFIX + json.dumps(manifest) + "}\n"


def write_format_1(path: Path) -> dict[str, Any]:
    """A format-1 backup of the database as the writer before encrypted backups made it:
    each record a plain JSON object on its line. Returns the manifest."""
    from workflows.backup import SECTIONS

    sections = [s for s in SECTIONS if s.name not in SECTIONS_OF_1_2]

    digest = hashlib.sha256()
    counts: dict[str, int] = {}
    parts: list[str] = []

    def emit(text: str) -> None:
        parts.append(text)
        digest.update(text.encode("utf-8"))

    emit(FORMAT_1_HEADER)
    with transaction.atomic():
        for position, section in enumerate(sections):
            emit(("," if position else "") + json.dumps(section.name) + ": [\n")
            count = 0
            for record in section.dump():
                if section.name == "decisions":
                    del record["pk"]
                emit(("," if count else "")
                     + json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n")
                count += 1
            emit("]\n")
            counts[section.name] = count
    emit("},\n")
    manifest = {"schema_version": contract_version(), "app_version": APP_VERSION, "format_version": 1,
                "created_at": timezone.now().isoformat(), "counts": counts, "sha256": digest.hexdigest()}
    write_text(path, "".join(parts) + MANIFEST_PREFIX + json.dumps(manifest) + "}\n")
    return manifest
