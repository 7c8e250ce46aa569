"""Every worked example in docs/engine.md runs through the real engine and gives exactly
the gate values and status the document prints, so the document cannot drift from the code.

An example is a ```json proposal``` block (the request body) followed by a
```text decision``` block, rendered by `render` below from the engine's answer under the
contract's default parameters.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from governance.engine import GATE_NAMES, AegisConfig, parse_proposal, pcw_decide

DOC = Path(__file__).resolve().parents[2] / "docs" / "engine.md"
EXAMPLE = re.compile(r"```json proposal\n(?P<request>.*?)```\s*```text decision\n(?P<decision>.*?)```", re.S)


def documented_examples() -> list[tuple[dict, str]]:
    return [(json.loads(m["request"]), m["decision"]) for m in EXAMPLE.finditer(DOC.read_text(encoding="utf-8"))]


def render(body: dict) -> str:
    """The decision block for one request body, as docs/engine.md shows it."""
    decision = pcw_decide(parse_proposal(body), AegisConfig.default()).to_dict()
    lines = [f"status: {decision['status']} (rule {decision['rationale'].split()[1]}), "
             f"confidence {decision['confidence']:.4f}"]
    for name in GATE_NAMES:
        gate = decision["gates"].get(name)
        if gate is None:
            lines.append(f"{name:<11} skipped")
        else:
            lines.append(f"{name:<11} {'pass' if gate['passed'] else 'FAIL'}  value {gate['value']:.4f}"
                         f"  threshold {gate['threshold']:.4f}")
    if "drift" in decision:
        lines.append(f"drift: {decision['drift']['status']}, KL {decision['drift']['kl_divergence']:.4f}")
    lines.append(f"override_eligible: {str(decision['override_eligible']).lower()}")
    return "\n".join(lines) + "\n"


def test_the_document_has_its_worked_examples():
    statuses = {documented.split()[1] for _, documented in documented_examples()}
    assert statuses == {"proceed", "pause", "escalate", "halt"}, "an example per status is expected"


@pytest.mark.parametrize("body, documented", documented_examples(),
                         ids=lambda value: value.get("proposal_summary") if isinstance(value, dict) else "")
def test_each_worked_example_is_what_the_engine_answers(body, documented):
    assert render(body) == documented
