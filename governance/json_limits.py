"""JSON from untrusted text, and stored JSON shown on pages, without the traps of Python's
json module (docs/decisions.md, "Hostile input").

The json module recurses: a document nested a thousand levels deep fails with
RecursionError (a 500) when it is parsed, encoded or repr'd. It also keeps the last of
duplicate keys silently, and accepts "\\u0000", which PostgreSQL cannot store in a text
column. `loads_strict` refuses all three, naming the limit, the key or the field; and
`display_json` shows a stored value of any depth. No Django here: the `aegis` command line
uses it too.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

DEFAULT_MAX_DEPTH = 32
_PATH_MAX_CHARS = 200
_KEY_MAX_CHARS = 100

# A JSON string token (valid JSON only: the text has parsed), then anything but brackets.
_STRING_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST_PAIR = re.compile(r"\[\]|\{\}")
_ESCAPED_NUL = "\\u0000"
TOO_DEEP_TO_SHOW = "… (nested too deeply to show)"


class JsonInputError(Exception):
    """A JSON document refused for its shape: `code` is stable for machines, the message
    names the limit, the key or the field."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def loads_strict(text: str, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse `text` like json.loads (NaN and Infinity kept as floats, so validation can name
    the field that carries them) and refuse, with JsonInputError: arrays and objects nested
    more than `max_depth` levels (the outermost counts as 1), a key given twice in one
    object, and NUL characters in any string or key. Malformed JSON raises ValueError as
    json.loads does."""
    try:
        value = json.loads(text, parse_constant=float, object_pairs_hook=_object_without_duplicate_keys)
    except RecursionError:
        raise _too_deep(max_depth) from None
    if _deeper_than(text, max_depth):
        raise _too_deep(max_depth)
    if _ESCAPED_NUL in text:  # the only way a NUL gets into valid JSON: a raw one is a parse error
        where = _first_nul(value)
        if where is not None:
            raise JsonInputError("nul_character", f"{where} must not contain NUL characters (\\u0000)")
    return value


def _too_deep(max_depth: int) -> JsonInputError:
    return JsonInputError("json_too_deep",
                          f"JSON nested too deeply: at most {max_depth} levels of arrays and objects are accepted")


def _object_without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JsonInputError("duplicate_key", f"Duplicate key {_quoted(key)} in a JSON object: "
                                                      "each key may appear only once")
            seen.add(key)
    return result


def _deeper_than(text: str, max_depth: int) -> bool:
    """Whether the (valid) JSON `text` nests arrays and objects more than `max_depth` deep.
    Strings are dropped, leaving only brackets; each pass removes every innermost empty
    pair, i.e. one level, in C. No recursion, and no pass at all beyond `max_depth`."""
    if text.count("[") + text.count("{") <= max_depth:  # the usual body: a handful of brackets
        return False
    brackets = _NOT_BRACKET.sub("", _STRING_TOKEN.sub("", text))
    for _ in range(max_depth):
        if not brackets:
            return False
        brackets = _INNERMOST_PAIR.sub("", brackets)
    return bool(brackets)


def _first_nul(value: Any) -> str | None:
    """The path of the first string or key holding a NUL (`proposal_summary`,
    `metadata["note"]`, `tags[2]`), in document order; None if there is none."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return _short(path or "the body")
        elif isinstance(item, dict):
            children = []
            for key, child in item.items():
                if "\x00" in key:
                    return f"a key of {_short(path or 'the body')}"
                children.append((key if not path else f"{path}[{_quoted(key)}]", child))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([(f"{path}[{index}]", child) for index, child in enumerate(item)
                                   if isinstance(child, (str, dict, list))]))
    return None


def _quoted(key: str) -> str:
    key = key if len(key) <= _KEY_MAX_CHARS else key[:_KEY_MAX_CHARS] + "…"
    return json.dumps(key)


def _short(path: str) -> str:
    return path if len(path) <= _PATH_MAX_CHARS else path[:_PATH_MAX_CHARS - 3] + "..."


def display_json(value: Any, *, max_depth: int = DEFAULT_MAX_DEPTH) -> str:
    """Indented JSON (sorted keys) of a stored value for people to read. Arrays and objects
    deeper than `max_depth` show as TOO_DEEP_TO_SHOW: data stored before the depth limit
    existed must still render, and the json encoder would recurse into it."""
    return json.dumps(_cut_below(value, max_depth), indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _cut_below(value: Any, max_depth: int) -> Any:
    """A copy of `value` with every array or object below `max_depth` levels replaced by
    TOO_DEEP_TO_SHOW; iterative, so any depth works."""
    holder: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(value, holder, 0, 1)]  # (item, parent, slot, its depth)
    while stack:
        item, parent, slot, depth = stack.pop()
        if isinstance(item, (dict, list, tuple)) and depth > max_depth:
            parent[slot] = TOO_DEEP_TO_SHOW
        elif isinstance(item, dict):
            copy: dict[Any, Any] = dict.fromkeys(item)
            parent[slot] = copy
            stack.extend((child, copy, key, depth + 1) for key, child in item.items())
        elif isinstance(item, (list, tuple)):
            copy_list: list[Any] = [None] * len(item)
            parent[slot] = copy_list
            stack.extend((child, copy_list, index, depth + 1) for index, child in enumerate(item))
        else:
            parent[slot] = item
    return holder[0]


def on_fresh_stack(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """function(*args, **kwargs) in a new thread, whose Python stack starts empty. The json
    module's C encoder and decoder count their nesting against the recursion limit together
    with the caller's frames: a value nested 900 levels deep (stored before the depth limit)
    decodes in a short call stack and fails in the admin's long one. Only for that retry."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args, **kwargs).result()
