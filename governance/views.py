"""Drift pages: per-tenant drift history, baseline management, "run the drift check now"."""

from __future__ import annotations

from datetime import date

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from calibration.charts import drift_chart_svg
from calibration.versions import active_config
from workflows.roles import Role
from workflows.services import actor_for

from . import drift
from .models import Customer, DriftBaseline, DriftReport

MAX_UPLOAD_BYTES = 5 * 1024 * 1024


class UploadBaselineForm(forms.Form):
    file = forms.FileField(help_text="CSV or text (numbers separated by commas, spaces or newlines) or a JSON array.")


class RangeBaselineForm(forms.Form):
    start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))


def _require_risk_lead(request) -> bool:
    if Role.RISK_LEAD not in actor_for(request.user).roles:
        messages.error(request, "Refused: managing drift baselines and checks needs the Risk Lead role.")
        return False
    return True


@login_required
def drift_overview(request):
    latest = {r.customer_id: r for r in DriftReport.objects.order_by("customer_id", "day")}  # the newest wins
    rows = [(customer, latest.get(customer.pk), DriftBaseline.objects.filter(customer=customer).first())
            for customer in Customer.objects.order_by("name")]
    return render(request, "governance/drift_overview.html", {"rows": rows})


@login_required
def drift_tenant(request, customer_id):
    customer = get_object_or_404(Customer, customer_id=customer_id)
    _, config = active_config()
    points = drift.drift_points(customer)
    chart = drift_chart_svg(points, tau_warning=config.tau_warning, tau_critical=config.tau_critical,
                            title=f"Daily KL divergence of {customer.name}")
    return render(request, "governance/drift_tenant.html", {
        "customer": customer, "chart": mark_safe(chart), "reports": DriftReport.objects.filter(customer=customer).select_related("baseline").defer("baseline__values")[:60],
        "baseline": DriftBaseline.objects.filter(customer=customer).first(), "config": config,
        "upload_form": UploadBaselineForm(), "range_form": RangeBaselineForm(),
        "can_manage": Role.RISK_LEAD in actor_for(request.user).roles})


@login_required
@require_POST
def upload_baseline(request, customer_id):
    customer = get_object_or_404(Customer, customer_id=customer_id)
    if _require_risk_lead(request):
        form = UploadBaselineForm(request.POST, request.FILES)
        if not form.is_valid():
            messages.error(request, "Refused: choose a file to upload.")
        elif form.cleaned_data["file"].size > MAX_UPLOAD_BYTES:
            messages.error(request, f"Refused: the file is larger than {MAX_UPLOAD_BYTES // 1024 // 1024} MiB.")
        else:
            upload = form.cleaned_data["file"]
            try:
                values = drift.parse_baseline_file(upload.read(), upload.name)
                baseline = drift.set_baseline(customer, values, actor=actor_for(request.user),
                                              source=f"uploaded {upload.name}")
            except drift.DriftError as exc:
                messages.error(request, f"Refused: {exc}")
            else:
                messages.success(request, f"Baseline set: {len(baseline.values)} values from {upload.name}.")
    return redirect("drift:tenant", customer_id=customer.customer_id)


@login_required
@require_POST
def range_baseline(request, customer_id):
    customer = get_object_or_404(Customer, customer_id=customer_id)
    if _require_risk_lead(request):
        form = RangeBaselineForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Refused: give a start and an end date.")
        else:
            try:
                baseline = drift.set_baseline_from_decisions(customer, form.cleaned_data["start"],
                                                             form.cleaned_data["end"], actor=actor_for(request.user))
            except drift.DriftError as exc:
                messages.error(request, f"Refused: {exc}")
            else:
                messages.success(request, f"Baseline set: {len(baseline.values)} values ({baseline.source}).")
    return redirect("drift:tenant", customer_id=customer.customer_id)


@login_required
@require_POST
def run_now(request, customer_id):
    customer = get_object_or_404(Customer, customer_id=customer_id)
    if _require_risk_lead(request):
        today = timezone.now().date()
        try:
            report, message = drift.rerun_drift_report(customer, today, actor=actor_for(request.user))
        except drift.DriftError as exc:  # the role was taken away since the check above
            report, message = None, str(exc)
        if report is None:
            messages.error(request, f"No report for {today}: {message}")
        else:
            say = {"normal": messages.success, "warning": messages.warning}.get(report.status, messages.error)
            say(request, f"Drift report for {report.day}: {report.status}, KL {report.kl_divergence:.4f} ({message}).")
    return redirect("drift:tenant", customer_id=customer.customer_id)
