"""The one parser of every DRF view (REST_FRAMEWORK's DEFAULT_PARSER_CLASSES): JSON only,
read up to AEGIS_MAX_BODY_BYTES, parsed by `governance.json_limits.loads_strict` (depth,
duplicate keys, NUL characters; NaN/Infinity kept as floats, so validation can reject them
with the field's name instead of a body-wide parse error)."""

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from governance.json_limits import JsonInputError, loads_strict

from .errors import ApiError, body_too_large


class JSONBodyParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.AEGIS_MAX_BODY_BYTES
        # RequestGuardMiddleware already refused a larger Content-Length; this bounds what is
        # read whatever the stream claims.
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise body_too_large(None)
        if not raw.strip():
            return {}
        try:
            return loads_strict(raw.decode("utf-8"), max_depth=settings.AEGIS_JSON_MAX_DEPTH)
        except UnicodeDecodeError:
            raise ParseError("Malformed JSON body: not UTF-8") from None
        except JsonInputError as exc:
            raise ApiError(400, exc.code, exc.message) from None
        except ValueError as exc:
            raise ParseError(f"Malformed JSON body: {exc}") from None
