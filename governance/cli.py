"""The `aegis` command line (PLATFORM.md §2): JSON on stdout, messages on stderr, fixed
exit codes, never a traceback. Needs no database; database commands are manage.py ones."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
from pathlib import Path
from typing import Any, Callable

import yaml

from . import __version__
from .engine.config import AegisConfig, ConfigError, contract_version
from .engine.decide import pcw_decide
from .engine.inputs import InputError, parse_proposal
from .engine.contract import (
    Contract,
    ContractError,
    compatibility,
    diff_contracts,
    load_yaml_mapping,
    migrate_config,
)
from .json_limits import JsonInputError, loads_strict

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_UNREADABLE = 3
EXIT_INTERNAL = 4


class _WarningCollector(logging.Handler):
    """Collects the config loader's warnings so they land in the JSON output too."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _emit(payload: Any) -> None:
    json.dump(payload, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def _fail(message: str, code: int = EXIT_UNREADABLE) -> int:
    print(f"aegis: {message}", file=sys.stderr)
    return code


def cmd_validate_config(args: argparse.Namespace) -> int:
    collector = _WarningCollector()
    config_logger = logging.getLogger("aegis.config")
    config_logger.addHandler(collector)
    try:
        config = AegisConfig.from_yaml(args.file)
    except ContractError as exc:
        return _fail(str(exc))
    except ConfigError as exc:
        _emit({"valid": False, "errors": [e.as_dict() for e in exc.errors], "warnings": collector.messages})
        return EXIT_INVALID
    finally:
        config_logger.removeHandler(collector)
    _emit({"valid": True, "parameters": config.to_dict(), "warnings": collector.messages})
    return EXIT_OK


def cmd_schema_diff(args: argparse.Namespace) -> int:
    try:
        old, new = Contract.load(args.old), Contract.load(args.new)
    except ContractError as exc:
        return _fail(str(exc))
    changes = diff_contracts(old, new)
    verdict = compatibility(changes)
    _emit({
        "old_version": old.version,
        "new_version": new.version,
        "compatibility": verdict.name.lower(),
        "changes": changes,
    })
    return int(verdict)


def cmd_migrate_config(args: argparse.Namespace) -> int:
    try:
        schema = Contract.load(args.schema)
        original = load_yaml_mapping(args.file)
        migrated, changes = migrate_config(original, schema)
    except ContractError as exc:
        return _fail(str(exc))
    output = Path(args.output) if args.output else Path(args.file)
    text = yaml.safe_dump(migrated, sort_keys=False)
    try:
        if output == Path(args.file) and changes:
            backup = output.with_name(output.name + ".bak")
            backup.write_bytes(Path(args.file).read_bytes())
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        return _fail(f"{output}: cannot write ({exc})")
    for change in changes:
        target = f" -> {change['to']}" if "to" in change else ""
        print(f"{change['action']}: {change['parameter']}{target}", file=sys.stderr)
    _emit({"schema_version": schema.version, "output": str(output), "changes": changes})
    return EXIT_OK


EXIT_BY_STATUS = {"proceed": 0, "halt": 1, "pause": 2, "escalate": 2}
EXIT_BAD_INPUT = 3


def _read_json_input(source: str) -> Any:
    """A JSON document from a file or stdin ("-"); NaN/Infinity are kept so that
    validation can name the field that carries them."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContractError(f"{source}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"{source}: cannot read file ({exc})") from None
    name = "standard input" if source == "-" else source
    try:
        return loads_strict(text)
    except JsonInputError as exc:
        raise ContractError(f"{name}: {exc.message}") from None
    except ValueError as exc:
        raise ContractError(f"{name}: not valid JSON ({exc})") from None


def _read_numbers(source: str) -> list[Any]:
    """A drift baseline: a JSON array, or numbers separated by commas, spaces or newlines."""
    try:
        text = Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContractError(f"{source}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"{source}: cannot read file ({exc})") from None
    if text.lstrip().startswith("["):
        try:
            return loads_strict(text)
        except JsonInputError as exc:
            raise ContractError(f"{source}: {exc.message}") from None
        except ValueError as exc:
            raise ContractError(f"{source}: not a valid JSON array ({exc})") from None
    values: list[Any] = []
    for position, token in enumerate(text.replace(",", " ").split(), start=1):
        try:
            values.append(float(token))
        except ValueError:
            raise ContractError(f"{source}: value {position} ({token!r}) is not a number") from None
    return values


def cmd_evaluate(args: argparse.Namespace) -> int:
    try:
        data = _read_json_input(args.input)
        config = AegisConfig.from_yaml(args.config) if args.config else AegisConfig.default()
        if isinstance(data, dict):
            if args.shadow:
                data["shadow_mode"] = True
            if args.drift_baseline:
                data["drift_baseline_data"] = _read_numbers(args.drift_baseline)
        proposal = parse_proposal(data, allow_aliases=True)
    except ContractError as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    except ConfigError as exc:
        for issue in exc.errors:
            print(f"aegis: config {issue.path}: {issue.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except InputError as exc:
        for field_name, message in exc.problems:
            print(f"aegis: input {field_name}: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    decision = pcw_decide(proposal, config)
    if decision.drift is not None and not decision.drift.computed:
        print(f"aegis: drift not computed: {decision.drift.message}", file=sys.stderr)
    _emit(decision.to_dict())
    return EXIT_BY_STATUS[decision.status]


def cmd_version(args: argparse.Namespace) -> int:
    try:
        schema = contract_version()
    except ContractError as exc:
        return _fail(str(exc))
    _emit({"aegis": __version__, "schema": schema, "python": platform.python_version()})
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aegis", description="AEGIS governance command line.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(handler=handler)
        return command

    validate = add("validate-config", cmd_validate_config,
                   "Validate a config file against the interface contract (exit 0 valid, 1 invalid, 3 unreadable).")
    validate.add_argument("file")

    diff = add("schema-diff", cmd_schema_diff,
               "Classify the parameter changes between two contracts (exit 0 compatible, 1 review, 2 breaking).")
    diff.add_argument("old")
    diff.add_argument("new")

    migrate = add("migrate-config", cmd_migrate_config,
                  "Rewrite a config for a new contract: renamed keys moved, removed keys dropped.")
    migrate.add_argument("file")
    migrate.add_argument("--schema", required=True, help="the new interface-contract.yaml")
    migrate.add_argument("--output", help="write here instead of rewriting FILE in place (FILE.bak kept)")

    evaluate = add("evaluate", cmd_evaluate,
                   "Evaluate one proposal (JSON) and print the decision "
                   "(exit 0 proceed, 1 halt, 2 pause/escalate, 3 bad input).")
    evaluate.add_argument("--input", default="-", help="proposal JSON file, or - for standard input (default)")
    evaluate.add_argument("--config", help="config YAML (default: the interface contract's defaults)")
    evaluate.add_argument("--shadow", action="store_true", help="record the decision as shadow mode")
    evaluate.add_argument("--drift-baseline", help="drift baseline: a JSON array or whitespace/comma separated numbers")

    add("version", cmd_version, "Print the AEGIS, schema and Python versions.")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="aegis: warning: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except BrokenPipeError:  # e.g. `aegis validate-config f | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERNAL)
    except Exception as exc:  # a bug must still not print a traceback at users
        return _fail(f"internal error: {type(exc).__name__}: {exc}", EXIT_INTERNAL)


if __name__ == "__main__":
    sys.exit(main())
