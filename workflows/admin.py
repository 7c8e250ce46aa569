"""Read-only admin for workflows and their audit trail: history is changed only by the
workflow services, never by hand."""

from django.contrib import admin

from governance.admin import ReadOnlyAdmin, ReadOnlyInline

from .persistence.models import (
    BackupRun,
    ChainVerificationRun,
    WorkflowCheckpoint,
    WorkflowInstance,
    WorkflowTransition,
)


class TransitionInline(ReadOnlyInline):
    model = WorkflowTransition
    fields = ("seq", "from_state", "to_state", "triggered_by", "reason", "created_at", "hash")


@admin.register(WorkflowInstance)
class WorkflowInstanceAdmin(ReadOnlyAdmin):
    list_display = ("workflow_id", "workflow_type", "current_state", "status", "version", "updated_at")
    list_filter = ("workflow_type", "status")
    search_fields = ("workflow_id",)
    inlines = [TransitionInline]


@admin.register(WorkflowTransition)
class WorkflowTransitionAdmin(ReadOnlyAdmin):
    list_display = ("workflow", "seq", "from_state", "to_state", "triggered_by", "created_at")
    sortable_by = ("workflow", "seq", "from_state", "to_state", "created_at")  # triggered_by is encrypted
    list_filter = ("to_state",)
    search_fields = ("workflow__workflow_id",)


@admin.register(WorkflowCheckpoint)
class WorkflowCheckpointAdmin(ReadOnlyAdmin):
    list_display = ("workflow", "seq", "created_by", "created_at", "hash")
    sortable_by = ("workflow", "seq", "created_at", "hash")  # created_by is encrypted
    search_fields = ("workflow__workflow_id",)


@admin.register(BackupRun)
class BackupRunAdmin(ReadOnlyAdmin):
    list_display = ("day", "outcome", "path", "sha256", "finished_at")
    list_filter = ("outcome",)


@admin.register(ChainVerificationRun)
class ChainVerificationRunAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "finished_at", "depth", "checked", "broken", "result")
    list_filter = ("depth",)
    readonly_fields = ("started_at", "finished_at", "depth", "checked", "broken", "failures")

    @admin.display(description="result", boolean=True)
    def result(self, obj):
        return obj.ok
