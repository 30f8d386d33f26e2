"""Adapters between the bot and Microsoft 365 (Entra ID, Graph, SharePoint REST, Teams).

Submodules import their SDKs; import them explicitly (``from connectors.graph import …``) so
that importing ``connectors`` alone stays cheap. The error tree is re-exported here.
"""

from __future__ import annotations

from connectors.errors import (
    AuthError,
    ConnectorError,
    CredentialNotSupported,
    ServiceError,
    TransportError,
)

__all__ = ["AuthError", "ConnectorError", "CredentialNotSupported", "ServiceError", "TransportError"]
