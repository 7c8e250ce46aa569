"""Admin for configuration versions (read-only) and calibration proposals: the same
service rules as the pages; the change page offers only the steps the user may take."""

from django.contrib import admin, messages
from django.shortcuts import redirect
from django.urls import path, reverse

from governance.admin import ReadOnlyAdmin, SortableByAdmin
from workflows.services import actor_for, allowed_events

from . import services
from .models import CalibrationProposal, ConfigurationVersion

ADMIN_STEPS = ("approve", "reject", "withdraw", "apply")


@admin.register(ConfigurationVersion)
class ConfigurationVersionAdmin(ReadOnlyAdmin):
    list_display = ("version", "source", "source_ref", "author", "created_at", "content_hash")
    sortable_by = ("version", "source", "source_ref", "created_at", "content_hash")  # author is encrypted
    readonly_fields = ("version", "parameters", "content_hash", "source", "source_ref", "author", "parent", "created_at")


@admin.register(CalibrationProposal)
class CalibrationProposalAdmin(SortableByAdmin):
    list_display = ("parameter", "current_value", "proposed_value", "status_label", "proposed_by", "created_at")
    sortable_by = ("parameter", "current_value", "proposed_value", "created_at")  # proposed_by is encrypted
    list_filter = ("parameter", "workflow__current_state")
    search_fields = ("parameter", "proposal_id")
    readonly_fields = ("proposal_id", "parameter", "current_value", "proposed_value", "status_label", "justification",
                       "proposed_by", "base_version", "applied_version", "workflow", "created_at")
    fields = readonly_fields

    @admin.display(description="status")
    def status_label(self, obj):
        return obj.workflow.current_state.upper()

    def has_delete_permission(self, request, obj=None):
        return False

    def add_view(self, request, form_url="", extra_context=None):
        return redirect("calibration:propose")  # proposing validates live and explains the rules

    def get_urls(self):
        return [path("<int:pk>/step/<str:action>/", self.admin_site.admin_view(self.step_view),
                     name="calibration_calibrationproposal_step"), *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        proposal = self.get_object(request, object_id)
        steps = []
        if proposal is not None:
            names = {e.name for e in allowed_events(proposal.workflow, actor_for(request.user))}
            steps = [name for name in ADMIN_STEPS if name in names]
        extra_context = {**(extra_context or {}), "calibration_steps": steps}
        return super().change_view(request, object_id, form_url, extra_context)

    def step_view(self, request, pk, action):
        proposal = self.get_object(request, str(pk))
        back = reverse("admin:calibration_calibrationproposal_change", args=[pk])
        if proposal is None or request.method != "POST" or action not in ADMIN_STEPS:
            self.message_user(request, "Refused: unknown proposal or step.", messages.ERROR)
            return redirect(back)
        actor = actor_for(request.user)
        try:
            if action == "apply":
                created = services.apply(proposal.proposal_id, actor=actor)
                self.message_user(request, f"Applied: configuration v{created.version} is active.", messages.SUCCESS)
            else:
                getattr(services, action)(proposal.proposal_id, actor=actor, comment=request.POST.get("comment", ""))
                self.message_user(request, f"{services.STEP_DONE[action]}.", messages.SUCCESS)
        except services.CalibrationError as exc:
            self.message_user(request, f"Refused: {exc.message}", messages.ERROR)
        return redirect(back)
