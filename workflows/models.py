"""Django finds the workflow models here; they live in workflows.persistence.models (the seed's place)."""

from .persistence.models import (  # noqa: F401
    BackupRun,
    ChainSeal,
    ReencryptionWindow,
    ChainVerificationRun,
    WorkflowCheckpoint,
    WorkflowInstance,
    WorkflowStatus,
    WorkflowTransition,
)
