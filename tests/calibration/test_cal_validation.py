"""What a calibration proposal may change, and to what (PLATFORM.md §3, ENGINE.md §2):
the 16 calibratable parameters only, each new value validated against the whole resulting
configuration, through the Calibrator, the REST API and the propose form alike."""

from __future__ import annotations

import math

import pytest
from cal_support import JUSTIFICATION, VALID_CHANGES

from calibration.calibrator import Calibrator
from calibration.models import CalibrationProposal, ConfigurationVersion
from calibration.services import CalibrationError
from governance.engine import CALIBRATABLE_PARAMETERS, AegisConfig
from workflows.persistence.models import WorkflowInstance

PROPOSALS_URL = "/api/calibration/proposals"
FORM_URL = "/calibration/new/"
DEFAULTS = AegisConfig.default()

pytestmark = pytest.mark.django_db


def nothing_was_proposed() -> None:
    assert CalibrationProposal.objects.count() == 0
    assert WorkflowInstance.objects.filter(workflow_type="calibration").count() == 0
    assert list(ConfigurationVersion.objects.values_list("version", flat=True)) == [1]


def test_the_table_of_valid_changes_covers_exactly_the_16_calibratable_parameters():
    assert len(CALIBRATABLE_PARAMETERS) == 16
    assert set(VALID_CHANGES) == CALIBRATABLE_PARAMETERS
    for parameter, value in VALID_CHANGES.items():
        assert value != getattr(DEFAULTS, parameter), parameter
        DEFAULTS.replace(**{parameter: value})  # valid against the whole config


# --- the 16 are accepted -------------------------------------------------------------------

@pytest.mark.parametrize("parameter", sorted(VALID_CHANGES))
def test_calibrator_accepts_each_calibratable_parameter(parameter, alice):
    view = Calibrator(actor_id="alice").propose_calibration(parameter=parameter, new_value=VALID_CHANGES[parameter],
                                                            justification=JUSTIFICATION)
    assert (view.parameter, view.current_value, view.proposed_value, view.status, view.proposed_by) == (
        parameter, getattr(DEFAULTS, parameter), VALID_CHANGES[parameter], "PROPOSED", "alice")
    stored = CalibrationProposal.objects.get(proposal_id=view.proposal_id)
    assert (stored.parameter, stored.proposed_value, stored.base_version.version) == (
        parameter, VALID_CHANGES[parameter], 1)


@pytest.mark.parametrize("parameter", sorted(VALID_CHANGES))
def test_api_accepts_each_calibratable_parameter(parameter, alice, browser):
    response = browser(alice).post_json(PROPOSALS_URL, {
        "parameter": parameter, "new_value": VALID_CHANGES[parameter], "justification": JUSTIFICATION})
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["parameter"], body["current_value"], body["proposed_value"], body["status"], body["proposed_by"],
            body["base_version"], body["applied_version"]) == (
        parameter, getattr(DEFAULTS, parameter), VALID_CHANGES[parameter], "PROPOSED", "alice", 1, None)
    assert CalibrationProposal.objects.filter(proposal_id=body["proposal_id"], parameter=parameter).exists()


@pytest.mark.parametrize("parameter", sorted(VALID_CHANGES))
def test_propose_form_accepts_each_calibratable_parameter(parameter, alice, browser):
    response = browser(alice).post_form(FORM_URL, {
        "parameter": parameter, "new_value": str(VALID_CHANGES[parameter]), "justification": JUSTIFICATION})
    proposal = CalibrationProposal.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/calibration/{proposal.proposal_id}/"
    assert (proposal.parameter, proposal.proposed_value, proposal.proposed_by, proposal.status) == (
        parameter, VALID_CHANGES[parameter], "alice", "proposed")


# --- anything else is refused, naming the parameter ---------------------------------------

REFUSED_PARAMETERS = [
    ("kl_window_days", 60),  # a real parameter, not calibratable
    ("made_up_threshold", 0.5),  # no such parameter
]
MORE_REAL_BUT_FIXED = [("utility_confidence", 0.9), ("kl_bins", 30), ("kl_min_samples", 50),
                       ("drift_sustained_days", 5), ("posterior_predictive", 1.0)]


@pytest.mark.parametrize(("parameter", "value"), REFUSED_PARAMETERS + MORE_REAL_BUT_FIXED)
def test_calibrator_refuses_a_parameter_outside_the_16_naming_it(parameter, value, alice):
    with pytest.raises(CalibrationError) as refused:
        Calibrator(actor_id="alice").propose_calibration(parameter=parameter, new_value=value,
                                                         justification=JUSTIFICATION)
    assert parameter in refused.value.message
    assert "not calibratable" in refused.value.message
    nothing_was_proposed()


@pytest.mark.parametrize(("parameter", "value"), REFUSED_PARAMETERS)
def test_api_refuses_a_parameter_outside_the_16_naming_it(parameter, value, alice, browser):
    response = browser(alice).post_json(PROPOSALS_URL, {
        "parameter": parameter, "new_value": value, "justification": JUSTIFICATION})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert parameter in body["error"] and "not calibratable" in body["error"]
    nothing_was_proposed()


@pytest.mark.parametrize(("parameter", "value"), REFUSED_PARAMETERS)
def test_propose_form_refuses_a_parameter_outside_the_16_naming_it(parameter, value, alice, browser):
    response = browser(alice).post_form(FORM_URL, {
        "parameter": parameter, "new_value": str(value), "justification": JUSTIFICATION})
    assert response.status_code == 200
    errors = response.context["form"].errors["parameter"]
    assert any(parameter in error for error in errors), errors
    assert parameter in response.content.decode()
    nothing_was_proposed()


def test_api_refuses_unknown_fields_and_a_missing_justification(alice, browser):
    client = browser(alice)
    response = client.post_json(PROPOSALS_URL, {"parameter": "novelty_threshold", "new_value": 0.9,
                                                "justification": JUSTIFICATION, "apply_now": True})
    assert response.status_code == 422 and "apply_now" in response.json()["error"]
    response = client.post_json(PROPOSALS_URL, {"parameter": "novelty_threshold", "new_value": 0.9,
                                                "justification": "   "})
    assert response.status_code == 400 and "justification" in response.json()["error"]
    nothing_was_proposed()


# --- values: range, type, finiteness, ordering, no-op ---------------------------------------

OUT_OF_RANGE = [
    ("epsilon_R", 0.0, "must be > 0"),
    ("epsilon_P", -0.01, "must be > 0"),
    ("risk_trigger_factor", -2.0, "must be > 0"),
    ("profit_trigger_factor", 0.0, "must be > 0"),
    ("trigger_confidence_prob", 1.0, "must be in (0, 1)"),
    ("trigger_confidence_prob", 0.0, "must be in (0, 1)"),
    ("novelty_threshold", 1.0, "must be in (0, 1)"),
    ("novelty_threshold", 1.5, "must be in (0, 1)"),
    ("complexity_floor", -0.1, "must be in [0, 1]"),
    ("quality_min_score", 1.01, "must be in [0, 1]"),
    ("novelty_N0", 1.2, "must be in [0, 1]"),
    ("novelty_k", 0.0, "must be > 0"),
    ("prior_std", 0.0, "must be > 0"),
    ("likelihood_std", -1.0, "must be > 0"),
    ("tau_warning", 0.0, "must be > 0"),
    ("tau_critical", -0.5, "must be > tau_warning"),
]
WRONG_TYPE = [("novelty_threshold", "0.9"), ("novelty_threshold", True), ("complexity_floor", False),
              ("tau_warning", None), ("prior_mean", [0.1]), ("prior_std", {"value": 2.0})]
NOT_FINITE = [("novelty_threshold", math.nan), ("utility_threshold", math.inf), ("prior_mean", -math.inf),
              ("tau_critical", math.inf)]
CROSS_FIELD = [("tau_warning", 0.5, "must be < tau_critical"), ("tau_warning", 0.7, "must be < tau_critical"),
               ("tau_critical", 0.3, "must be > tau_warning"), ("tau_critical", 0.1, "must be > tau_warning")]


def refusal(parameter, value) -> str:
    with pytest.raises(CalibrationError) as refused:
        Calibrator(actor_id="alice").propose_calibration(parameter=parameter, new_value=value,
                                                         justification=JUSTIFICATION)
    nothing_was_proposed()
    return refused.value.message


@pytest.mark.parametrize(("parameter", "value", "reason"), OUT_OF_RANGE)
def test_out_of_range_values_are_refused_with_the_rule(parameter, value, reason, alice):
    message = refusal(parameter, value)
    assert message.startswith(parameter) and reason in message, message


@pytest.mark.parametrize(("parameter", "value"), WRONG_TYPE)
def test_values_of_the_wrong_type_are_refused(parameter, value, alice):
    message = refusal(parameter, value)
    assert message.startswith(parameter) and "must be a number" in message, message


@pytest.mark.parametrize(("parameter", "value"), NOT_FINITE)
def test_nan_and_infinity_are_refused(parameter, value, alice):
    message = refusal(parameter, value)
    assert message.startswith(parameter) and "finite" in message, message


@pytest.mark.parametrize(("parameter", "value", "reason"), CROSS_FIELD)
def test_tau_warning_must_stay_below_tau_critical(parameter, value, reason, alice):
    message = refusal(parameter, value)
    assert reason in message, message
    assert "tau_warning" in message and "tau_critical" in message


@pytest.mark.parametrize("parameter", ["novelty_threshold", "tau_warning", "utility_threshold"])
def test_the_active_value_is_refused_as_no_change(parameter, alice):
    active = getattr(DEFAULTS, parameter)
    message = refusal(parameter, active)
    assert message == f"{parameter} is already {active:g} in the active configuration v1"


def test_an_int_for_a_float_parameter_is_accepted_as_a_number(alice):
    view = Calibrator(actor_id="alice").propose_calibration("novelty_k", 12, JUSTIFICATION)
    assert view.proposed_value == 12.0


@pytest.mark.parametrize(("value", "reason"), [
    (1.5, "novelty_threshold: must be in (0, 1), got 1.5"),
    ("0.9", "novelty_threshold: the new value must be a number, got '0.9'"),
    (False, "novelty_threshold: the new value must be a number, got False"),
    (0.8, "novelty_threshold is already 0.8 in the active configuration v1"),
])
def test_api_refuses_bad_values_with_the_reason(value, reason, alice, browser):
    response = browser(alice).post_json(PROPOSALS_URL, {
        "parameter": "novelty_threshold", "new_value": value, "justification": JUSTIFICATION})
    assert response.status_code == 400
    assert response.json()["error"] == reason
    nothing_was_proposed()


def test_api_refuses_the_tau_ordering_with_both_names(alice, browser):
    response = browser(alice).post_json(PROPOSALS_URL, {
        "parameter": "tau_critical", "new_value": 0.3, "justification": JUSTIFICATION})
    assert response.status_code == 400
    assert "tau_critical: must be > tau_warning (0.3), got 0.3" in response.json()["error"]
    nothing_was_proposed()


@pytest.mark.parametrize("raw", ['{"parameter": "utility_threshold", "new_value": 1e400, "justification": "x"}',
                                 '{"parameter": "utility_threshold", "new_value": -1e400, "justification": "x"}'])
def test_api_refuses_an_infinite_number(raw, alice, browser):
    response = browser(alice).post_json(PROPOSALS_URL, raw=raw)
    assert response.status_code == 400
    assert response.json()["error"].startswith("utility_threshold: the new value must be a finite number")
    nothing_was_proposed()


def test_api_refuses_a_nan_literal(alice, browser):
    response = browser(alice).post_json(
        PROPOSALS_URL, raw='{"parameter": "novelty_threshold", "new_value": NaN, "justification": "x"}')
    assert response.status_code == 400
    assert "error" in response.json()
    nothing_was_proposed()


@pytest.mark.parametrize(("value", "reason"), [
    ("1.5", "novelty_threshold: must be in (0, 1), got 1.5"),
    ("0.8", "novelty_threshold is already 0.8 in the active configuration v1"),
])
def test_propose_form_refuses_bad_values_with_the_reason(value, reason, alice, browser):
    response = browser(alice).post_form(FORM_URL, {
        "parameter": "novelty_threshold", "new_value": value, "justification": JUSTIFICATION})
    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [reason]
    nothing_was_proposed()


@pytest.mark.parametrize("value", ["abc", "nan", "inf", ""])
def test_propose_form_refuses_values_that_are_not_finite_numbers(value, alice, browser):
    response = browser(alice).post_form(FORM_URL, {
        "parameter": "novelty_threshold", "new_value": value, "justification": JUSTIFICATION})
    assert response.status_code == 200
    assert response.context["form"].errors["new_value"]
    nothing_was_proposed()


def test_propose_form_refuses_the_tau_ordering(alice, browser):
    response = browser(alice).post_form(FORM_URL, {
        "parameter": "tau_warning", "new_value": "0.5", "justification": JUSTIFICATION})
    assert response.status_code == 200
    assert "tau_warning: must be < tau_critical (0.5), got 0.5" in response.context["form"].non_field_errors()[0]
    nothing_was_proposed()


@pytest.mark.parametrize(("body", "valid", "fragment"), [
    ({"parameter": "novelty_threshold", "new_value": 0.9}, True, "novelty_threshold: 0.8 → 0.9 is valid"),
    ({"parameter": "kl_window_days", "new_value": 60}, False, "'kl_window_days' is not calibratable"),
    ({"parameter": "tau_warning", "new_value": 0.6}, False, "must be < tau_critical"),
])
def test_live_validation_endpoint(body, valid, fragment, alice, browser):
    response = browser(alice).post_json("/api/calibration/validate", body)
    assert response.status_code == 200
    assert response.json()["valid"] is valid
    assert fragment in response.json()["message"]
    nothing_was_proposed()
