"""Reading a drive's delta feed fast: SDK request builders for URLs/auth/retries, plain JSON for the pages.

Where it sits: ``bot.syncing`` asks a ``DeltaReader`` for pages; ``GraphDeltaReader`` is the real
one. Each page goes through msgraph-sdk's request builder
(``drives.by_drive_id(…).items.by_drive_item_id("root").delta``, or ``.with_url(link)`` for a
nextLink/deltaLink) with ``ResponseHandlerOption(NativeResponseHandler())``, so the SDK's
middleware, token and our retry transport apply but its generated models do not: they parse
about 100 driveItems/s, ``json.loads`` plus ``DeltaItem`` about 100× more (issue #4 §7).

Pages are followed by hand: msgraph's ``PageIterator`` drops the final ``@odata.deltaLink``.

A 410 whose error chain names a resync code (``resyncRequired``, ``resyncChangesApplyDifferences``,
``resyncChangesUploadDifferences``; Graph puts them at any depth of ``innerError``) raises
``ResyncRequired`` with the ``Location`` header, the link that restarts the listing
(anchors-sync-notify §0, [G-delta]). Other errors become ``connectors.errors.ServiceError``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.native_response_handler import NativeResponseHandler
from kiota_http.middleware.options import ResponseHandlerOption
from msgraph.graph_service_client import GraphServiceClient

from connectors.errors import ConnectorError, ServiceError, parse_retry_after

__all__ = ["RESYNC_CODES", "DeltaItem", "DeltaPage", "DeltaReader", "GraphDeltaReader", "ResyncRequired",
           "parse_delta_item", "parse_page", "resync_code"]

#: Error codes that mean "your token is no good, list everything again" (graph-api.md §2.8).
RESYNC_CODES = frozenset({"resyncrequired", "resyncchangesapplydifferences", "resyncchangesuploaddifferences",
                          "resyncapplydifferences", "resyncuploaddifferences"})


@dataclasses.dataclass(frozen=True, slots=True)
class DeltaItem:
    """One driveItem of a delta page, reduced to what the sync needs (never a generated model)."""

    id: str
    name: str
    parent_id: str | None
    is_folder: bool
    is_root: bool = False
    deleted: bool = False
    etag: str | None = None
    ctag: str | None = None
    size: int | None = None
    sha256: str | None = None
    quick_xor: str | None = None
    #: the user's display name, or "app:{client id}" when an application made the change
    modified_by: str | None = None
    #: the application id of lastModifiedBy.application, when an app made the change
    modified_by_app: str | None = None
    modified_at: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class DeltaPage:
    items: list[DeltaItem]
    next_link: str | None
    delta_link: str | None


class ResyncRequired(ConnectorError):
    """The delta token can no longer be served (410); ``location`` restarts the listing."""

    def __init__(self, code: str, location: str | None) -> None:
        super().__init__(f"graph 410 {code}: the delta token expired; a full resync is needed")
        self.code = code
        self.location = location


class DeltaReader(Protocol):
    """Source of delta pages; ``start`` is a nextLink/deltaLink, or None for a first full listing."""

    def pages(self, start: str | None) -> AsyncIterator[DeltaPage]: ...


def parse_delta_item(raw: Mapping[str, Any]) -> DeltaItem:
    """A ``DeltaItem`` from one driveItem JSON object of a delta page."""
    parent = raw.get("parentReference") or {}
    file = raw.get("file")
    hashes = (file or {}).get("hashes") or {}
    by = raw.get("lastModifiedBy") or {}
    app = by.get("application")
    user = by.get("user")
    app_id = app.get("id") if isinstance(app, dict) else None
    who = f"app:{app_id}" if app_id else (user.get("displayName") if isinstance(user, dict) else None)
    size = raw.get("size")
    return DeltaItem(
        id=raw["id"], name=raw.get("name") or "", parent_id=parent.get("id"),
        is_folder="folder" in raw or ("root" in raw), is_root="root" in raw, deleted="deleted" in raw,
        etag=raw.get("eTag"), ctag=raw.get("cTag"), size=size if isinstance(size, int) else None,
        sha256=hashes.get("sha256Hash"), quick_xor=hashes.get("quickXorHash"), modified_by=who,
        modified_by_app=app_id, modified_at=raw.get("lastModifiedDateTime"))


def parse_page(body: bytes | str) -> DeltaPage:
    """A ``DeltaPage`` from a delta response body."""
    data = json.loads(body)
    return DeltaPage([parse_delta_item(v) for v in data.get("value") or ()], data.get("@odata.nextLink"),
                     data.get("@odata.deltaLink"))


def resync_code(error_body: Mapping[str, Any]) -> str | None:
    """The first resync code anywhere in ``error`` → ``innerError`` → … (None: not a resync)."""
    node: Any = error_body.get("error")
    depth = 0
    while isinstance(node, Mapping) and depth < 16:
        code = node.get("code")
        if isinstance(code, str) and code.lower() in RESYNC_CODES:
            return code
        node = node.get("innerError") or node.get("innererror")
        depth += 1
    return None


class GraphDeltaReader:
    """Delta pages of one drive's root through msgraph-sdk, parsed as plain JSON."""

    def __init__(self, client: GraphServiceClient, drive_id: str, *, page_size: int | None = None) -> None:
        self._client = client
        self.drive_id = drive_id
        self.page_size = page_size
        #: requests made, for summaries and benchmarks
        self.requests = 0

    async def pages(self, start: str | None) -> AsyncIterator[DeltaPage]:
        builder = self._client.drives.by_drive_id(self.drive_id).items.by_drive_item_id("root").delta
        link = start
        while True:
            config: RequestConfiguration[Any] = RequestConfiguration(
                options=[ResponseHandlerOption(NativeResponseHandler())])
            if link is None:
                config.query_parameters = builder.DeltaRequestBuilderGetQueryParameters(top=self.page_size)
                request = builder
            else:
                request = builder.with_url(link)
            self.requests += 1
            response = await request.get(request_configuration=config)
            page = self._page(response)
            yield page
            if page.next_link:
                link = page.next_link
                continue
            if page.delta_link:
                return
            raise ServiceError.from_status(502, "invalidResponse", "a delta page had neither "
                                           "@odata.nextLink nor @odata.deltaLink", surface="graph")

    @staticmethod
    def _page(response: Any) -> DeltaPage:
        status = int(response.status_code)
        body: bytes = response.content
        if status == 200:
            return parse_page(body)
        try:
            error = json.loads(body) if body else {}
        except ValueError:
            error = {}
        error = error if isinstance(error, dict) else {}
        headers = response.headers
        code = resync_code(error) if status == 410 else None
        if code is not None:
            raise ResyncRequired(code, headers.get("location"))
        inner: dict[str, Any] = error["error"] if isinstance(error.get("error"), dict) else {}
        raise ServiceError.from_status(status, str(inner.get("code") or ""), str(inner.get("message") or ""),
                                       surface="graph", request_id=str(headers.get("request-id") or ""),
                                       retry_after=parse_retry_after(headers.get("retry-after")))
