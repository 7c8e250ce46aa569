"""docs/workflows.md is generated from the machines; it must be current."""

from pathlib import Path

from workflows.docs import render_markdown
from workflows.machines import MACHINES


def test_workflow_docs_are_current():
    path = Path(__file__).resolve().parent.parent / "docs" / "workflows.md"
    assert path.read_text(encoding="utf-8") == render_markdown(), (
        "docs/workflows.md is stale: run `manage.py aegis_workflow_docs`")


def test_every_event_source_and_target_is_a_declared_state():
    for machine in MACHINES.values():
        assert machine.initial in machine.states
        for event in machine.events.values():
            assert event.sources <= set(machine.states), (machine.workflow_type, event.name)
            assert event.targets <= set(machine.states), (machine.workflow_type, event.name)
        if machine.timeout_event:
            assert machine.timeout_event in machine.events and machine.is_due is not None
