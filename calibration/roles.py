"""Names of the groups that carry AEGIS roles (created by migrations)."""

RISK_LEAD_GROUP = "Risk Lead"
