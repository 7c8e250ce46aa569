"""AegisConfig: the frozen, validated set of engine parameters (ENGINE.md §2).

No Django here. Defaults come from the interface contract (schema/interface-contract.yaml);
the rules live in `PARAMETERS` below and a test holds them equal to the contract's text.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .contract import Contract, ContractError, flatten, load_yaml_mapping

logger = logging.getLogger("aegis.config")

# Nested YAML sections -> {key in section: flat AegisConfig field}. The one mapping table.
_NESTED_SECTIONS: dict[str, dict[str, str]] = {
    "novelty_gate": {"N0": "novelty_N0", "k": "novelty_k", "output_threshold": "novelty_threshold"},
    "bayesian": {
        "prior_mean": "prior_mean",
        "prior_std": "prior_std",
        "likelihood_std": "likelihood_std",
        "posterior_predictive": "posterior_predictive",
    },
    "kl_drift": {
        "tau_warning": "tau_warning",
        "tau_critical": "tau_critical",
        "window_days": "kl_window_days",
        "bins": "kl_bins",
        "min_samples": "kl_min_samples",
        "sustained_days": "drift_sustained_days",
    },
}

# The only parameters a calibration proposal may change (ENGINE.md §2).
CALIBRATABLE_PARAMETERS: frozenset[str] = frozenset({
    "epsilon_R", "epsilon_P", "risk_trigger_factor", "profit_trigger_factor",
    "trigger_confidence_prob", "novelty_threshold", "complexity_floor", "quality_min_score",
    "utility_threshold", "novelty_N0", "novelty_k", "tau_warning", "tau_critical",
    "prior_mean", "prior_std", "likelihood_std",
})


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    kind: type  # float, int or bool
    rule: str  # human text, identical to the contract's `rules.<name>.rule`
    check: Callable[[Any], bool]

    @property
    def path(self) -> str:
        return YAML_PATHS[self.name]


def _gt(lo: float) -> Callable[[Any], bool]:
    return lambda v: v > lo


def _open(lo: float, hi: float) -> Callable[[Any], bool]:
    return lambda v: lo < v < hi


def _closed(lo: float, hi: float) -> Callable[[Any], bool]:
    return lambda v: lo <= v <= hi


def _always(_: Any) -> bool:
    return True


PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("epsilon_R", float, "> 0", _gt(0)),
    ParameterSpec("epsilon_P", float, "> 0", _gt(0)),
    ParameterSpec("risk_trigger_factor", float, "> 0", _gt(0)),
    ParameterSpec("profit_trigger_factor", float, "> 0", _gt(0)),
    ParameterSpec("trigger_confidence_prob", float, "in (0, 1)", _open(0, 1)),
    ParameterSpec("novelty_N0", float, "in [0, 1]", _closed(0, 1)),
    ParameterSpec("novelty_k", float, "> 0", _gt(0)),
    ParameterSpec("novelty_threshold", float, "in (0, 1)", _open(0, 1)),
    ParameterSpec("complexity_floor", float, "in [0, 1]", _closed(0, 1)),
    ParameterSpec("quality_min_score", float, "in [0, 1]", _closed(0, 1)),
    ParameterSpec("utility_threshold", float, "finite", _always),
    ParameterSpec("utility_confidence", float, "in (0.5, 1)", _open(0.5, 1)),
    ParameterSpec("prior_mean", float, "finite", _always),
    ParameterSpec("prior_std", float, "> 0", _gt(0)),
    ParameterSpec("likelihood_std", float, "> 0", _gt(0)),
    ParameterSpec("posterior_predictive", bool, "bool", _always),
    # The ordering half of the tau rules is checked across fields in `_validate`.
    ParameterSpec("tau_warning", float, "> 0, < tau_critical", _gt(0)),
    ParameterSpec("tau_critical", float, "> tau_warning", _gt(0)),
    ParameterSpec("kl_window_days", int, "integer 1-366", _closed(1, 366)),
    ParameterSpec("kl_bins", int, "integer 2-1000", _closed(2, 1000)),
    ParameterSpec("kl_min_samples", int, "integer >= 2", _gt(1)),
    ParameterSpec("drift_sustained_days", int, "integer >= 1", _gt(0)),
)
SPECS: dict[str, ParameterSpec] = {spec.name: spec for spec in PARAMETERS}

# flat name -> YAML path, derived from the one table above.
YAML_PATHS: dict[str, str] = {name: name for name in SPECS}
YAML_PATHS.update({flat: f"{section}.{key}" for section, keys in _NESTED_SECTIONS.items()
                   for key, flat in keys.items()})
_FLAT_BY_PATH: dict[str, str] = {path: name for name, path in YAML_PATHS.items()}
# Top-level keys of a config file (a contract is a valid config too).
_TOP_LEVEL_KEYS = {"parameters", "version", "rules", "aliases"}


@dataclass(frozen=True)
class ConfigIssue:
    parameter: str
    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


class ConfigError(ValueError):
    """One or more invalid parameters; `errors` lists every one of them."""

    def __init__(self, errors: list[ConfigIssue]):
        self.errors = errors
        super().__init__("; ".join(f"{e.parameter} ({e.path}): {e.message}" for e in errors))


@dataclass(frozen=True)
class AegisConfig:
    """Immutable engine parameters: assignment raises AttributeError; use `replace`."""

    epsilon_R: float
    epsilon_P: float
    risk_trigger_factor: float
    profit_trigger_factor: float
    trigger_confidence_prob: float
    novelty_N0: float
    novelty_k: float
    novelty_threshold: float
    complexity_floor: float
    quality_min_score: float
    utility_threshold: float
    utility_confidence: float
    prior_mean: float
    prior_std: float
    likelihood_std: float
    posterior_predictive: bool
    tau_warning: float
    tau_critical: float
    kl_window_days: int
    kl_bins: int
    kl_min_samples: int
    drift_sustained_days: int

    def __post_init__(self) -> None:
        _validate(self.to_dict())

    @classmethod
    def default(cls) -> "AegisConfig":
        return _default_config()

    @classmethod
    def from_yaml(cls, path: str | Path) -> "AegisConfig":
        """Load a config file: its `parameters` block, nested sections allowed."""
        data = load_yaml_mapping(path)
        stray = sorted(set(data) - _TOP_LEVEL_KEYS)
        if stray:
            logger.warning("ignoring top-level key(s) %s in %s: parameters belong under 'parameters:'",
                           ", ".join(map(str, stray)), path)
        params = data.get("parameters", {})
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise ConfigError([ConfigIssue("parameters", "parameters", "expected a mapping of parameters")])
        return cls.from_dict(params)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base: "AegisConfig | None" = None) -> "AegisConfig":
        """Build from the YAML shape (nested sections) or flat field names; missing keys
        take their value from `base` (the contract defaults if not given)."""
        values = (base or cls.default()).to_dict()
        values.update(_read_parameters(data))
        _validate(values)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Flat {field: value} of all parameters."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_yaml_dict(self) -> dict[str, Any]:
        """The nested YAML shape of the `parameters` block."""
        nested: dict[str, Any] = {}
        for name, value in self.to_dict().items():
            *sections, leaf = YAML_PATHS[name].split(".")
            node = nested
            for section in sections:
                node = node.setdefault(section, {})
            node[leaf] = value
        return nested

    def replace(self, **changes: Any) -> "AegisConfig":
        """A new, validated config with `changes` (flat names) applied."""
        unknown = sorted(set(changes) - set(SPECS))
        if unknown:
            raise ConfigError([ConfigIssue(n, n, "not an AEGIS parameter") for n in unknown])
        values = self.to_dict()
        values.update({k: _coerce(SPECS[k], v, []) for k, v in changes.items()})
        _validate(values)
        return AegisConfig(**values)


def _read_parameters(data: dict[str, Any]) -> dict[str, Any]:
    """Map a YAML-shaped (or flat) mapping to flat field names, applying aliases."""
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue("parameters", "parameters", "expected a mapping of parameters")])
    aliases = _contract().aliases
    values: dict[str, Any] = {}
    seen_at: dict[str, str] = {}
    unknown: list[str] = []
    for path, value in flatten(data).items():
        if path not in _FLAT_BY_PATH and path not in SPECS and path in aliases:
            logger.warning("config key %r is deprecated; read as %r", path, aliases[path])
            path = aliases[path]
        name = _FLAT_BY_PATH.get(path) or (path if path in SPECS else None)
        if name is None:
            unknown.append(path)
            continue
        if name in seen_at:
            raise ConfigError([ConfigIssue(name, YAML_PATHS[name],
                                           f"set twice (at {seen_at[name]} and at {path})")])
        seen_at[name] = path
        values[name] = value
    if unknown:
        logger.warning("ignoring unknown config key(s): %s", ", ".join(unknown))
    return values


def _coerce(spec: ParameterSpec, value: Any, errors: list[ConfigIssue]) -> Any:
    """Type-check one value (bool is never a number; ints are accepted for floats)."""
    def fail(message: str) -> Any:
        errors.append(ConfigIssue(spec.name, spec.path, message))
        return value

    if spec.kind is bool:
        return value if isinstance(value, bool) else fail(f"must be true or false, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return fail(f"must be a number ({spec.rule}), got {type(value).__name__} {value!r}")
    if spec.kind is int:
        if isinstance(value, float):
            return fail(f"must be an integer ({spec.rule}), got {value!r}")
        return value
    if not math.isfinite(value):
        return fail(f"must be a finite number ({spec.rule}), got {value!r}")
    return float(value)


def _validate(values: dict[str, Any]) -> None:
    """Raise ConfigError listing every broken rule, naming each key, its path and the rule."""
    errors: list[ConfigIssue] = []
    for name, value in values.items():
        spec = SPECS[name]
        before = len(errors)
        value = _coerce(spec, value, errors)
        if len(errors) == before and not spec.check(value):
            errors.append(ConfigIssue(name, spec.path, f"must be {spec.rule}, got {value!r}"))
        values[name] = value
    tw, tc = values.get("tau_warning"), values.get("tau_critical")
    if not any(e.parameter in ("tau_warning", "tau_critical") for e in errors) and tw >= tc:
        errors.append(ConfigIssue("tau_warning", SPECS["tau_warning"].path,
                                  f"must be < tau_critical ({tc!r}), got {tw!r}"))
        errors.append(ConfigIssue("tau_critical", SPECS["tau_critical"].path,
                                  f"must be > tau_warning ({tw!r}), got {tc!r}"))
    if errors:
        raise ConfigError(errors)


@functools.lru_cache(maxsize=None)
def _contract() -> Contract:
    return Contract.load()


@functools.lru_cache(maxsize=None)
def _default_config() -> AegisConfig:
    contract = _contract()
    values: dict[str, Any] = {}
    missing = []
    for name, path in YAML_PATHS.items():
        if path not in contract.parameters:
            missing.append(path)
        else:
            values[name] = contract.parameters[path]
    if missing:
        raise ContractError(f"{contract.source}: contract lacks parameter(s) {', '.join(missing)}")
    return AegisConfig(**values)


def contract_version() -> str:
    return _contract().version
