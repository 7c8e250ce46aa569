"""Workflow persistence (the seed's `workflows.persistence`): models, repository, durable engine."""
