"""Anchors: the ledger's head, MACed with a key the database does not hold, kept outside it.

After every verification run in which the ledger verified, its head (seq and hash) is
written to `AEGIS_ANCHOR_DIR/ledger-anchor.json` with an HMAC-SHA256 under
`AEGIS_ANCHOR_KEY`. Whoever can write the database can rebuild a consistent ledger, but not
this file's MAC: a database rolled back to an older copy is behind the anchor, and one
whose ledger was rebuilt differs from it at the anchored seq. Backups carry the head they
were taken at, MACed the same way (workflows.backup)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from workflows.chain import canonical_json
from workflows.serialization import utc_iso

from .models import LedgerEntry

ANCHOR_FILE = "ledger-anchor.json"
FORMAT = "aegis-ledger-anchor"


class AnchorKeyMissing(Exception):
    """AEGIS_ANCHOR_KEY is not set: nothing can be MACed or checked."""


def anchor_key() -> bytes | None:
    key = settings.AEGIS_ANCHOR_KEY
    return key.encode("utf-8") if key else None


def mac(payload: dict) -> str:
    """HMAC-SHA256 (hex) of `payload` as canonical JSON under AEGIS_ANCHOR_KEY."""
    key = anchor_key()
    if key is None:
        raise AnchorKeyMissing("AEGIS_ANCHOR_KEY is not set")
    return hmac.new(key, canonical_json(payload), hashlib.sha256).hexdigest()


def mac_matches(payload: dict, given) -> bool:
    return isinstance(given, str) and hmac.compare_digest(mac(payload), given)


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str
    written_at: str

    def payload(self) -> dict:
        return {"format": FORMAT, "seq": self.seq, "hash": self.hash, "written_at": self.written_at}


def anchor_path() -> Path:
    return Path(settings.AEGIS_ANCHOR_DIR) / ANCHOR_FILE


class AnchorProblem(Exception):
    """The anchor file exists but cannot be trusted (unreadable, edited, another key)."""


def read_anchor() -> Anchor | None:
    """The newest anchor, None if none was written yet; AnchorProblem if the file does not
    verify."""
    path = anchor_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AnchorProblem(f"the anchor file {path} cannot be read: {exc.strerror}") from None
    if anchor_key() is None:
        raise AnchorProblem(f"the anchor file {path} cannot be checked: AEGIS_ANCHOR_KEY is not set")
    try:
        data = json.loads(text)
        anchor = Anchor(seq=data["seq"], hash=data["hash"], written_at=data["written_at"])
        valid = (data.get("format") == FORMAT and isinstance(anchor.seq, int) and isinstance(anchor.hash, str)
                 and mac_matches(anchor.payload(), data.get("mac")))
    except (ValueError, KeyError, TypeError):
        raise AnchorProblem(f"the anchor file {path} is not an AEGIS ledger anchor") from None
    if not valid:
        raise AnchorProblem(f"the anchor file {path} does not verify under AEGIS_ANCHOR_KEY: it was edited, "
                            "or written under another key")
    return anchor


def problem_against(anchor: Anchor, head_seq: int) -> str | None:
    """Why the database's ledger (ending at `head_seq`) does not continue `anchor`, or None."""
    if head_seq < anchor.seq:
        return (f"rolled back: the ledger ends at entry {head_seq}, but the anchor written at {anchor.written_at} "
                f"records entry {anchor.seq}: the database was put back to an older copy, or entries were removed")
    stored = LedgerEntry.objects.filter(seq=anchor.seq).values_list("hash", flat=True).first()
    if stored != anchor.hash:
        return (f"diverged: ledger entry {anchor.seq} is not the one anchored at {anchor.written_at}: the ledger "
                "was rewritten from there on")
    return None


def write_anchor(seq: int, head_hash: str) -> Anchor:
    """Replace the anchor file atomically (a crash leaves the previous one)."""
    anchor = Anchor(seq=seq, hash=head_hash, written_at=utc_iso(timezone.now()))
    path = anchor_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps({**anchor.payload(), "mac": mac(anchor.payload())}) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return anchor
