"""Shared fixtures: one local tenant per test session, and real SDK clients pointed at it.

The tenant runs as a subprocess (``python -m emulator``) on a free port with a fresh data
directory, seeded with the ``cartif`` scenario. Tests share it, so each test works under its
own names (``unique``). Clients come from ``tests.sdk``: msal, msgraph-sdk and
office365-rest-python-client configured only from ``tenant.json``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from emulator.process import LocalTenantProcess
from tests import sdk


@pytest.fixture(autouse=True)
def _clean_cartif_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the test, never from the developer's shell."""
    for key in list(os.environ):
        if key.startswith("CARTIF_"):
            monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="session")
def local_tenant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTenantProcess]:
    # The whole suite shares the bot app's resource-unit budget; throttling tests lower it through
    # the admin API for their own duration instead of the suite tripping over 1,200 RU a minute.
    tenant = LocalTenantProcess(tmp_path_factory.mktemp("tenant") / "data", extra=["--ru-per-minute", "1000000"])
    tenant.start()
    yield tenant
    tenant.stop()


@pytest.fixture(scope="session")
def tenant_info(local_tenant: LocalTenantProcess) -> dict[str, Any]:
    return local_tenant.info


@pytest.fixture(scope="session")
def tokens(tenant_info: dict[str, Any]) -> sdk.Tokens:
    return sdk.Tokens(tenant_info)


@pytest.fixture
def unique() -> str:
    return "t-" + uuid.uuid4().hex[:6]


@pytest.fixture(scope="session")
def admin(tenant_info: dict[str, Any]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tenant_info["admin_url"], verify=tenant_info["ca_path"], trust_env=False,
                      timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def graph(tenant_info: dict[str, Any], tokens: sdk.Tokens) -> Any:
    return sdk.graph_client(tenant_info, tokens)


@pytest.fixture(scope="session")
async def graph_http(tenant_info: dict[str, Any], tokens: sdk.Tokens) -> AsyncIterator[httpx.AsyncClient]:
    async with sdk.graph_http(tenant_info, tokens) as client:
        yield client


@pytest.fixture(scope="session")
def sp(tenant_info: dict[str, Any], tokens: sdk.Tokens) -> Any:
    return sdk.sp_context(tenant_info, tokens)


@pytest.fixture(scope="session")
def sp_http(tenant_info: dict[str, Any], tokens: sdk.Tokens) -> Iterator[Any]:
    session = sdk.sp_http(tenant_info, tokens)
    yield session
    session.close()
