"""Workflows: durable proposal, consensus and override workflows with a hash-chained audit trail."""
