"""Configuration versions: `manage.py aegis_config show|history|diff|import`, the
/api/config… endpoints and the versions page (PLATFORM.md §2–3)."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from cal_support import approved, messages_of
from django.core.management import CommandError, call_command

from calibration import services
from calibration.models import CalibrationProposal, ConfigurationVersion
from calibration.versions import content_hash
from governance.engine import AegisConfig
from governance.engine.config import contract_version
from workflows.services import actor_for

pytestmark = pytest.mark.django_db

DEFAULTS = AegisConfig.default().to_dict()


def aegis_config(*args) -> str:
    out = StringIO()
    call_command("aegis_config", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def two_versions(alice, bob):
    """v2: novelty_threshold 0.8 → 0.9 (proposed by alice, approved by bob, applied by alice)."""
    proposal = approved(alice, bob, "novelty_threshold", 0.9)
    services.apply(proposal.proposal_id, actor=actor_for(alice))
    return proposal


# --- version 1 -----------------------------------------------------------------------------

def test_version_one_is_the_contract(seeded):
    v1 = ConfigurationVersion.objects.get()
    assert v1.version == 1 and v1.parameters == DEFAULTS
    assert v1.content_hash == content_hash(DEFAULTS)
    assert (v1.source, v1.parent) == ("schema_default", None)


def test_every_version_hash_matches_its_parameters(two_versions):
    for version in ConfigurationVersion.objects.all():
        assert version.content_hash == content_hash(version.parameters)


# --- manage.py aegis_config ------------------------------------------------------------------

def test_show_prints_the_active_configuration(seeded):
    assert json.loads(aegis_config("show")) == {"version": 1, "parameters": DEFAULTS}


def test_show_after_apply(two_versions):
    shown = json.loads(aegis_config("show"))
    assert shown == {"version": 2, "parameters": {**DEFAULTS, "novelty_threshold": 0.9}}


def test_history_lists_every_version_newest_first(two_versions):
    lines = [line.split("\t") for line in aegis_config("history").splitlines()]
    assert [(fields[0], fields[2], fields[3], fields[4]) for fields in lines] == [
        ("v2", "alice", "calibration", str(two_versions.proposal_id)),
        ("v1", "system", "schema_default", f"interface-contract {contract_version()}"),
    ]


def test_diff_names_the_changed_parameters(two_versions):
    assert aegis_config("diff", "1", "2").splitlines() == ["novelty_threshold: 0.8 -> 0.9"]
    assert aegis_config("diff", "2", "1").splitlines() == ["novelty_threshold: 0.9 -> 0.8"]
    assert aegis_config("diff", "2", "2") == ""
    with pytest.raises(CommandError, match="no configuration version 7"):
        aegis_config("diff", "1", "7")


def write(tmp_path, text: str, name: str = "config.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def import_file(path, actor="alice"):
    return aegis_config("import", path, "--actor", actor, "--justification", "Quarterly review")


def test_import_opens_proposals_and_never_applies(alice, tmp_path):
    path = write(tmp_path, "parameters:\n  complexity_floor: 0.6\n  novelty_gate:\n    output_threshold: 0.9\n")
    out = import_file(path)
    proposals = {p.parameter: p for p in CalibrationProposal.objects.select_related("workflow")}
    assert sorted(proposals) == ["complexity_floor", "novelty_threshold"]
    for parameter, value in (("complexity_floor", 0.6), ("novelty_threshold", 0.9)):
        proposal = proposals[parameter]
        assert (proposal.proposed_value, proposal.current_value, proposal.status, proposal.proposed_by,
                proposal.justification) == (value, DEFAULTS[parameter], "proposed", "alice", "Quarterly review")
        assert f"Proposed {parameter}: {DEFAULTS[parameter]:g} -> {value:g} ({proposal.proposal_id})" in out
    assert "awaiting approval" in out
    assert list(ConfigurationVersion.objects.values_list("version", flat=True)) == [1]


def test_import_of_the_active_configuration_proposes_nothing(alice, tmp_path):
    path = write(tmp_path, "parameters:\n  novelty_gate:\n    output_threshold: 0.8\n")
    assert "matches the active configuration v1; nothing to propose" in import_file(path)
    assert CalibrationProposal.objects.count() == 0


@pytest.mark.parametrize(("text", "fragments"), [
    ("parameters:\n  kl_drift:\n    window_days: 60\n", ["kl_window_days", "calibration cannot change"]),
    ("parameters:\n  kl_drift:\n    bins: 40\n  novelty_gate:\n    output_threshold: 0.9\n",
     ["kl_bins", "calibration cannot change"]),
    ("parameters:\n  novelty_gate:\n    output_threshold: 1.5\n", ["invalid config", "novelty_gate.output_threshold"]),
    ("parameters:\n  kl_drift:\n    tau_warning: 0.6\n", ["invalid config", "kl_drift.tau_warning", "tau_critical"]),
    ("parameters:\n  complexity_floor: high\n", ["invalid config", "complexity_floor", "must be a number"]),
    ("parameters: [1, 2]\n", ["invalid config", "parameters"]),
    ("parameters:\n  complexity_floor: [0.6\n", ["not valid YAML"]),
    ("- just\n- a list\n", ["expected a YAML mapping"]),
])
def test_import_refuses_files_it_cannot_propose_and_proposes_nothing(text, fragments, alice, tmp_path):
    path = write(tmp_path, text)
    with pytest.raises(CommandError) as refused:
        import_file(path)
    for fragment in fragments:
        assert fragment in str(refused.value), str(refused.value)
    assert CalibrationProposal.objects.count() == 0
    assert ConfigurationVersion.objects.count() == 1


def test_import_is_all_or_nothing(alice, tmp_path):
    """tau_critical 0.6 alone is fine; tau_warning 0.55 alone is not (active tau_critical is
    0.5): one refusal means nothing is proposed."""
    path = write(tmp_path, "parameters:\n  kl_drift:\n    tau_warning: 0.55\n    tau_critical: 0.6\n")
    with pytest.raises(CommandError, match="tau_warning: .*nothing was proposed"):
        import_file(path)
    assert CalibrationProposal.objects.count() == 0


def test_import_refuses_a_missing_file_and_an_unknown_actor(alice, tmp_path):
    with pytest.raises(CommandError, match="file not found"):
        import_file(str(tmp_path / "absent.yaml"))
    path = write(tmp_path, "parameters:\n  complexity_floor: 0.6\n")
    with pytest.raises(CommandError, match="no user 'mallory'"):
        import_file(path, actor="mallory")
    assert CalibrationProposal.objects.count() == 0


# --- /api/config… ------------------------------------------------------------------------------

def test_api_active_config(two_versions, carol, browser):
    body = browser(carol).get("/api/config").json()
    assert (body["version"], body["parent"], body["source"], body["author"], body["source_ref"]) == (
        2, 1, "calibration", "alice", str(two_versions.proposal_id))
    assert body["parameters"] == {**DEFAULTS, "novelty_threshold": 0.9}
    assert body["content_hash"] == content_hash(body["parameters"])


def test_api_version_list_detail_and_diff(two_versions, carol, browser):
    client = browser(carol)
    listed = client.get("/api/config/versions").json()["versions"]
    assert [(v["version"], v["parent"]) for v in listed] == [(2, 1), (1, None)]
    assert all("parameters" not in v for v in listed)

    one = client.get("/api/config/versions/1").json()
    assert (one["version"], one["parameters"], one["source"]) == (1, DEFAULTS, "schema_default")

    diff = client.get("/api/config/versions/diff", a="1", b="2").json()
    assert diff == {"a": 1, "b": 2, "changes": [{"parameter": "novelty_threshold", "from": 0.8, "to": 0.9}]}
    assert client.get("/api/config/versions/diff", a="2", b="2").json()["changes"] == []


@pytest.mark.parametrize(("path", "query"), [
    ("/api/config/versions/99", {}), ("/api/config/versions/abc", {}),
    ("/api/config/versions/diff", {"a": "1"}), ("/api/config/versions/diff", {"a": "1", "b": "99"}),
    ("/api/config/versions/diff", {"a": "x", "b": "1"}),
])
def test_api_unknown_versions_are_404(path, query, seeded, carol, browser):
    response = browser(carol).get(path, **query)
    assert response.status_code == 404
    assert "No configuration version" in response.json()["error"]


# --- the versions page ---------------------------------------------------------------------------

def test_versions_page_shows_the_history_and_a_diff(two_versions, carol, browser):
    response = browser(carol).get("/calibration/versions/", a="1", b="2")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="version-diff"' in page
    assert "<strong>v1 → v2</strong>" in page
    assert "<td><code>novelty_threshold</code></td><td>0.8</td><td><strong>0.9</strong></td>" in page
    assert f'href="/calibration/{two_versions.proposal_id}/"' in page
    assert [v.version for v, _ in response.context["versions"]] == [2, 1]


def test_versions_page_refuses_unknown_versions(seeded, carol, browser):
    response = browser(carol).get("/calibration/versions/", a="1", b="42")
    assert response.status_code == 200
    assert 'id="version-diff"' not in response.content.decode()
    assert messages_of(response) == ["Choose two existing versions to compare."]


def test_versions_page_needs_login(seeded, browser):
    response = browser(None).get("/calibration/versions/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
