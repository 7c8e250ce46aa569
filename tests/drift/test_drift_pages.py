"""The drift pages under /drift/ (PLATFORM.md §6): login, the overview, the per-tenant page
with its chart, uploading a baseline, a baseline from a date range and "run drift check
now" — managing needs the Risk Lead group; refusals read "Refused: …" and store nothing."""

from __future__ import annotations

import re
from datetime import timedelta

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from scipy import stats

from governance import drift
from governance.models import DriftBaseline, DriftReport, TelemetryEvent
from governance.telemetry import Event
from test_drift_support import *  # noqa: F401,F403
from test_drift_support import BASELINE_SETTER, https_client, make_decisions, normal_grid

pytestmark = pytest.mark.django_db

RISK_LEAD_REFUSAL = "Refused: managing drift baselines and checks needs the Risk Lead role."
VALUES = [round(0.05 + 0.001 * i, 3) for i in range(32)]
CSV = ("risk_proposed\n" + "\n".join(map(str, VALUES)) + "\n").encode()


@pytest.fixture
def tenant(make_tenant):
    return make_tenant("Pagey")


@pytest.fixture
def lead(make_user):
    return https_client(make_user("rita", risk_lead=True))


@pytest.fixture
def plain(make_user):
    return https_client(make_user("nina"))


def _url(customer, action: str = "") -> str:
    return f"/drift/{customer.customer_id}/" + (f"{action}/" if action else "")


class Posted:
    """A form POST, then a GET of the page it redirects to (which shows, and so consumes, the
    messages): `status_code` and `location` of the POST, `messages` shown, `page` HTML."""

    def __init__(self, client, path: str, data=None):
        response = client.post(path, data or {}, secure=True)
        self.status_code, self.location = response.status_code, response.get("Location")
        page = client.get(self.location, secure=True) if self.status_code == 302 else response
        self.tagged = [(m.level_tag, str(m)) for m in page.context["messages"]] if page.context else []
        self.messages = [text for _, text in self.tagged]
        self.page = page.content.decode()


def _upload(client, customer, name: str, content: bytes) -> Posted:
    return Posted(client, _url(customer, "baseline/upload"), {"file": SimpleUploadedFile(name, content)})


# --- access ------------------------------------------------------------------------------------

def test_pages_need_login(tenant):
    anonymous = https_client()
    for path in ("/drift/", _url(tenant)):
        response = anonymous.get(path, secure=True)
        assert response.status_code == 302 and response["Location"] == f"/accounts/login/?next={path}"
    response = anonymous.post(_url(tenant, "baseline/upload"), {"file": SimpleUploadedFile("base.csv", CSV)},
                              secure=True)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert not DriftBaseline.objects.exists()


def test_unknown_tenant_is_404_and_actions_are_post_only(lead, tenant):
    assert lead.get("/drift/cus_doesnotexist/", secure=True).status_code == 404
    for action in ("baseline/upload", "baseline/range", "run"):
        assert lead.get(_url(tenant, action), secure=True).status_code == 405


# --- overview and tenant page -----------------------------------------------------------------------

def _two_reports(customer):
    """A normal report the day before yesterday, a warning one yesterday."""
    today = timezone.now().date()
    drift.set_baseline(customer, normal_grid(0.05, 0.01, 200).tolist(), actor=BASELINE_SETTER, source="b")
    make_decisions(customer, normal_grid(0.05, 0.01, 60), today - timedelta(days=3))
    older, _ = drift.run_drift_report(customer, today - timedelta(days=2))
    shifted = np.clip(stats.norm.ppf((np.arange(1, 29) * 0.6180339887498949) % 1.0, 0.08, 0.01), 0, 1)
    make_decisions(customer, shifted, today - timedelta(days=1))
    newer, _ = drift.run_drift_report(customer, today - timedelta(days=1))
    assert (older.status, newer.status) == ("normal", "warning")
    return older, newer


def test_tenant_page_draws_the_chart_with_thresholds_and_lists_the_reports(plain, tenant):
    older, newer = _two_reports(tenant)
    page = plain.get(_url(tenant), secure=True).content.decode()
    assert 'data-threshold="tau_warning"' in page and 'data-threshold="tau_critical"' in page
    assert re.search(r'<svg[^>]*aria-label="Daily KL divergence of Pagey"', page)
    for report in (older, newer):
        assert f"{report.day.isoformat()}: KL {report.kl_divergence:.4f} ({report.status})" in page
    assert "200 values" in page
    # A user without the Risk Lead group sees no management forms.
    assert 'data-form="upload"' not in page and 'data-form="run"' not in page


def test_risk_lead_sees_the_management_forms(lead, tenant):
    page = lead.get(_url(tenant), secure=True).content.decode()
    for form in ("upload", "range", "run"):
        assert f'data-form="{form}"' in page
    assert "No baseline" in page and "No drift measured yet" in page


def test_overview_lists_tenants_with_their_newest_report(plain, tenant, make_tenant):
    make_tenant("Quiet")
    _older, newer = _two_reports(tenant)
    page = plain.get("/drift/", secure=True).content.decode()
    assert "Pagey" in page and "Quiet" in page
    row = re.search(r"<tr><td><a [^>]*>Pagey</a></td>(.*?)</tr>", page, re.S).group(1)
    assert "200 values" in row
    # Regression (fixed in e712ce8): drift_overview built {customer_id: report} from reports
    # ordered (customer, -day), so each tenant's OLDEST report won as its "Latest report".
    assert f'<td><time datetime="{newer.day}">{newer.day}</time>' in row and 'class="badge warning"' in row, row
    assert str(_older.day) not in row


# --- upload -----------------------------------------------------------------------------------------

def test_upload_sets_a_baseline_with_a_success_message(lead, tenant):
    posted = _upload(lead, tenant, "base.csv", CSV)
    assert (posted.status_code, posted.location) == (302, _url(tenant))
    assert posted.messages == ["Baseline set: 32 values from base.csv."]
    baseline = DriftBaseline.objects.get(customer=tenant)
    assert baseline.values == VALUES and baseline.source == "uploaded base.csv" and baseline.created_by == "rita"
    # The page the form returns to shows the message and the new baseline.
    assert "Baseline set: 32 values from base.csv." in posted.page
    assert "32 values · uploaded base.csv · set by rita" in posted.page


def test_upload_json_and_whitespace_files(lead, tenant):
    assert _upload(lead, tenant, "b.json", ("[" + ", ".join(map(str, VALUES)) + "]").encode()).messages == [
        "Baseline set: 32 values from b.json."]
    assert _upload(lead, tenant, "b.txt", " ".join(map(str, VALUES)).encode()).messages == [
        "Baseline set: 32 values from b.txt."]
    assert DriftBaseline.objects.filter(customer=tenant).count() == 2


@pytest.mark.parametrize("name, content, expected", [
    ("bad.csv", b"risk\n0.1\nabc\n" + CSV[14:], "Refused: bad.csv: line 3, value 1 ('abc') is not a number"),
    ("few.csv", b"0.1,0.2,0.3,0.4,0.5", "Refused: uploaded few.csv: 5 value(s); a baseline needs at least 30 "
                                       "(kl_drift.min_samples)"),
    ("nan.json", b"[0.1, NaN]", "Refused: nan.json: item 2 (nan) is not a finite number"),
    ("inf.csv", b"0.1\n0.2\ninf\n", "Refused: inf.csv: line 3, value 1 ('inf') is not a finite number"),
    ("bin.csv", b"\xff\xfe\x00", "Refused: bin.csv: not a UTF-8 text file"),
], ids=["not-a-number", "too-few", "json-nan", "csv-inf", "binary"])
def test_upload_errors_are_refused_and_nothing_is_stored(lead, tenant, name, content, expected):
    posted = _upload(lead, tenant, name, content)
    assert (posted.status_code, posted.location) == (302, _url(tenant))
    assert posted.messages == [expected]
    assert not DriftBaseline.objects.exists()


def test_upload_of_a_json_integer_beyond_float_range_is_refused_not_a_server_error(lead, tenant):
    """Regression (fixed in e712ce8; see test_drift_baselines): OverflowError escaped
    parse_baseline_file → HTTP 500."""
    lead.raise_request_exception = False
    response = lead.post(_url(tenant, "baseline/upload"),
                         {"file": SimpleUploadedFile("big.json", b"[0.1, 1" + b"0" * 400 + b"]")}, secure=True)
    assert response.status_code == 302, f"HTTP {response.status_code}"
    page = lead.get(response["Location"], secure=True)
    assert [str(m) for m in page.context["messages"]][0].startswith("Refused: big.json: item 2")
    assert not DriftBaseline.objects.exists()


def test_upload_without_a_file_is_refused(lead, tenant):
    posted = Posted(lead, _url(tenant, "baseline/upload"))
    assert posted.messages == ["Refused: choose a file to upload."]
    assert not DriftBaseline.objects.exists()


def test_refusal_is_rendered_on_the_page(lead, tenant):
    posted = _upload(lead, tenant, "few.csv", b"0.1")
    assert "Refused: uploaded few.csv: 1 value(s); a baseline needs at least 30" in posted.page
    assert 'data-form="upload"' in posted.page


# --- baseline from a date range ------------------------------------------------------------------

def test_range_form_sets_a_baseline_from_the_decisions(lead, tenant):
    today = timezone.now().date()
    values = normal_grid(0.05, 0.01, 35)
    make_decisions(tenant, values, today - timedelta(days=5))
    start, end = today - timedelta(days=6), today - timedelta(days=4)
    posted = Posted(lead, _url(tenant, "baseline/range"), {"start": start.isoformat(), "end": end.isoformat()})
    assert posted.messages == [f"Baseline set: 35 values (decisions {start} to {end})."]
    baseline = DriftBaseline.objects.get(customer=tenant)
    assert sorted(baseline.values) == sorted(values.tolist())


@pytest.mark.parametrize("form, expected", [
    ({"start": "2025-03-05", "end": "2025-03-01"},
     "Refused: the end date 2025-03-01 is before the start date 2025-03-05"),
    ({"start": "2025-03-01", "end": "2025-03-05"}, "Refused: decisions 2025-03-01 to 2025-03-05: 0 value(s); "
                                                    "a baseline needs at least 30 (kl_drift.min_samples)"),
    ({"start": "2025-03-01"}, "Refused: give a start and an end date."),
    ({"start": "yesterday", "end": "2025-03-05"}, "Refused: give a start and an end date."),
], ids=["reversed", "no-decisions", "missing-end", "not-a-date"])
def test_range_form_errors_are_refused_and_nothing_is_stored(lead, tenant, form, expected):
    assert Posted(lead, _url(tenant, "baseline/range"), form).messages == [expected]
    assert not DriftBaseline.objects.exists()


# --- the Risk Lead group -----------------------------------------------------------------------------

def test_a_user_without_the_risk_lead_group_is_refused(plain, tenant):
    make_decisions(tenant, normal_grid(0.05, 0.01, 40), timezone.now().date())
    drift.set_baseline(tenant, VALUES, actor=BASELINE_SETTER, source="by a risk lead")
    baselines_before = DriftBaseline.objects.count()
    posts = [
        (_url(tenant, "baseline/upload"), {"file": SimpleUploadedFile("base.csv", CSV)}),
        (_url(tenant, "baseline/range"), {"start": "2025-01-01", "end": "2030-01-01"}),
        (_url(tenant, "run"), {}),
    ]
    for path, data in posts:
        posted = Posted(plain, path, data)
        assert (posted.status_code, posted.location) == (302, _url(tenant)), path
        assert posted.messages == [RISK_LEAD_REFUSAL], path
    assert DriftBaseline.objects.count() == baselines_before
    assert not DriftReport.objects.exists()


# --- run now -----------------------------------------------------------------------------------------

def test_run_now_creates_todays_report_then_recomputes_it_after_a_baseline_change(lead, tenant):
    """Regression (issue 13): a second run after a new baseline answered the old report
    ("already reported"). It now replaces the day's report, records old and new in the
    telemetry, and a warning shows as a warning message, not a success banner."""
    today = timezone.now().date()
    drift.set_baseline(tenant, normal_grid(0.05, 0.01, 100).tolist(), actor=BASELINE_SETTER, source="first")
    make_decisions(tenant, normal_grid(0.05, 0.01, 40), today)

    posted = Posted(lead, _url(tenant, "run"))

    first = DriftReport.objects.get(customer=tenant)
    assert first.day == today and first.status == "normal"
    assert posted.tagged == [("success", posted.messages[0])]
    assert posted.messages[0].startswith(f"Drift report for {today}: normal, KL {first.kl_divergence:.4f} (KL divergence")
    assert f"{today.isoformat()}: KL {first.kl_divergence:.4f} (normal)" in posted.page  # on the chart

    drift.set_baseline(tenant, normal_grid(0.09, 0.01, 100).tolist(), actor=BASELINE_SETTER, source="second")
    again = Posted(lead, _url(tenant, "run"))

    [replaced] = DriftReport.objects.filter(customer=tenant)
    assert replaced.pk == first.pk and replaced.baseline.source == "second"
    assert replaced.status != "normal" and replaced.kl_divergence > first.kl_divergence
    [(level, message)] = again.tagged
    assert level == {"warning": "warning", "critical": "error"}[replaced.status]
    assert message.startswith(f"Drift report for {today}: {replaced.status}, KL {replaced.kl_divergence:.4f} "
                              f"(replaced the day's earlier report (was normal, KL {first.kl_divergence:.4f}): ")
    [event] = TelemetryEvent.objects.filter(name=Event.DRIFT_REPORT_REPLACED)
    assert (event.actor, event.subject) == ("rita", tenant.customer_id)
    assert event.data["old"]["status"] == "normal" and event.data["old"]["kl_divergence"] == first.kl_divergence
    assert event.data["new"]["status"] == replaced.status
    assert event.data["new"]["kl_divergence"] == replaced.kl_divergence
    assert event.data["new"]["baseline_id"] == replaced.baseline_id != event.data["old"]["baseline_id"]


def test_run_now_shows_the_reason_when_no_report_can_be_made(lead, tenant):
    today = timezone.now().date()
    assert Posted(lead, _url(tenant, "run")).messages == [f"No report for {today}: Pagey: no drift baseline is set"]
    drift.set_baseline(tenant, VALUES, actor=BASELINE_SETTER, source="b")
    make_decisions(tenant, VALUES[:10], today)
    [message] = Posted(lead, _url(tenant, "run")).messages
    assert message.startswith(f"No report for {today}: Drift not computed: each sample needs at least 30")
    assert "current n=10" in message
    assert not DriftReport.objects.exists()
