"""Reading interface-contract files, and comparing and migrating configs against them.

Pure Python (no Django): the CLI, the web app and the tests all use it. Everything here
works on *any* file of the contract's shape, including parameters this release has never
heard of, so `schema-diff` can compare two future contracts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONTRACT_PATH = Path(__file__).resolve().parents[2] / "schema" / "interface-contract.yaml"


class ContractError(Exception):
    """A contract or config file that cannot be read or is not of the expected shape."""


def contract_path() -> Path:
    """The contract in force: `AEGIS_CONTRACT` if set, else the one shipped in schema/."""
    return Path(os.environ.get("AEGIS_CONTRACT") or DEFAULT_CONTRACT_PATH)


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file whose top level must be a mapping; ContractError names the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContractError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"{path}: cannot read file ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ContractError(f"{path}: not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ContractError(f"{path}: expected a YAML mapping at the top level, got {type(data).__name__}")
    return data


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping -> {"section.key": value}; the dotted path is a parameter's identity."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for path, value in flat.items():
        node = nested
        *sections, leaf = path.split(".")
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
    return nested


@dataclass(frozen=True)
class Contract:
    version: str
    parameters: dict[str, Any]  # dotted YAML path -> default value
    aliases: dict[str, str]  # old dotted path -> current dotted path
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Contract":
        path = Path(path) if path is not None else contract_path()
        data = load_yaml_mapping(path)
        params = data.get("parameters")
        if not isinstance(params, dict):
            raise ContractError(f"{path}: expected a 'parameters' mapping")
        aliases = data.get("aliases") or {}
        if not isinstance(aliases, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()
        ):
            raise ContractError(f"{path}: 'aliases' must map old key paths to new key paths")
        if "version" not in data:
            raise ContractError(f"{path}: missing 'version'")
        return cls(
            version=str(data["version"]),
            parameters=flatten(params),
            aliases=dict(aliases),
            rules=data.get("rules") or {},
            source=str(path),
        )


class Compatibility(IntEnum):
    """Exit codes of `aegis schema-diff`: the worst change decides."""

    COMPATIBLE = 0
    REVIEW = 1
    BREAKING = 2


# The seed guide's change categories and what each implies.
CHANGE_IMPACT = {
    "new_parameter": ("New parameter with default", "None", "Backward compatible", Compatibility.COMPATIBLE),
    "default_change": ("Default value change", "Potential", "Review + test", Compatibility.REVIEW),
    "removal": ("Parameter removal", "Breaking", "Remove from custom config", Compatibility.BREAKING),
    "rename": ("Parameter rename", "Breaking", "Update custom config", Compatibility.BREAKING),
}


def diff_contracts(old: Contract, new: Contract) -> list[dict[str, Any]]:
    """Classify every parameter difference between two contracts (renames via new.aliases)."""
    changes: list[dict[str, Any]] = []
    added = [p for p in new.parameters if p not in old.parameters]
    removed = [p for p in old.parameters if p not in new.parameters]
    renamed_to = set()
    for path in removed:
        target = new.aliases.get(path)
        if target in new.parameters and target not in old.parameters:
            renamed_to.add(target)
            changes.append(_change("rename", target, old_path=path, old_default=old.parameters[path],
                                   new_default=new.parameters[target]))
        else:
            changes.append(_change("removal", path, old_default=old.parameters[path]))
    for path in added:
        if path not in renamed_to:
            changes.append(_change("new_parameter", path, new_default=new.parameters[path]))
    for path, value in old.parameters.items():
        if path in new.parameters and not _same_value(value, new.parameters[path]):
            changes.append(_change("default_change", path, old_default=value, new_default=new.parameters[path]))
    order = list(CHANGE_IMPACT)
    changes.sort(key=lambda c: (order.index(c["category"]), c["parameter"]))
    return changes


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def _change(category: str, path: str, **extra: Any) -> dict[str, Any]:
    change_type, impact, action, _ = CHANGE_IMPACT[category]
    return {"category": category, "change_type": change_type, "parameter": path,
            "impact": impact, "action": action, **extra}


def compatibility(changes: list[dict[str, Any]]) -> Compatibility:
    return max((CHANGE_IMPACT[c["category"]][3] for c in changes), default=Compatibility.COMPATIBLE)


def migrate_config(config: dict[str, Any], new: Contract) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Rewrite a user's config for `new`: renamed keys moved, keys the contract lacks dropped.

    `config` is the whole file (with its `parameters` block); other top-level keys are kept.
    """
    params = config.get("parameters")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ContractError("'parameters' must be a mapping")
    flat = flatten(params)
    migrated: dict[str, Any] = {}
    changes: list[dict[str, str]] = []
    for path, value in flat.items():
        if path in new.parameters:
            migrated[path] = value
        elif new.aliases.get(path) in new.parameters:
            target = new.aliases[path]
            if target in flat:
                changes.append({"action": "dropped", "parameter": path,
                                "reason": f"renamed to {target}, which the file already sets"})
                continue
            migrated[target] = value
            changes.append({"action": "renamed", "parameter": path, "to": target})
        else:
            changes.append({"action": "removed", "parameter": path,
                            "reason": f"not a parameter of schema {new.version}"})
    result = dict(config)
    result["parameters"] = unflatten(migrated)
    return result, changes
