"""`cartif-bot run` as a child process for the service tests: ``bot.service.child`` with test settings.

The tests' child logs at DEBUG, cycles on its own only once an hour (a test triggers what it
needs), answers to the static ``API_TOKEN``, and quotes its log's tail in every failure message so
a failed test shows what the service said.
"""

from __future__ import annotations

from pathlib import Path

from bot.service.child import ServiceChild, child_env

API_TOKEN = "static-api-token-" + "x" * 16


class ServiceProcess(ServiceChild):
    def __init__(self, tenant_file: Path, workdir: Path, *, store_url: str | None = None,
                 env: dict[str, str] | None = None, name: str = "service") -> None:
        super().__init__(child_env(tenant_file, workdir, api_token=API_TOKEN, store_url=store_url, extra={
            "CARTIF_SERVICE__LOG_LEVEL": "DEBUG",
            "CARTIF_SCHEDULE__INTERVAL_SECONDS": "3600",
            **(env or {}),
        }), workdir, name=name)

    def describe_failure(self, what: str) -> str:
        return f"{what}; log tail: {self.logs_text()[-2000:]}"

    def stop(self, timeout: float = 60) -> int:
        return super().stop(timeout)
