"""The REST API the official `aegis-governance` client speaks (API.md)."""
