"""The impact preview (PLATFORM.md §3): the last kl_window_days of non-shadow decisions
re-decided under the proposed configuration by the batch replay must count exactly what a
scalar re-evaluation (`pcw_decide` per decision) counts. And the decision made after an
apply carries the new version and uses the new threshold."""

from __future__ import annotations

import json

import pytest
from cal_decisions import make_decisions, scalar_changes
from cal_support import ensure_seed, make_user
from django.db import transaction

from calibration import services
from calibration.versions import active_config
from governance.engine import AegisConfig
from governance.models import Decision, Tier
from governance.services import create_customer
from workflows.services import actor_for

DEFAULTS = AegisConfig.default()


@pytest.fixture(scope="module")
def stored(django_db_setup, django_db_blocker):
    """~230 decisions made once for the module, inside a transaction rolled back at its end
    (each test runs in a savepoint within it)."""
    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            ensure_seed()
            customer, _, _ = create_customer("Replay Co", tier=Tier.objects.get(name="team"))
            yield make_decisions(customer)
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


CHANGES = [
    ("novelty_threshold", 0.9),
    ("novelty_threshold", 0.7),
    ("complexity_floor", 0.6),
    ("complexity_floor", 0.4),
    ("tau_critical", 0.8),
    ("tau_critical", 0.35),
    ("quality_min_score", 0.8),
    ("utility_threshold", 0.02),
    ("risk_trigger_factor", 3.0),
    ("profit_trigger_factor", 1.5),
    ("trigger_confidence_prob", 0.6),
    ("novelty_N0", 0.75),
    ("novelty_k", 5.0),
    ("epsilon_R", 0.05),
    ("prior_mean", 0.5),
    ("likelihood_std", 1.0),
    ("tau_warning", 0.45),  # a warning adds a constraint only: no status changes
]
MUST_CHANGE = {("novelty_threshold", 0.9), ("complexity_floor", 0.6), ("tau_critical", 0.8),
               ("tau_critical", 0.35), ("quality_min_score", 0.8), ("utility_threshold", 0.02)}


@pytest.mark.django_db
@pytest.mark.parametrize(("parameter", "value"), CHANGES)
def test_preview_counts_equal_a_scalar_re_evaluation(parameter, value, stored):
    preview = services.preview_change(parameter, value)

    _, active = active_config()
    expected, by_id = scalar_changes(stored["window"], active, active.replace(**{parameter: value}))
    assert preview.changes == dict(expected)
    assert preview.changed == sum(expected.values())
    assert preview.decisions == len(stored["window"])  # shadow and older decisions left out
    assert (preview.parameter, preview.current_value, preview.proposed_value, preview.window_days) == (
        parameter, getattr(DEFAULTS, parameter), value, 30)
    if (parameter, value) in MUST_CHANGE:
        assert preview.changed > 0
    if parameter == "tau_warning":
        assert preview.changes == {}
    for change, examples in preview.examples.items():
        assert 1 <= len(examples) <= min(5, preview.changes[change])
        assert all(by_id[example] == change for example in examples)
    assert [count for _, count, _ in preview.rows] == sorted(preview.changes.values(), reverse=True)


@pytest.mark.django_db
def test_shadow_and_old_decisions_are_left_out(stored):
    """The same change over all stored decisions would count more: the exclusions matter."""
    preview = services.preview_change("novelty_threshold", 0.9)
    _, active = active_config()
    everything, _ = scalar_changes(stored["window"] + stored["shadow"] + stored["old"], active,
                                   active.replace(novelty_threshold=0.9))
    outside, _ = scalar_changes(stored["shadow"] + stored["old"], active, active.replace(novelty_threshold=0.9))
    assert sum(outside.values()) > 0
    assert preview.changed == sum(everything.values()) - sum(outside.values())
    assert Decision.objects.filter(shadow=True).count() == len(stored["shadow"])


@pytest.mark.django_db
def test_preview_of_a_proposal_through_the_api_and_the_review_page(stored, browser):
    alice, bob = make_user("alice", risk_lead=True), make_user("bob", risk_lead=True)
    proposal = services.propose("complexity_floor", 0.6, "Too many tangled changes pass", actor=actor_for(alice))
    _, active = active_config()
    expected, _ = scalar_changes(stored["window"], active, active.replace(complexity_floor=0.6))

    response = browser(bob).get(f"/api/calibration/proposals/{proposal.proposal_id}/preview")
    assert response.status_code == 200
    body = response.json()
    assert (body["decisions"], body["changed"], body["changes"]) == (
        len(stored["window"]), sum(expected.values()), dict(expected))

    page = browser(bob).get(f"/calibration/{proposal.proposal_id}/").content.decode()
    assert f'<strong id="preview-decisions">{len(stored["window"])}</strong>' in page
    assert f'<strong id="preview-changed">{sum(expected.values())}</strong>' in page
    for change, count in expected.items():
        assert f"<td>{change}</td><td>{count}</td>" in page


@pytest.mark.django_db
def test_preview_refuses_what_a_proposal_would_refuse(seeded):
    with pytest.raises(services.CalibrationError, match="kl_window_days"):
        services.preview_change("kl_window_days", 7)
    with pytest.raises(services.CalibrationError, match="must be < tau_critical"):
        services.preview_change("tau_warning", 0.6)


# --- the next decision uses the new version ----------------------------------------------------

NOVEL = {"proposal_summary": "Novel cache layer", "risk_baseline": 0.02, "risk_proposed": 0.05,
         "profit_baseline": 0.98, "profit_proposed": 0.98, "novelty_score": 0.85, "complexity_score": 0.8,
         "quality_score": 0.85}  # G(0.85) = 0.8176: fails at threshold 0.8, passes at 0.9


def evaluate(browser, key):
    client = browser(None, Authorization=f"Bearer {key}")
    response = client.client.post("/evaluate", json.dumps(NOVEL), content_type="application/json", secure=True,
                                  headers=client.headers)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.django_db
def test_the_decision_after_apply_carries_the_new_version_and_threshold(alice, bob, make_tenant, browser):
    _, key = make_tenant("Acme")
    before = evaluate(browser, key)
    assert (before["config_version"], before["status"], before["gates"]["novelty"]["threshold"]) == (1, "halt", 0.8)
    assert before["failing_gates"] == ["novelty"]

    proposal = services.propose("novelty_threshold", 0.9, "Novelty gate halts routine work", actor=actor_for(alice))
    services.approve(proposal.proposal_id, actor=actor_for(bob), comment="Agreed")
    assert evaluate(browser, key)["config_version"] == 1  # approved is not applied
    services.apply(proposal.proposal_id, actor=actor_for(alice))

    after = evaluate(browser, key)
    assert (after["config_version"], after["status"], after["gates"]["novelty"]["threshold"]) == (2, "proceed", 0.9)
    assert after["gates"]["novelty"]["passed"] is True
    stored = Decision.objects.get(decision_id=after["decision_id"])
    assert (stored.config_version, stored.status) == (2, "proceed")
    assert Decision.objects.get(decision_id=before["decision_id"]).config_version == 1


@pytest.mark.django_db
def test_a_version_applied_elsewhere_is_seen_by_this_process(alice, bob, make_tenant, browser):
    """The per-process cache is keyed by version: a config built for v1 here does not hide
    v2 once another process (here: rows written directly) created it."""
    _, key = make_tenant("Acme")
    assert evaluate(browser, key)["config_version"] == 1  # v1 cached in this process
    proposal = services.propose("novelty_threshold", 0.9, "Novelty gate halts routine work", actor=actor_for(alice))
    services.approve(proposal.proposal_id, actor=actor_for(bob), comment="Agreed")
    services.apply(proposal.proposal_id, actor=actor_for(alice))
    assert evaluate(browser, key)["gates"]["novelty"]["threshold"] == 0.9
