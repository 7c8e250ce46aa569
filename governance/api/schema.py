"""OpenAPI description of API-key authentication (registered when imported by apps.ready)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "governance.api.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "An AEGIS API key, as `Authorization: Bearer <key>` (or `X-Api-Key: <key>`)."}
