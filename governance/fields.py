"""The one place that decides how confidential columns are stored.

`EncryptedField` keeps a value encrypted at rest with Fernet (keys from FERNET_KEYS: the
first encrypts, all decrypt, so keys rotate), together with a `value_type` discriminator
(`str`, `bytes`, `json`) so that what goes in comes back with the same type and value.
Every PII column of the project (PLATFORM.md §7) is declared through `pii_text_field` /
`pii_json_field`, so changing how PII is stored is a change here and a migration.
"""

from __future__ import annotations

import base64
import json
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from fernet_fields import EncryptedField as FernetField
from fernet_fields.hkdf import derive_fernet_key

from .json_limits import on_fresh_stack

VALUE_TYPES = ("str", "bytes", "json")


class DecryptionError(RuntimeError):
    """A stored value that none of FERNET_KEYS decrypts (a key was removed too early, or
    the wrong keys are configured). Never answered with ciphertext or garbage."""


class Undecryptable:
    """Stands for a stored value that no configured key decrypts, where the reader asked to
    be told rather than stopped (audit verification reports it as a broken chain)."""

    __slots__ = ("where",)

    def __init__(self, where: str):
        self.where = where

    def __repr__(self) -> str:
        return "[cannot decrypt]"

    __str__ = __repr__


_MARK_UNDECRYPTABLE: ContextVar[bool] = ContextVar("aegis_mark_undecryptable", default=False)


@contextmanager
def undecryptable_as_marker() -> Iterator[None]:
    """Within this block, reading a value no key decrypts gives an `Undecryptable` instead
    of raising DecryptionError. Only for readers that report it (never write it back:
    encoding an Undecryptable fails)."""
    token = _MARK_UNDECRYPTABLE.set(True)
    try:
        yield
    finally:
        _MARK_UNDECRYPTABLE.reset(token)


def encode_value(value: Any, value_type: str) -> bytes:
    """`value_type:payload` plaintext for one value."""
    if value_type == "str":
        if not isinstance(value, str):
            raise TypeError(f"expected str, got {type(value).__name__}")
        payload = value.encode("utf-8")
    elif value_type == "bytes":
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"expected bytes, got {type(value).__name__}")
        payload = base64.b64encode(bytes(value))
    else:
        options = {"ensure_ascii": False, "separators": (",", ":"), "allow_nan": False}
        try:
            text = json.dumps(value, **options)
        except RecursionError:  # deep data stored before the depth limit (governance.json_limits)
            text = on_fresh_stack(json.dumps, value, **options)
        payload = text.encode("utf-8")
    return value_type.encode("ascii") + b":" + payload


def decode_value(plaintext: bytes) -> Any:
    value_type, _, payload = plaintext.partition(b":")
    kind = value_type.decode("ascii", "replace")
    if kind == "str":
        return payload.decode("utf-8")
    if kind == "bytes":
        return base64.b64decode(payload)
    if kind == "json":
        text = payload.decode("utf-8")
        try:
            return json.loads(text)
        except RecursionError:  # deep data stored before the depth limit (governance.json_limits)
            return on_fresh_stack(json.loads, text)
    raise DecryptionError(f"unknown value_type {kind!r} in an encrypted value")


@lru_cache(maxsize=8)
def _ciphers(keys: tuple[str, ...]) -> tuple[MultiFernet, Fernet]:
    if not keys:
        raise ImproperlyConfigured("FERNET_KEYS is empty: at least one key is needed to read or write PII")
    fernets = [Fernet(derive_fernet_key(key)) for key in keys]
    return MultiFernet(fernets), fernets[0]


def current_ciphers() -> tuple[MultiFernet, Fernet]:
    """(all keys, the first key) from the FERNET_KEYS setting as it is now, so a settings
    change (tests, rotation) takes effect without restarting."""
    keys = getattr(settings, "FERNET_KEYS", None)
    if not isinstance(keys, (list, tuple)) or not all(isinstance(key, str) and key for key in keys):
        raise ImproperlyConfigured("FERNET_KEYS must be a list of non-empty key strings (the first encrypts, "
                                   f"all decrypt), got {type(keys).__name__}")
    return _ciphers(tuple(keys))


def decrypt_stored(value: Any, fernet: MultiFernet, where: str) -> Any:
    """The plaintext value of one stored encrypted column, as the database driver returned
    it (bytes, memoryview or str); None stays None. The one decryption path: the field
    uses it, and so do raw-cursor readers (audit verification) that skip the ORM for speed."""
    if value is None:
        return None
    try:
        return decode_value(fernet.decrypt(value.encode() if isinstance(value, str) else bytes(value)))
    except (InvalidToken, DecryptionError, ValueError):
        if _MARK_UNDECRYPTABLE.get():
            return Undecryptable(where)
        raise DecryptionError(undecryptable_message(where)) from None


def undecryptable_message(where: str) -> str:
    return (f"cannot decrypt {where}: no key in FERNET_KEYS decrypts this value "
            "(a key removed before `manage.py aegis_rotate_keys` finished, the wrong keys configured, "
            "or a value altered in the database)")


class EncryptedField(FernetField):
    """A Fernet-encrypted column whose plaintext carries its value_type.

    `value_type` fixes the type the column accepts (`str`, `bytes` or `json`). Lookups
    other than isnull are refused (the ciphertext differs on every write).
    """

    _internal_type = "BinaryField"

    def __init__(self, *args, value_type: str = "str", **kwargs):
        if value_type not in VALUE_TYPES:
            raise ImproperlyConfigured(f"value_type must be one of {VALUE_TYPES}, got {value_type!r}")
        self.value_type = value_type
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["value_type"] = self.value_type
        return name, path, args, kwargs

    @property
    def fernet(self) -> MultiFernet:
        return current_ciphers()[0]

    def get_db_prep_save(self, value, connection):
        if value is None:
            return None
        return connection.Database.Binary(self.fernet.encrypt(encode_value(value, self.value_type)))

    def plaintext(self, value) -> bytes:
        """The stored value decrypted but not decoded (`value_type:payload`), for readers that
        copy it on as it is (backups); raises DecryptionError exactly as reading the column does."""
        try:
            return self.fernet.decrypt(value.encode() if isinstance(value, str) else bytes(value))
        except InvalidToken:
            raise DecryptionError(undecryptable_message(self.where)) from None

    @property
    def where(self) -> str:
        return f"{self.model._meta.label}.{self.name}"

    def from_db_value(self, value, expression, connection, *args):
        return decrypt_stored(value, self.fernet, self.where)

    def to_python(self, value):
        return value

    def value_from_object(self, obj):
        return getattr(obj, self.attname)


def pii_text_field(**options) -> models.Field:
    """A text column holding personal or confidential data, encrypted at rest."""
    return EncryptedField(value_type="str", **options)


def pii_json_field(**options) -> models.Field:
    """A JSON column holding personal or confidential data, encrypted at rest."""
    return EncryptedField(value_type="json", **options)


def secret_json_field(**options) -> models.Field:
    """A JSON value that must never be readable at rest (e.g. a response carrying a new
    API key's plaintext)."""
    return EncryptedField(value_type="json", **options)


def secret_bytes_field(**options) -> models.Field:
    """Bytes that must never be readable at rest (e.g. an attestation signing key's seed)."""
    return EncryptedField(value_type="bytes", **options)
