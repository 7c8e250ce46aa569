"""governance.monitoring reads the PromQL the rules and dashboards hold: which metrics a
selector names, which labels it matches, groups, joins on or creates, and clear errors for
what is not PromQL."""

import pytest

from governance.monitoring import PromQLError, Rule, parse, unknown_in_rules, unknown_names

EXPORTED = {"aegis_decisions_total": frozenset({"status", "shadow"}),
            "aegis_decision_latency_seconds_bucket": frozenset({"le"}),
            "aegis_drift_kl_divergence": frozenset({"tenant"}),
            "aegis_drift_kl_threshold": frozenset({"tenant", "level"})}


@pytest.mark.parametrize("expr, metrics, grouping, created", [
    ("aegis_decisions_total", {"aegis_decisions_total": set()}, set(), set()),
    ('sum by (status) (rate(aegis_decisions_total{shadow="false", job=~"aegis.*"}[5m] offset 1h))',
     {"aegis_decisions_total": {"shadow", "job"}}, {"status"}, set()),
    ("sum(rate(aegis_decisions_total[$__rate_interval])) without (shadow)",
     {"aegis_decisions_total": set()}, {"shadow"}, set()),
    ("histogram_quantile(0.99, sum by (le) (rate(aegis_decision_latency_seconds_bucket[5m:1m])))",
     {"aegis_decision_latency_seconds_bucket": set()}, {"le"}, set()),
    ('aegis_drift_kl_divergence >= ignoring (level) group_left aegis_drift_kl_threshold{level="critical"}',
     {"aegis_drift_kl_divergence": set(), "aegis_drift_kl_threshold": {"level"}}, {"level"}, set()),
    ('{__name__="aegis_decisions_total", status=~"${status:regex}"}', {"aegis_decisions_total": set()},
     {"status"}, set()),
    ('label_replace(up, "host", "$1", "instance", "(.*):.*") * on (host) group_right node_load1',
     {"up": set(), "node_load1": set()}, {"instance", "host"}, {"host"}),
    ('label_join(aegis_decisions_total, "both", "-", "status", "shadow")', {"aegis_decisions_total": set()},
     {"status", "shadow"}, {"both"}),
    ("time() - max(aegis_drift_kl_divergence) > 26 * 3600 and bool 1e3 < Inf  # a comment",
     {"aegis_drift_kl_divergence": set()}, set(), set()),
])
def test_metrics_and_labels_an_expression_uses(expr, metrics, grouping, created):
    usage = parse(expr)
    assert (usage.metrics, usage.grouping, usage.created) == (metrics, grouping, created)


@pytest.mark.parametrize("expr, message", [
    ("sum(rate(x[5m])", "'(' is never closed"),
    ("x)", "')' closes nothing"),
    ("x{status}", "a label matcher is not `label op \"value\"`"),
    ("x{status=5}", "a label matcher is not `label op \"value\"`: status = 5"),
    ("x[5m", "'[' is never closed"),
    ("x ; y", "unexpected ';' at character 3"),
    ('sum by ("status") (x)', "by (...) holds something other than label names"),
    ('label_replace(x, "a")', "label_replace needs a destination label, a string and source label(s)"),
])
def test_what_is_not_promql_is_refused_saying_why(expr, message):
    with pytest.raises(PromQLError) as error:
        parse(expr)
    assert str(error.value) == message


def test_unknown_metrics_and_labels_with_the_likely_new_names():
    found = unknown_names("panel 'KL'", 'max by (customer) (aegis_drift_kl_divergence_ratio{tenant="a"}) '
                                        '> on (tenant) aegis_drift_kl_threshold{levels="critical"}', EXPORTED)
    assert [str(item) for item in found] == [
        "panel 'KL' uses metric aegis_drift_kl_divergence_ratio, which this version does not export "
        "(renamed? this version has aegis_drift_kl_divergence)",
        "panel 'KL' uses label 'levels' of aegis_drift_kl_threshold, which this version does not export "
        "(renamed? this version has level)",
        "panel 'KL' uses label 'customer' of the metrics it reads, which this version does not export "
        "(removed or renamed)"]


def test_prometheus_own_series_and_target_labels_are_known():
    assert unknown_names("rule A", 'up{job="aegis"} == 0 and on (instance) '
                                   'aegis_decisions_total{instance="web1"}', EXPORTED) == []


def test_labels_are_not_checked_where_only_names_are_known():
    assert unknown_names("rule A", "sum by (anything) (aegis_decisions_total{x=\"y\"})",
                         {"aegis_decisions_total": None}) == []


def test_a_recording_rule_is_a_series_later_rules_may_read():
    rules = [Rule("aegis:decisions:rate5m", "sum by (status) (rate(aegis_decisions_total[5m]))", records=True),
             Rule("Quiet", "aegis:decisions:rate5m == 0", records=False)]
    assert unknown_in_rules(rules, EXPORTED) == []
    assert [str(item) for item in unknown_in_rules(rules[1:], EXPORTED)] == [
        "rule Quiet uses metric aegis:decisions:rate5m, which this version does not export (removed or renamed)"]


def test_a_bad_expression_names_its_rule():
    with pytest.raises(PromQLError, match=r"^rule A: '\(' is never closed$"):
        unknown_names("rule A", "sum(x", EXPORTED)
