"""JSON parsing that keeps NaN/Infinity as floats, so validation can reject them with
the field's name instead of a body-wide parse error."""

import json

from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser


class JSONBodyParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        if not raw.strip():
            return {}
        try:
            return json.loads(raw.decode("utf-8"), parse_constant=float)
        except UnicodeDecodeError:
            raise ParseError("Malformed JSON body: not UTF-8") from None
        except ValueError as exc:
            raise ParseError(f"Malformed JSON body: {exc}") from None
