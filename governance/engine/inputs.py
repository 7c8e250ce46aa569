"""One proposal's inputs (ENGINE.md §1) and their strict validation.

`parse_proposal` is the only door for untrusted data (API bodies, CLI files): nothing is
clipped or coerced silently, and every problem names its field. `ProposalInput` itself
does not re-validate, so trusted callers (tests, re-evaluation of stored proposals) can
build one directly.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

IMPACT_LEVELS: tuple[str, ...] = ("low", "medium", "high", "critical")
CHANGE_TYPES: tuple[str, ...] = ("feature", "refactor", "bugfix", "config")

SUMMARY_MAX_CHARS = 10_000
ID_MAX_CHARS = 200
PHASE_MAX_CHARS = 50
MAX_SUBSCORES = 20
DRIFT_MAX_VALUES = 100_000
DRIFT_BASELINE_MIN_VALUES = 30
METADATA_MAX_BYTES = 16 * 1024

# CLI shorthand -> field name (accepted only with allow_aliases=True).
INPUT_ALIASES: dict[str, str] = {
    "risk": "risk_proposed",
    "risk_base": "risk_baseline",
    "profit": "profit_proposed",
    "profit_base": "profit_baseline",
    "novelty": "novelty_score",
    "complexity": "complexity_score",
    "quality": "quality_score",
}


@dataclass(frozen=True, slots=True)
class UtilityResult:
    """An estimated utility and the standard error of that estimate."""

    mean: float
    std_error: float


def _new_session_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class ProposalInput:
    """The validated inputs of one proposal, with the defaults of ENGINE.md §1."""

    proposal_summary: str
    estimated_impact: str = "medium"
    agent_id: str = "aegis-cli"
    session_id: str = field(default_factory=_new_session_id)
    phase: str = "plan"
    change_type: str | None = None
    risk_baseline: float = 0.0
    risk_proposed: float = 0.0
    profit_baseline: float = 0.0
    profit_proposed: float = 0.0
    novelty_score: float = 0.5
    complexity_score: float = 0.5
    quality_score: float = 0.7
    quality_subscores: tuple[float, ...] = (0.7, 0.7, 0.7)
    utility_result: UtilityResult | None = None
    requires_human_approval: bool = False
    time_sensitive: bool = False
    reversible: bool = True
    shadow_mode: bool = False
    drift_baseline_data: tuple[float, ...] | None = None
    drift_current_data: tuple[float, ...] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class InputError(ValueError):
    """Invalid proposal input.

    `problems` lists every `(field, message)` found; each message names its field.
    `unknown_fields` lists fields that are not part of the input at all: when it is not
    empty, `kind` is "unknown_field" (the API answers 422 with `str(error)`, which is then
    exactly "Unknown field(s): a, b"); otherwise `kind` is "invalid" (the API answers 400).
    """

    UNKNOWN_FIELD = "unknown_field"
    INVALID = "invalid"

    def __init__(self, problems: Sequence[tuple[str, str]], unknown_fields: Sequence[str] = ()):
        self.problems: list[tuple[str, str]] = list(problems)
        self.unknown_fields: tuple[str, ...] = tuple(unknown_fields)
        super().__init__(self.summary())

    @property
    def kind(self) -> str:
        return self.UNKNOWN_FIELD if self.unknown_fields else self.INVALID

    @property
    def fields(self) -> list[str]:
        return [name for name, _ in self.problems]

    def summary(self) -> str:
        if self.unknown_fields:
            return "Unknown field(s): " + ", ".join(self.unknown_fields)
        return "; ".join(message for _, message in self.problems)


class _Invalid(Exception):
    """One field's problem, raised by a field parser and collected by parse_proposal."""


def describe(value: Any) -> str:
    """A short JSON-flavoured description of a rejected value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    if isinstance(value, (list, tuple)):
        return f"an array of {len(value)} item(s)"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (int, float)):
        return repr(value)
    return f"a value of type {type(value).__name__}"


UNICODE_TEXT = "valid Unicode text (no unpaired surrogates)"
_PATH_MAX_CHARS = 200
_SCALAR_TYPES = frozenset({int, float, bool, type(None)})  # skipped fast: drift samples reach 100,000 items


def _is_unicode_text(text: str) -> bool:
    """Whether `text` can be encoded as UTF-8: JSON allows escapes such as "\\ud800" that
    decode to a lone surrogate, which nothing downstream (storage, encryption, responses)
    can encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _non_unicode_text(label: str, value: Any) -> str | None:
    """A message naming the first string in `value` (the value itself, or any string nested
    in its arrays and objects, keys included) that is not valid Unicode text; None if there
    is none. Iterative, so a deeply nested body cannot exhaust the recursion limit."""
    stack: list[tuple[str, Any]] = [(label, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if not _is_unicode_text(item):
                return f"{_short_path(path)} must be {UNICODE_TEXT}, got {describe(item)}"
        elif isinstance(item, Mapping):
            children = []
            for key, child in item.items():
                if isinstance(key, str) and not _is_unicode_text(key):
                    return f"{_short_path(path)} has a key that is not {UNICODE_TEXT}, got {describe(key)}"
                children.append((f"{path}[{json.dumps(str(key), ensure_ascii=False)}]", child))
            stack.extend(reversed(children))
        elif isinstance(item, (list, tuple)) and not set(map(type, item)) <= _SCALAR_TYPES:
            children = [(f"{path}[{index}]", child) for index, child in enumerate(item)
                        if isinstance(child, (str, Mapping, list, tuple))]
            stack.extend(reversed(children))
    return None


def _short_path(path: str) -> str:
    return path if len(path) <= _PATH_MAX_CHARS else path[:_PATH_MAX_CHARS - 3] + "..."


def _range_text(low: float, high: float | None) -> str:
    return f"≥ {low:g}" if high is None else f"in [{low:g}, {high:g}]"


def _expected_number(low: float | None, high: float | None) -> str:
    return "a number" if low is None else f"a number {_range_text(low, high)}"


def _number(label: str, value: Any, low: float | None = None, high: float | None = None) -> float:
    """A finite int or float (never a bool or a numeric string) within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid(f"{label} must be {_expected_number(low, high)}, got {describe(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise _Invalid(f"{label} must be a finite number, got an integer too large for a float") from None
    if not math.isfinite(number):
        raise _Invalid(f"{label} must be a finite number, got {number!r}")
    if (low is not None and number < low) or (high is not None and number > high):
        raise _Invalid(f"{label} must be {_range_text(low, high)}, got {number!r}")
    return number


def _number_list(label: str, value: Any, *, low: float | None, high: float | None,
                 min_items: int, max_items: int) -> tuple[float, ...]:
    """A list of finite numbers; vectorised after a type pass, since drift samples reach
    100,000 items."""
    if not isinstance(value, (list, tuple)):
        raise _Invalid(f"{label} must be an array of numbers, got {describe(value)}")
    if not min_items <= len(value) <= max_items:
        raise _Invalid(f"{label} must have {min_items}–{max_items:,} items, got {len(value):,}")
    for index, item in enumerate(value):
        kind = type(item)
        if kind is not float and kind is not int and (
                isinstance(item, bool) or not isinstance(item, (int, float))):
            raise _Invalid(f"{label}[{index}] must be a number, got {describe(item)}")
    try:
        numbers = np.asarray(value, dtype=np.float64)
    except OverflowError:
        raise _Invalid(f"{label} holds an integer too large for a float") from None
    bad = ~np.isfinite(numbers)
    if bad.any():
        index = int(np.argmax(bad))
        raise _Invalid(f"{label}[{index}] must be a finite number, got {float(numbers[index])!r}")
    if low is not None and high is not None:
        bad = (numbers < low) | (numbers > high)
        if bad.any():
            index = int(np.argmax(bad))
            raise _Invalid(f"{label}[{index}] must be {_range_text(low, high)}, got {float(numbers[index])!r}")
    return tuple(numbers.tolist())


def _text(label: str, value: Any, max_chars: int) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"{label} must be a string, got {describe(value)}")
    if len(value) > max_chars:
        raise _Invalid(f"{label} must be at most {max_chars:,} characters, got {len(value):,}")
    return value


def _summary(label: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"{label} must be a string, got {describe(value)}")
    text = value.strip()
    if not text:
        raise _Invalid(f"{label} must not be empty")
    if len(text) > SUMMARY_MAX_CHARS:
        raise _Invalid(f"{label} must be at most {SUMMARY_MAX_CHARS:,} characters after trimming, "
                       f"got {len(text):,}")
    return text


def _choice(choices: tuple[str, ...], *, optional: bool = False) -> Callable[[str, Any], str | None]:
    def parse(label: str, value: Any) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or value not in choices:
            raise _Invalid(f"{label} must be one of {', '.join(choices)}, got {describe(value)}")
        return value
    return parse


def _flag(label: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"{label} must be true or false, got {describe(value)}")
    return value


def _utility_result(label: str, value: Any) -> UtilityResult | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _Invalid(f"{label} must be an object {{mean, std_error}}, got {describe(value)}")
    extra = [str(key) for key in value if key not in ("mean", "std_error")]
    if extra:
        raise _Invalid(f"{label} has unknown key(s) {', '.join(extra)}; expected {{mean, std_error}}")
    missing = [key for key in ("mean", "std_error") if key not in value]
    if missing:
        raise _Invalid(f"{label} is missing {', '.join(missing)}; expected {{mean, std_error}}")
    return UtilityResult(mean=_number(f"{label}.mean", value["mean"]),
                         std_error=_number(f"{label}.std_error", value["std_error"], 0.0))


def _metadata(label: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _Invalid(f"{label} must be a JSON object, got {describe(value)}")
    if not all(isinstance(key, str) for key in value):
        raise _Invalid(f"{label} keys must be strings")
    try:
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise _Invalid(f"{label} must hold only JSON values ({exc})") from None
    size = len(encoded.encode("utf-8"))
    if size > METADATA_MAX_BYTES:
        raise _Invalid(f"{label} must be at most {METADATA_MAX_BYTES:,} bytes as JSON, got {size:,}")
    return dict(value)


def _optional_number_list(**limits: Any) -> Callable[[str, Any], tuple[float, ...] | None]:
    def parse(label: str, value: Any) -> tuple[float, ...] | None:
        return None if value is None else _number_list(label, value, **limits)
    return parse


def parse_unit_interval(**values: Any) -> dict[str, float]:
    """Each keyword value as a float in [0, 1]; InputError naming every bad one."""
    parsed: dict[str, float] = {}
    problems: list[tuple[str, str]] = []
    for name, value in values.items():
        try:
            parsed[name] = _number(name, value, 0.0, 1.0)
        except _Invalid as problem:
            problems.append((name, str(problem)))
    if problems:
        raise InputError(problems)
    return parsed


def _unit_interval(label: str, value: Any) -> float:
    return _number(label, value, 0.0, 1.0)


def _non_negative(label: str, value: Any) -> float:
    return _number(label, value, 0.0)


# field -> parser(label, raw value). `None` is accepted only where the default is "absent".
_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "proposal_summary": _summary,
    "estimated_impact": _choice(IMPACT_LEVELS),
    "agent_id": lambda label, value: _text(label, value, ID_MAX_CHARS),
    "session_id": lambda label, value: _text(label, value, ID_MAX_CHARS),
    "phase": lambda label, value: _text(label, value, PHASE_MAX_CHARS),
    "change_type": _choice(CHANGE_TYPES, optional=True),
    "risk_baseline": _unit_interval,
    "risk_proposed": _unit_interval,
    "profit_baseline": _non_negative,
    "profit_proposed": _non_negative,
    "novelty_score": _unit_interval,
    "complexity_score": _unit_interval,
    "quality_score": _unit_interval,
    "quality_subscores": lambda label, value: _number_list(
        label, value, low=0.0, high=1.0, min_items=0, max_items=MAX_SUBSCORES),
    "utility_result": _utility_result,
    "requires_human_approval": _flag,
    "time_sensitive": _flag,
    "reversible": _flag,
    "shadow_mode": _flag,
    "drift_baseline_data": _optional_number_list(
        low=None, high=None, min_items=DRIFT_BASELINE_MIN_VALUES, max_items=DRIFT_MAX_VALUES),
    "drift_current_data": _optional_number_list(
        low=None, high=None, min_items=0, max_items=DRIFT_MAX_VALUES),
    "metadata": _metadata,
}


def parse_proposal(data: Mapping[str, Any], *, allow_aliases: bool = False) -> ProposalInput:
    """Validate a request body (or CLI input) and build a ProposalInput.

    Raises InputError listing every problem at once. With `allow_aliases` (the CLI), the
    shorthand names of INPUT_ALIASES are accepted; giving an alias and its field is an error.
    """
    if not isinstance(data, Mapping):
        raise InputError([("body", f"the proposal must be a JSON object, got {describe(data)}")])
    problems: list[tuple[str, str]] = []
    unknown: list[str] = []
    given: dict[str, tuple[str, Any]] = {}  # field -> (key as given, raw value)
    for key, value in data.items():
        if isinstance(key, str) and not _is_unicode_text(key):
            problems.append(("body", f"body has a field name that is not {UNICODE_TEXT}, got {describe(key)}"))
            continue
        name = INPUT_ALIASES.get(key, key) if allow_aliases else key
        if name not in _PARSERS:
            unknown.append(str(key))
        elif name in given:
            first_key = given[name][0]
            problems.append((key, f"{first_key} and {key} both set {name}; give only one of them"))
        else:
            given[name] = (key, value)

    parsed: dict[str, Any] = {}
    for name, (key, value) in given.items():
        bad_text = _non_unicode_text(key, value)
        if bad_text is not None:
            problems.append((key, bad_text))
            continue
        try:
            parsed[name] = _PARSERS[name](key, value)
        except _Invalid as problem:
            problems.append((key, str(problem)))
    if "proposal_summary" not in given:
        problems.append(("proposal_summary", "proposal_summary is required"))
    problems.extend((key, f"{key} is not a known field") for key in unknown)
    if problems:
        raise InputError(problems, unknown)
    return ProposalInput(**parsed)
