"""Drift baselines (PLATFORM.md §6): uploaded files (JSON array, CSV with a header,
whitespace-separated), their errors naming the file, line and value, NaN/Infinity refused,
the kl_min_samples minimum, and "the decisions between two dates"."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone as dt_timezone

import pytest

from calibration.versions import active_config
from governance import drift
from governance.drift import DriftError, parse_baseline_file
from governance.engine.inputs import DRIFT_MAX_VALUES
from governance.models import DriftBaseline
from test_drift_support import *  # noqa: F401,F403
from test_drift_support import BASELINE_SETTER, make_decisions, normal_grid

VALUES = [round(0.05 + 0.001 * i, 3) for i in range(32)]


def _text(values, sep=","):
    return sep.join(repr(v) for v in values)


# --- accepted formats -------------------------------------------------------------------------

@pytest.mark.parametrize("content", [
    f"[{_text(VALUES, ', ')}]".encode(),  # a JSON array
    ("[\n  " + _text(VALUES, ",\n  ") + "\n]\n").encode(),  # pretty-printed JSON
    ("risk_proposed\n" + _text(VALUES, "\n") + "\n").encode(),  # CSV with a header
    ("risk_proposed\r\n" + _text(VALUES, "\r\n") + "\r\n").encode(),  # … with CRLF line ends
    _text(VALUES).encode(),  # one comma-separated line
    (_text(VALUES[:10], " ") + "\n" + _text(VALUES[10:20], "\t") + "\n\n  " + _text(VALUES[20:], "   ")).encode(),
    ("\ufeff" + _text(VALUES, "\n")).encode("utf-8"),  # a UTF-8 byte order mark
    (_text(VALUES[:16], ", ") + "\n" + _text(VALUES[16:], " ")).encode(),  # commas and spaces mixed
], ids=["json", "json-pretty", "csv-header", "csv-crlf", "one-line", "whitespace", "bom", "mixed"])
def test_accepted_formats_give_the_numbers_in_order(content):
    assert parse_baseline_file(content, "baseline.txt") == VALUES


def test_json_integers_and_exponents_become_floats():
    values = parse_baseline_file(b"[0, 1, 2.5e-2, -3E1]", "b.json")
    assert values == [0.0, 1.0, 0.025, -30.0] and all(type(v) is float for v in values)


# --- refused content: the error names the file and where -------------------------------------------

@pytest.mark.parametrize("content, expected", [
    (b"risk\n0.1\nabc\n0.2\n", ["bad.csv", "line 3", "value 1", "'abc'"]),
    (b"0.1,0.2\n0.3,x9\n", ["bad.csv", "line 2", "value 2", "'x9'"]),
    (b"0.1 0.2\n0.3 0.4, 0.5 1O\n", ["bad.csv", "line 2", "value 4", "'1O'"]),
], ids=["word", "second-column", "space-and-comma-cells"])
def test_non_numbers_are_refused_naming_file_line_and_value(content, expected):
    with pytest.raises(DriftError) as raised:
        parse_baseline_file(content, "bad.csv")
    for part in expected:
        assert part in str(raised.value)


@pytest.mark.parametrize("content, expected", [
    (b'[0.1, "0.2"]', ["bad.json", "item 2", "'0.2'"]),
    (b"[0.1, true]", ["bad.json", "item 2", "True"]),
    (b"[0.1, null]", ["bad.json", "item 2", "None"]),
    (b"[0.1, [0.2]]", ["bad.json", "item 2"]),
    (b"[0.1, 0.2", ["bad.json", "not a valid JSON array"]),
], ids=["string", "bool", "null", "nested", "truncated"])
def test_json_items_that_are_not_numbers_are_refused(content, expected):
    with pytest.raises(DriftError) as raised:
        parse_baseline_file(content, "bad.json")
    for part in expected:
        assert part in str(raised.value)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_json_nan_and_infinity_are_refused(literal):
    with pytest.raises(DriftError, match=r"bad\.json: item 2 .*not a finite number"):
        parse_baseline_file(f"[0.1, {literal}, 0.2]".encode(), "bad.json")


@pytest.mark.parametrize("literal", ["nan", "NaN", "inf", "Infinity", "-inf", "1e999"])
def test_csv_nan_and_infinity_are_refused(literal):
    content = ("risk\n0.1\n" + literal + "\n0.2\n").encode()
    with pytest.raises(DriftError) as raised:
        parse_baseline_file(content, "bad.csv")
    assert "bad.csv: line 3, value 1" in str(raised.value) and "not a finite number" in str(raised.value)


@pytest.mark.parametrize("first_line", ["NaN", "inf", "Infinity,0.5,0.6"])
def test_csv_nan_or_infinity_on_the_first_line_is_refused_not_taken_for_a_header(first_line):
    """Regression (fixed in e712ce8): parse_baseline_file took any failure on line 1 for "a
    header line" and skipped the rest of that line, so a file starting with NaN or Infinity
    was accepted with that line silently dropped (finite values after it included)."""
    content = (first_line + "\n" + _text(VALUES, "\n")).encode()
    with pytest.raises(DriftError, match=r"bad\.csv: line 1, value 1 .*not a finite number"):
        parse_baseline_file(content, "bad.csv")


def test_a_file_that_is_not_utf8_is_refused():
    with pytest.raises(DriftError, match=r"bin\.csv: not a UTF-8 text file"):
        parse_baseline_file(b"\xff\xfe\x00\x81", "bin.csv")


@pytest.mark.parametrize("content, expected", [
    (b"abc def ghi\n", "words.txt: line 1, value 1 ('abc') is not a number, and no numbers follow"),
    (b"risk_proposed\n", "words.txt: line 1, value 1 ('risk_proposed') is not a number, and no numbers follow"),
    (b"abc\ndef\n", "words.txt: line 2, value 1 ('def') is not a number"),
    (b'{"values": [0.1, 0.2]}', "words.txt: a JSON object, not an array; expected numbers such as [0.12, 0.3]"),
], ids=["one-line-of-words", "header-only", "lines-of-words", "json-object"])
def test_a_file_without_numbers_says_where_and_what_was_expected(content, expected):
    """Regression (issue 13): a file of words was taken for a header line and refused as
    "0 value(s)", which did not say what was wrong with it."""
    with pytest.raises(DriftError) as raised:
        parse_baseline_file(content, "words.txt")
    assert str(raised.value).startswith(expected)


def test_an_empty_file_parses_to_nothing_and_set_baseline_refuses_it(db, make_tenant):
    assert parse_baseline_file(b"", "empty.csv") == []
    with pytest.raises(DriftError, match=r"uploaded empty\.csv: 0 value\(s\); a baseline needs at least 30"):
        drift.set_baseline(make_tenant(), [], actor=BASELINE_SETTER, source="uploaded empty.csv")


# --- set_baseline -------------------------------------------------------------------------------

@pytest.mark.django_db
def test_set_baseline_stores_the_values_with_source_and_actor(make_tenant):
    customer = make_tenant("Based")
    baseline = drift.set_baseline(customer, VALUES, actor=BASELINE_SETTER, source="uploaded b.csv")
    stored = DriftBaseline.objects.get(pk=baseline.pk)
    assert stored.values == VALUES and stored.source == "uploaded b.csv" and stored.created_by == "rita"
    assert DriftBaseline.objects.filter(customer=customer).first() == stored


@pytest.mark.django_db
def test_set_baseline_needs_kl_min_samples_values(make_tenant):
    customer = make_tenant("Short")
    minimum = active_config()[1].kl_min_samples
    with pytest.raises(DriftError) as raised:
        drift.set_baseline(customer, VALUES[: minimum - 1], actor=BASELINE_SETTER, source="uploaded few.csv")
    assert str(raised.value) == (f"uploaded few.csv: {minimum - 1} value(s); a baseline needs at least {minimum} "
                                 f"(kl_drift.min_samples)")
    assert not DriftBaseline.objects.exists()
    drift.set_baseline(customer, VALUES[:minimum], actor=BASELINE_SETTER, source="exactly the minimum")
    assert DriftBaseline.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), True, "0.1", None])
def test_set_baseline_refuses_values_that_are_not_finite_numbers(make_tenant, bad):
    values = [*VALUES[:5], bad, *VALUES[5:]]
    with pytest.raises(DriftError, match=r"api upload: value 6 .*not a finite number"):
        drift.set_baseline(make_tenant(), values, actor=BASELINE_SETTER, source="api upload")
    assert not DriftBaseline.objects.exists()


@pytest.mark.django_db
def test_set_baseline_refuses_more_than_the_maximum(make_tenant):
    with pytest.raises(DriftError, match=f"at most {DRIFT_MAX_VALUES}"):
        drift.set_baseline(make_tenant(), [0.5] * (DRIFT_MAX_VALUES + 1), actor=BASELINE_SETTER, source="huge")
    assert not DriftBaseline.objects.exists()


# --- the decisions between two dates -----------------------------------------------------------

def _at(day: date, hh=12, mm=0, ss=0, us=0) -> datetime:
    return datetime.combine(day, time(hh, mm, ss, us), tzinfo=dt_timezone.utc)


@pytest.mark.django_db
def test_baseline_from_decisions_takes_both_dates_inclusive_and_this_tenant_only(make_tenant):
    customer, other = make_tenant("Ranged"), make_tenant("Elsewhere")
    start, end = date(2025, 2, 1), date(2025, 2, 10)
    inside = normal_grid(0.05, 0.01, 30)
    make_decisions(customer, inside[:10], _at(start, 0, 0, 0))  # the first instant of the start day
    make_decisions(customer, inside[10:20], _at(start + timedelta(days=4)))
    make_decisions(customer, inside[20:], _at(end, 23, 59, 59, 999999))  # the last instant of the end day
    make_decisions(customer, [0.9] * 3, _at(start - timedelta(days=1), 23, 59, 59, 999999))
    make_decisions(customer, [0.9] * 3, _at(end + timedelta(days=1), 0, 0, 0))
    make_decisions(other, [0.9] * 30, _at(start + timedelta(days=2)))

    baseline = drift.set_baseline_from_decisions(customer, start, end, actor=BASELINE_SETTER)

    assert sorted(baseline.values) == sorted(inside.tolist())
    assert baseline.source == "decisions 2025-02-01 to 2025-02-10"
    assert baseline.created_by == "rita" and baseline.customer == customer


@pytest.mark.django_db
def test_baseline_from_decisions_refusals(make_tenant):
    customer = make_tenant("Ranged badly")
    make_decisions(customer, normal_grid(0.05, 0.01, 12), date(2025, 2, 3))
    with pytest.raises(DriftError, match=r"the end date 2025-02-01 is before the start date 2025-02-05"):
        drift.set_baseline_from_decisions(customer, date(2025, 2, 5), date(2025, 2, 1), actor=BASELINE_SETTER)
    with pytest.raises(DriftError, match=r"decisions 2025-02-01 to 2025-02-05: 12 value\(s\); a baseline needs "
                                         r"at least 30"):
        drift.set_baseline_from_decisions(customer, date(2025, 2, 1), date(2025, 2, 5), actor=BASELINE_SETTER)
    assert not DriftBaseline.objects.exists()


def test_a_json_integer_too_large_for_a_float_is_refused_not_a_crash():
    """Regression (fixed in e712ce8): `_number` called math.isfinite() on a JSON integer, which
    raises OverflowError (not DriftError) beyond float range; the upload view answered 500."""
    content = b"[0.1, 1" + b"0" * 400 + b", 0.2]"
    with pytest.raises(DriftError, match=r"big\.json: item 2 .*not a finite number"):
        parse_baseline_file(content, "big.json")
