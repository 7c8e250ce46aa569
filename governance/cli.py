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
from .engine.contract import (
    Contract,
    ContractError,
    compatibility,
    diff_contracts,
    load_yaml_mapping,
    migrate_config,
)

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
