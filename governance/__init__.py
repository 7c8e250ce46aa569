"""Governance: the pure decision engine (`governance.engine`), tenants, API keys,
decisions, and the client-compatible REST API."""

__version__ = "1.3.0"
