"""``cartif-bot sync --remote URL``: trigger a running service's cycle and follow it to the end.

Where it sits: the secretariat's side of ``POST /api/sync`` (bot.service.api). The token is a
static API token or an Entra ID access token for the bot's API carrying ``Sync.Trigger``; it is
sent only as an ``Authorization`` header, never printed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from bot.errors import UserError

__all__ = ["trigger_remote"]

#: How often the run is polled while it is in flight (seconds).
POLL_SECONDS = 0.5


def trigger_remote(url: str, token: str, *, verify: Any = True, timeout: float = 600.0,
                   on_progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """POST /api/sync, then poll /api/runs/{id} until done; the finished run as JSON."""
    base = url.rstrip("/")
    headers = {"authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=base, headers=headers, verify=verify, timeout=30) as client:
            answer = client.post("/api/sync")
            if answer.status_code == 401:
                raise UserError("--token: the service refused the token (401); use its API token or an Entra ID "
                                "token for the bot's API")
            if answer.status_code == 403:
                raise UserError(f"--token: the token lacks the required app role (403): {_message(answer)}")
            if answer.status_code != 202:
                raise UserError(f"--remote: {base} answered {answer.status_code}: {_message(answer)}")
            run_id = answer.json()["run_id"]
            deadline = time.monotonic() + timeout
            last: dict[str, Any] = {}
            while time.monotonic() < deadline:
                response = client.get(f"/api/runs/{run_id}")
                response.raise_for_status()
                run: dict[str, Any] = response.json()
                if on_progress is not None and (run.get("status"), run.get("current_step")) != (
                        last.get("status"), last.get("current_step")):
                    on_progress(run)
                last = run
                if run.get("done"):
                    return run
                time.sleep(POLL_SECONDS)
    except httpx.HTTPError as exc:
        raise UserError(f"--remote: cannot reach {base} ({type(exc).__name__}: {exc})") from exc
    raise UserError(f"--remote: run {run_id} did not finish within {timeout:.0f} s; see {base}/api/runs/{run_id}")


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message") or response.text[:200])
    except ValueError:
        return response.text[:200]
