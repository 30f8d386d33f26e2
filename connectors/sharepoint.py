"""The SharePoint REST client: office365-rest-python-client's ``ClientContext`` on our token and CA.

Where it sits: SharePoint REST is what Graph cannot do for us (breaking inheritance, role
assignments on folders; anchors-permissions §1.1). This module builds the context and
translates its errors; callers use the context's API.

* Tokens come from our ``Authenticator`` through ``ctx.with_access_token(callable)``, not from
  office365's own msal path: that one builds a new msal app per token and, with a custom
  authority, cannot turn off instance discovery (anchors §2.4).
* SharePoint REST refuses app-only tokens obtained with a client secret, so a secret-only
  configuration is refused here, before any request (``CredentialNotSupported``).
* TLS: office365 3.3.0 takes a transport via ``ctx.with_transport(session=…, verify=…)``
  (``office365/runtime/client_request.py``, ``transport/requests_transport.py``: a per-request
  ``verify`` wins, then the transport's). We pass a ``trust_env=False`` session that trusts
  ``endpoints.ca_path`` and the same path as ``verify``, so ``REQUESTS_CA_BUNDLE`` cannot override it.
* Retries: the project's one policy (``connectors.retrying.RetryingAdapter``) is mounted on that
  session; office365's own ``with_auto_retry`` stays off. A 429/503 with Retry-After pauses every
  SharePoint request of the process (one gate, ``SHAREPOINT_GATE``) until it has passed.
"""

from __future__ import annotations

import json
from typing import Any

from office365.runtime.client_request_exception import ClientRequestException
from office365.runtime.http.http_method import HttpMethod
from office365.runtime.http.request_options import RequestOptions
from office365.sharepoint.client_context import ClientContext

from config.settings import Settings
from connectors.auth import Authenticator, Resource, new_requests_session
from connectors.errors import ServiceError, parse_retry_after
from connectors.retrying import RetryPolicy, SyncPauseGate, mount_retrying

#: SharePoint throttles per app and tenant, not per context: one pause for the whole process.
SHAREPOINT_GATE = SyncPauseGate()

__all__ = ["NOMETADATA", "VERBOSE", "build_sharepoint_context", "from_client_request_exception", "rest_call"]

#: SharePoint REST payload formats: answers without OData metadata; bodies in the verbose format
#: (``__metadata``) every SharePoint version accepts.
NOMETADATA = "application/json;odata=nometadata"
VERBOSE = "application/json;odata=verbose"


def build_sharepoint_context(settings: Settings, authenticator: Authenticator) -> ClientContext:
    """A ``ClientContext`` for ``settings.endpoints.site_url``, authenticated with the bot's certificate."""
    authenticator.require_accepted(Resource.SHAREPOINT)
    ca_path = settings.endpoints.ca_path
    ctx = ClientContext(settings.endpoints.site_url)
    session = new_requests_session(ca_path)
    http = settings.http
    mount_retrying(session, RetryPolicy(max_retries=http.max_retries, base_delay=http.retry_delay_seconds,
                                        max_concurrency=http.max_concurrency), SHAREPOINT_GATE)
    ctx.with_transport(
        session=session,
        verify=str(ca_path) if ca_path else None,
        timeout=(settings.http.connect_timeout_seconds, settings.http.timeout_seconds),
    )
    ctx.with_access_token(lambda: authenticator.token_response(Resource.SHAREPOINT))
    return ctx


def from_client_request_exception(exc: ClientRequestException) -> ServiceError:
    """Our ``ServiceError`` for an office365 error (SharePoint's code is "HRESULT, .NET type")."""
    response = exc.response
    status = response.status_code if response is not None else 0
    headers = response.headers if response is not None else {}
    request_id = headers.get("SPRequestGuid") or headers.get("request-id") or ""
    return ServiceError.from_status(status, exc.code or "", exc.message or str(exc), surface="sharepoint",
                                    request_id=str(request_id),
                                    retry_after=parse_retry_after(headers.get("Retry-After")))


def rest_call(ctx: ClientContext, method: str, path: str, body: Any = None, *, accept: str = NOMETADATA) -> Any:
    """One SharePoint REST call on ``ctx`` (our token, the form digest on writes, the retry layer):
    ``path`` is relative to ``_api/``; returns the parsed JSON answer or None; errors become ours."""
    headers = {"Accept": accept}
    data: bytes | None = None
    if body is not None:
        headers["Content-Type"] = VERBOSE
        data = json.dumps(body).encode()
    if method in ("MERGE", "DELETE"):  # SharePoint REST's tunnel: POST + X-HTTP-Method, any version (IF-MATCH *)
        headers.update({"X-HTTP-Method": method, "IF-MATCH": "*"})
    options = RequestOptions(url=f"{ctx.service_root_url}/{path}",
                             method=HttpMethod.Get if method == "GET" else HttpMethod.Post,
                             data=data, headers=headers)
    try:
        response = ctx.pending_request().execute_request_direct(options)
    except ClientRequestException as exc:
        raise from_client_request_exception(exc) from exc
    return response.json() if response.content else None
