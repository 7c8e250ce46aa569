"""Which metrics and labels a Prometheus rule or dashboard query uses, and which of them this
version does not export.

Alert rules and dashboards name metrics by string: a metric renamed or removed here makes a
deployment's alert silently never fire. tests/monitoring checks the shipped files against a
live /metrics; `aegis_preflight --prometheus-rules FILE` checks a deployment's own copy.
PromQL is read by a small tokenizer, enough for selectors, matchers, grouping clauses and
label_replace/label_join; Grafana's `$variable` / `${variable}` / `[[variable]]` are skipped.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

import yaml

# Series Prometheus itself adds for every scrape target, and the labels it adds to every series.
PROMETHEUS_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped",
                               "scrape_samples_post_metric_relabeling", "scrape_series_added"})
TARGET_LABELS = frozenset({"job", "instance"})

# Sample names a family of each type exposes (prometheus_client's text format). Not `_created`:
# gunicorn's multiprocess mode does not export it, so a rule must not rely on it.
_SAMPLE_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "untyped": ("",), "unknown": ("",),
                    "histogram": ("_bucket", "_count", "_sum"), "summary": ("", "_count", "_sum"),
                    "info": ("_info",), "stateset": ("",), "gaugehistogram": ("_bucket", "_gcount", "_gsum")}

_TOKEN = re.compile(r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<variable>\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\])
  | (?P<number>(?:0[xX][0-9a-fA-F]+|\d*\.?\d+(?:[eE][+-]?\d+)?)[a-zA-Z0-9]*)
  | (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<operator>=~|!~|==|!=|<=|>=|[-+*/%^<>=@,:])
  | (?P<bracket>[(){}\[\]])
""", re.VERBOSE)
_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}
_MATCH_OPERATORS = {"=", "!=", "=~", "!~"}


class PromQLError(ValueError):
    """An expression or file this module cannot read; the message says where and why."""


@dataclass
class Usage:
    """What one expression reads: metric -> labels matched on it, labels it groups or matches
    vectors on, and labels it creates itself (label_replace / label_join)."""

    metrics: dict[str, set[str]] = field(default_factory=dict)
    grouping: set[str] = field(default_factory=set)
    created: set[str] = field(default_factory=set)


def _tokens(expr: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        if not match:
            raise PromQLError(f"unexpected {expr[position]!r} at character {position + 1}")
        if match.lastgroup != "space":
            tokens.append((match.lastgroup, match.group()))
        position = match.end()
    return tokens


def _unquote(text: str) -> str:
    return text[1:-1] if text[0] == "`" else re.sub(r"\\(.)", r"\1", text[1:-1])


def parse(expr: str) -> Usage:
    """The metrics and labels `expr` uses. Raises PromQLError on what is not PromQL."""
    tokens, usage = _tokens(expr), Usage()
    calls: list[tuple[int, str, list[str]]] = []  # open label_replace/label_join: depth, name, string args
    depth, i = 0, 0

    def upcoming() -> str:
        return tokens[i + 1][1] if i + 1 < len(tokens) else ""

    def closing(opening: str, closer: str) -> int:
        """Index of the bracket closing the one at i."""
        level = 0
        for j in range(i, len(tokens)):
            level += (tokens[j][1] == opening) - (tokens[j][1] == closer)
            if level == 0:
                return j
        raise PromQLError(f"{opening!r} is never closed")

    def matchers(start: int, end: int, metric: str | None) -> None:
        """`label op "value"` pairs between the braces at start and end."""
        parts = [token for token in tokens[start + 1:end] if token[1] != ","]
        if len(parts) % 3:
            raise PromQLError("a label matcher is not `label op \"value\"`")
        for (kind, label), (_, op), (value_kind, value) in zip(parts[::3], parts[1::3], parts[2::3]):
            if kind != "name" or op not in _MATCH_OPERATORS or value_kind not in {"string", "variable"}:
                raise PromQLError(f"a label matcher is not `label op \"value\"`: {label} {op} {value}")
            if label == "__name__":
                if op == "=" and value_kind == "string":
                    usage.metrics.setdefault(_unquote(value), set())
            elif metric is None:
                usage.grouping.add(label)
            else:
                usage.metrics[metric].add(label)

    while i < len(tokens):
        kind, text = tokens[i]
        if kind == "name" and text in _GROUPING and upcoming() == "(":
            i += 1
            end = closing("(", ")")
            labels = [value for _, value in tokens[i + 1:end] if value != ","]
            if any(not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", label) for label in labels):
                raise PromQLError(f"{text} (...) holds something other than label names")
            usage.grouping.update(labels)
            i = end
        elif kind == "name" and text.lower() in _KEYWORDS | _GROUPING:
            pass
        elif kind == "name" and (upcoming() == "(" or upcoming() in {"by", "without"}):  # a function, `sum by`
            if text in {"label_replace", "label_join"}:
                calls.append((depth + 1, text, []))
        elif kind == "name":
            usage.metrics.setdefault(text, set())
            if upcoming() == "{":
                i += 1
                end = closing("{", "}")
                matchers(i, end, text)
                i = end
        elif text == "{":
            end = closing("{", "}")
            matchers(i, end, None)
            i = end
        elif text == "[":
            i = closing("[", "]")  # a range or subquery: durations only
        elif text == "(":
            depth += 1
        elif text == ")":
            if not depth:
                raise PromQLError("')' closes nothing")
            if calls and calls[-1][0] == depth:
                _, name, strings = calls.pop()
                if len(strings) < 3:
                    raise PromQLError(f"{name} needs a destination label, a string and source label(s)")
                usage.created.add(strings[0])  # label_replace(v, dst, replacement, src, regex)
                usage.grouping.update(strings[2:3] if name == "label_replace" else strings[2:])
            depth -= 1
        elif kind == "string" and calls and calls[-1][0] == depth:
            calls[-1][2].append(_unquote(text))
        i += 1
    if depth:
        raise PromQLError("'(' is never closed")
    return usage


@dataclass(frozen=True)
class Unknown:
    """A metric, or a label of one, that an expression uses and this version does not export."""

    where: str
    metric: str
    label: str | None = None
    rename: str | None = None

    def __str__(self) -> str:
        what = f"label {self.label!r} of {self.metric}" if self.label else f"metric {self.metric}"
        hint = f" (renamed? this version has {self.rename})" if self.rename else " (removed or renamed)"
        return f"{self.where} uses {what}, which this version does not export{hint}"


# sample name -> its labels; None where only the name is known (from the definitions).
Exported = dict[str, "frozenset[str] | None"]


def _close(name: str, candidates) -> str | None:
    found = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.75)
    return found[0] if found else None


def unknown_names(where: str, expr: str, exported: Exported) -> list[Unknown]:
    """Everything `expr` (of the rule or panel `where`) names that `exported` lacks. Labels of
    a selector are checked against its metric; grouping and vector-matching labels against
    all the metrics the expression reads (and the labels it creates itself)."""
    try:
        usage = parse(expr)
    except PromQLError as exc:
        raise PromQLError(f"{where}: {exc}") from None
    found, groupable, labels_known = [], set(TARGET_LABELS) | usage.created, True
    for metric, labels in usage.metrics.items():
        if metric in PROMETHEUS_SERIES:
            continue
        if metric not in exported:
            found.append(Unknown(where, metric, rename=_close(metric, exported)))
            continue
        known = exported[metric]
        if known is None:
            labels_known = False
            continue
        groupable |= known
        found += [Unknown(where, metric, label, rename=_close(label, known))
                  for label in sorted(labels - known - TARGET_LABELS)]
    if labels_known:
        found += [Unknown(where, "the metrics it reads", label, rename=_close(label, groupable))
                  for label in sorted(usage.grouping - groupable)]
    return found


def exported_in(exposition: str) -> Exported:
    """Sample names and their labels in a /metrics answer (Prometheus text format)."""
    from prometheus_client.parser import text_string_to_metric_families

    exported: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            exported.setdefault(sample.name, set()).update(sample.labels)
    return {name: frozenset(labels) for name, labels in exported.items()}


def exported_by_this_version() -> Exported:
    """Every sample name this version's /metrics can answer, from the metric definitions
    (a labelled counter no request has touched yet included); labels are not known here."""
    from prometheus_client import REGISTRY

    from .metrics import STORED_WORK_COLLECTORS

    families = [*REGISTRY.collect(), *(family for collector in STORED_WORK_COLLECTORS
                                       for family in collector.describe())]
    return {family.name + suffix: None for family in families for suffix in _SAMPLE_SUFFIXES[family.type]}


@dataclass(frozen=True)
class Rule:
    name: str
    expr: str
    records: bool  # a recording rule: its name is a series later rules may read


def read_rules(text: str, source: str) -> list[Rule]:
    """The rules of a Prometheus rules file; PromQLError naming `source` if it is not one."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PromQLError(f"{source} is not YAML: {exc}") from None
    groups = document.get("groups") if isinstance(document, dict) else None
    if not isinstance(groups, list):
        raise PromQLError(f"{source}: expected a Prometheus rules file, a mapping with a list under 'groups'")
    rules = []
    for group_number, group in enumerate(groups, 1):
        if not isinstance(group, dict) or not isinstance(group.get("rules"), list):
            raise PromQLError(f"{source}: group {group_number} has no list under 'rules'")
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record") if isinstance(rule, dict) else None
            if not isinstance(name, str) or not isinstance(rule.get("expr"), (str, int, float)):
                raise PromQLError(f"{source}: group {group.get('name', group_number)!r}: every rule needs "
                                  f"'alert' or 'record', and 'expr'")
            rules.append(Rule(name, str(rule["expr"]), records="record" in rule))
    return rules


def unknown_in_rules(rules: list[Rule], exported: Exported) -> list[Unknown]:
    """What the rules name that this version does not export; a recording rule's series
    counts as exported (its labels unchecked)."""
    known = {**exported, **{rule.name: None for rule in rules if rule.records}}
    return [unknown for rule in rules for unknown in unknown_names(f"rule {rule.name}", rule.expr, known)]
