"""AEGIS roles and the Django groups that carry them: declared once, read by the state
machines, the pages, the demo set-up and the group-creating migration."""

from enum import StrEnum


class Role(StrEnum):
    RISK_LEAD = "risk_lead"
    SECURITY_LEAD = "security_lead"
    SYSTEM = "system"  # the engine, schedulers and system actors such as drift-monitor
    INTEGRATION = "integration"  # a tenant's API key: may request the override its decision offers


# Role -> name of the Django group whose members hold it.
ROLE_GROUPS: dict[Role, str] = {
    Role.RISK_LEAD: "Risk Lead",
    Role.SECURITY_LEAD: "Security Lead",
}
RISK_LEAD_GROUP = ROLE_GROUPS[Role.RISK_LEAD]
SECURITY_LEAD_GROUP = ROLE_GROUPS[Role.SECURITY_LEAD]
