"""docs/workflows.md, generated from the state machine declarations (so the docs cannot
drift from what the code enforces; tests/test_workflow_docs.py checks it is current)."""

from .machines import MACHINES

HEADER = """# Workflow state machines

Generated from `workflows/machines.py` by `manage.py aegis_workflow_docs`; do not edit by
hand. Roles are Django groups: `risk_lead` = "Risk Lead", `security_lead` = "Security
Lead"; `system` events are fired only by AEGIS itself (the engine, deadlines, an override's
outcome). Every workflow starts with transition 1, event `start`, from no state to its
initial state.
"""


def render_markdown() -> str:
    parts = [HEADER]
    for machine in MACHINES.values():
        parts.append(f"\n## {machine.label} (`{machine.workflow_type}`)\n")
        parts.append(f"\nInitial state: `{machine.initial}`.")
        if machine.timeout_event:
            parts.append(f" Deadline event: `{machine.timeout_event}` (fired on every access once due, "
                         "and by the periodic job).")
        parts.append("\n\n| state | label | coarse status | terminal |\n|---|---|---|---|\n")
        for state in machine.states.values():
            parts.append(f"| `{state.name}` | {state.label} | {state.status} | {'yes' if state.terminal else ''} |\n")
        parts.append("\n| event | from | to | who | comment | parameters | what it does |\n|---|---|---|---|---|---|---|\n")
        for event in machine.events.values():
            who = ", ".join(sorted(event.roles)) or "named participants (see guards)"
            params = ", ".join(f"`{p.name}`" + (f" ({'/'.join(p.choices)})" if p.choices else "")
                               + ("" if p.required else " optional") for p in event.params if not p.internal)
            guards = "; ".join(g.__name__.strip("_").replace("_", " ") for g in event.guards)
            description = event.description + (f" Guards: {guards}." if guards else "")
            parts.append(f"| `{event.name}` | {', '.join(f'`{s}`' for s in sorted(event.sources))} | "
                         f"{', '.join(f'`{t}`' for t in sorted(event.targets))} | {who} | "
                         f"{'required' if event.requires_comment else ''} | {params} | {description} |\n")
    return "".join(parts)
