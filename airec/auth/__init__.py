"""Access control for the JSON API and the console: API keys, their roles, and the hook that checks them.

One table says which role each endpoint needs (airec.auth.roles); one before_request hook enforces it
(airec.auth.gate); the OpenAPI document says so (airec.auth.openapi); `init_auth` (airec.auth.install)
puts the three on an app. Keys themselves are created, verified and revoked in airec.auth.service.
"""

from airec.auth.gate import authorize, presented_key
from airec.auth.install import init_auth
from airec.auth.openapi import SECURITY_SCHEMES, document_security
from airec.auth.roles import (
    ADMIN,
    DOCS,
    ENDPOINT_ROLES,
    INGEST,
    PUBLIC,
    READ,
    Configurable,
    required_role,
    unmapped_endpoints,
)

__all__ = [
    "ADMIN",
    "DOCS",
    "ENDPOINT_ROLES",
    "INGEST",
    "PUBLIC",
    "READ",
    "SECURITY_SCHEMES",
    "Configurable",
    "authorize",
    "document_security",
    "init_auth",
    "presented_key",
    "required_role",
    "unmapped_endpoints",
]
