"""AegisConfig and the interface contract (ENGINE.md §2). No database needed."""

import logging
import math

import pytest
import yaml

from governance.engine.config import (
    CALIBRATABLE_PARAMETERS,
    PARAMETERS,
    SPECS,
    YAML_PATHS,
    _NESTED_SECTIONS,
    AegisConfig,
    ConfigError,
)
from governance.engine.contract import DEFAULT_CONTRACT_PATH, Contract

# ENGINE.md §2, transcribed independently of the code: flat name -> (YAML path, default).
SPEC_TABLE = {
    "epsilon_R": ("epsilon_R", 0.01),
    "epsilon_P": ("epsilon_P", 0.01),
    "risk_trigger_factor": ("risk_trigger_factor", 2.0),
    "profit_trigger_factor": ("profit_trigger_factor", 2.0),
    "trigger_confidence_prob": ("trigger_confidence_prob", 0.95),
    "novelty_N0": ("novelty_gate.N0", 0.7),
    "novelty_k": ("novelty_gate.k", 10.0),
    "novelty_threshold": ("novelty_gate.output_threshold", 0.8),
    "complexity_floor": ("complexity_floor", 0.5),
    "quality_min_score": ("quality_min_score", 0.7),
    "utility_threshold": ("utility_threshold", 0.0),
    "utility_confidence": ("utility_confidence", 0.95),
    "prior_mean": ("bayesian.prior_mean", 0.0),
    "prior_std": ("bayesian.prior_std", 1.0),
    "likelihood_std": ("bayesian.likelihood_std", 0.5),
    "posterior_predictive": ("bayesian.posterior_predictive", False),
    "tau_warning": ("kl_drift.tau_warning", 0.3),
    "tau_critical": ("kl_drift.tau_critical", 0.5),
    "kl_window_days": ("kl_drift.window_days", 30),
    "kl_bins": ("kl_drift.bins", 20),
    "kl_min_samples": ("kl_drift.min_samples", 30),
    "drift_sustained_days": ("kl_drift.sustained_days", 3),
}


def test_defaults_equal_the_spec_and_the_contract_value_by_value():
    config = AegisConfig.default().to_dict()
    contract = Contract.load(DEFAULT_CONTRACT_PATH)
    assert contract.version == "1.1.1"
    assert set(config) == set(SPEC_TABLE) and len(config) == 22
    for name, (path, default) in SPEC_TABLE.items():
        assert YAML_PATHS[name] == path
        assert contract.parameters[path] == default, name
        assert config[name] == default and type(config[name]) is type(default), name
    assert set(contract.parameters) == {path for path, _ in SPEC_TABLE.values()}


def test_contract_rules_block_matches_the_code_rules():
    contract = Contract.load(DEFAULT_CONTRACT_PATH)
    assert set(contract.rules) == set(SPECS)
    for spec in PARAMETERS:
        entry = contract.rules[spec.name]
        assert entry["path"] == spec.path
        assert entry["rule"] == spec.rule
        assert entry["type"] == spec.kind.__name__
        assert entry["description"].strip()


def test_contract_is_itself_a_valid_config():
    assert AegisConfig.from_yaml(DEFAULT_CONTRACT_PATH) == AegisConfig.default()


def test_calibratable_parameters_are_the_sixteen_of_the_spec():
    assert len(CALIBRATABLE_PARAMETERS) == 16
    assert CALIBRATABLE_PARAMETERS <= set(SPECS)
    assert not {"kl_window_days", "kl_bins", "utility_confidence", "posterior_predictive"} & CALIBRATABLE_PARAMETERS


@pytest.mark.parametrize(
    "section, key, flat, value",
    [(section, key, flat, 0.42 if flat != "posterior_predictive" else True)
     for section, keys in _NESTED_SECTIONS.items() for key, flat in keys.items()
     if flat not in {"kl_window_days", "kl_bins", "kl_min_samples", "drift_sustained_days",
                     "tau_warning", "tau_critical", "novelty_k"}]
    + [("kl_drift", "window_days", "kl_window_days", 7), ("kl_drift", "bins", "kl_bins", 50),
       ("kl_drift", "min_samples", "kl_min_samples", 10), ("kl_drift", "sustained_days", "drift_sustained_days", 5),
       ("kl_drift", "tau_warning", "tau_warning", 0.2), ("kl_drift", "tau_critical", "tau_critical", 0.9),
       ("novelty_gate", "k", "novelty_k", 4.0)],
)
def test_each_nested_key_maps_to_its_flat_field(tmp_path, section, key, flat, value):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"parameters": {section: {key: value}}}))
    config = AegisConfig.from_yaml(path)
    assert getattr(config, flat) == value
    others = {k: v for k, v in config.to_dict().items() if k != flat}
    assert others == {k: v for k, v in AegisConfig.default().to_dict().items() if k != flat}


def test_missing_parameters_take_defaults_and_flat_names_are_accepted():
    config = AegisConfig.from_dict({"tau_warning": 0.25, "epsilon_R": 0.05})
    assert (config.tau_warning, config.epsilon_R, config.tau_critical) == (0.25, 0.05, 0.5)


def test_unknown_keys_are_ignored_with_one_warning_naming_them(tmp_path, caplog):
    path = tmp_path / "c.yaml"
    path.write_text("parameters:\n  epsilon_R: 0.02\n  mystery: 1\n  kl_drift:\n    colour: red\n")
    with caplog.at_level(logging.WARNING, logger="aegis.config"):
        config = AegisConfig.from_yaml(path)
    assert config.epsilon_R == 0.02
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "mystery" in warnings[0] and "kl_drift.colour" in warnings[0]


def test_alias_is_read_under_its_new_name_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="aegis.config"):
        config = AegisConfig.from_dict({"kl_drift": {"window": 14}})
    assert config.kl_window_days == 14
    assert any("kl_drift.window" in r.getMessage() and "kl_drift.window_days" in r.getMessage()
               for r in caplog.records)


def test_alias_and_new_name_together_is_an_error():
    with pytest.raises(ConfigError) as err:
        AegisConfig.from_dict({"kl_drift": {"window": 14, "window_days": 20}})
    assert err.value.errors[0].parameter == "kl_window_days"
    assert "set twice" in err.value.errors[0].message


def test_config_is_immutable_and_replace_makes_a_new_validated_instance():
    config = AegisConfig.default()
    with pytest.raises(AttributeError):
        config.epsilon_R = 0.5
    changed = config.replace(tau_warning=0.35)
    assert changed.tau_warning == 0.35 and config.tau_warning == 0.3
    with pytest.raises(ConfigError):
        config.replace(tau_warning=0.7)
    with pytest.raises(ConfigError) as err:
        config.replace(no_such_parameter=1)
    assert err.value.errors[0].parameter == "no_such_parameter"


# One broken value per rule: (flat name, bad value, words the message must contain).
VIOLATIONS = [
    ("epsilon_R", 0, "> 0"), ("epsilon_R", -0.1, "> 0"),
    ("epsilon_P", 0.0, "> 0"),
    ("risk_trigger_factor", -1, "> 0"),
    ("profit_trigger_factor", 0, "> 0"),
    ("trigger_confidence_prob", 1.0, "in (0, 1)"), ("trigger_confidence_prob", 0, "in (0, 1)"),
    ("novelty_N0", 1.01, "in [0, 1]"), ("novelty_N0", -0.01, "in [0, 1]"),
    ("novelty_k", 0, "> 0"),
    ("novelty_threshold", 1, "in (0, 1)"),
    ("complexity_floor", 1.5, "in [0, 1]"),
    ("quality_min_score", -0.5, "in [0, 1]"),
    ("utility_threshold", math.inf, "finite"), ("utility_threshold", math.nan, "finite"),
    ("utility_confidence", 0.5, "in (0.5, 1)"), ("utility_confidence", 1.0, "in (0.5, 1)"),
    ("prior_mean", -math.inf, "finite"),
    ("prior_std", 0, "> 0"),
    ("likelihood_std", -2, "> 0"),
    ("posterior_predictive", "yes", "true or false"), ("posterior_predictive", 1, "true or false"),
    ("tau_warning", 0, "> 0"),
    ("tau_critical", -1, "> tau_warning"),
    ("kl_window_days", 0, "integer 1-366"), ("kl_window_days", 367, "integer 1-366"),
    ("kl_window_days", 30.5, "integer"),
    ("kl_bins", 1, "integer 2-1000"), ("kl_bins", 1001, "integer 2-1000"),
    ("kl_min_samples", 1, "integer >= 2"),
    ("drift_sustained_days", 0, "integer >= 1"),
    ("epsilon_R", True, "number"), ("epsilon_R", "0.01", "number"), ("kl_bins", None, "number"),
]


@pytest.mark.parametrize("name, value, words", VIOLATIONS)
def test_every_rule_violation_names_the_key_its_path_and_the_rule(name, value, words):
    with pytest.raises(ConfigError) as err:
        AegisConfig.from_dict({name: value})
    [issue] = err.value.errors
    assert issue.parameter == name
    assert issue.path == YAML_PATHS[name]
    assert words in issue.message
    assert name in str(err.value) and YAML_PATHS[name] in str(err.value)


def test_tau_order_names_both_parameters():
    with pytest.raises(ConfigError) as err:
        AegisConfig.from_dict({"kl_drift": {"tau_warning": 0.6, "tau_critical": 0.5}})
    assert [e.parameter for e in err.value.errors] == ["tau_warning", "tau_critical"]
    with pytest.raises(ConfigError):
        AegisConfig.from_dict({"kl_drift": {"tau_warning": 0.5, "tau_critical": 0.5}})


def test_all_errors_are_reported_at_once():
    with pytest.raises(ConfigError) as err:
        AegisConfig.from_dict({"epsilon_R": -1, "novelty_gate": {"k": "steep"}, "kl_drift": {"bins": 0}})
    assert {e.parameter for e in err.value.errors} == {"epsilon_R", "novelty_k", "kl_bins"}


def test_integers_are_accepted_for_float_parameters():
    config = AegisConfig.from_dict({"risk_trigger_factor": 3})
    assert config.risk_trigger_factor == 3.0 and isinstance(config.risk_trigger_factor, float)
