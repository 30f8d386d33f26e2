"""`cartif-bot run` end to end against the local tenant, as a child process.

We test these aspects:

* a cycle runs at start and then on schedule; /healthz, /readyz, /api/status answer;
* /metrics is Prometheus text whose counters move with the cycles;
* POST /api/sync: 401 without or with a wrong token, 403 for an Entra ID token without
  Sync.Trigger, 202 for the static token and for the secretariat app's Entra ID token;
* concurrent triggers during a cycle queue exactly one follow-up, and cycles never overlap;
* SIGTERM during a cycle: the step in flight finishes, the rest is skipped, exit status 0;
* `cartif-bot sync --remote` triggers and follows a run;
* with a notification URL: an upload by another app is synced by a notification-driven cycle,
  and a governed folder shared by hand (a permission change, notified because the subscription
  asked for them) is put right by one within seconds, the schedule being an hour;
* the JSON logs of all that carry run ids and no secret or token.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.service.logs import redact
from bot.service.scheduling import CronExpression
from emulator.process import LocalTenantProcess
from tests import sdk
from tests.service_process import API_TOKEN, ServiceProcess

#: A small structure (one governed folder, three groups) so a first permission cycle takes a
#: second, not the half minute the full CARTIF layout needs.
SMALL_STRUCTURE = """
version: 1
library: Shared Documents
root: "Service tests"
group_names:
  country: "SVC Delegation {code}"
  working_group: "SVC {code}"
  chief_negotiators: "SVC Chief Negotiators"
  focal_points: "SVC National Focal Points"
  secretariat: "SVC Secretariat"
  observers: "SVC Observers"
guard: {max_removal_share: 0.2, min_guarded_removals: 10}
roles:
  chief_negotiator: {name: Chief Negotiator, groups: [chief_negotiators]}
  secretariat: {name: Secretariat, groups: [secretariat]}
folders:
  owner: secretariat
  templates:
    - path: "KAZ"
      grants: {"country:KAZ": Edit}
participants:
  - {code: KAZ, name: "Kazakhstan", status: participant}
working_groups: []
roster:
  - {person: aigerim.nurlanova@mti.gov.kz, country: KAZ, roles: [chief_negotiator]}
  - {person: maria.santos@cartif.onmicrosoft.com, secretariat: true, roles: [secretariat]}
"""


def service_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    structure = tmp_path / "structure.yaml"
    structure.write_text(SMALL_STRUCTURE)
    return {"CARTIF_PERMISSIONS__STRUCTURE_PATH": str(structure), **extra}


@pytest.fixture(scope="module")
def service(local_tenant: LocalTenantProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    work = tmp_path_factory.mktemp("service")
    proc = ServiceProcess(local_tenant.connection_file, work, env=service_env(work)).start()
    # The start-up cycle must be over before the tests count cycles.
    proc.wait_for(lambda: proc.status()["last_cycles"], what="the start-up cycle")
    yield proc
    proc.stop()


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name + (("{" + labels + "}") if labels else "")) + r" ([0-9.e+-]+)$"
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else 0.0


def test_the_start_up_cycle_runs_every_step_and_health_answers(service: ServiceProcess) -> None:
    status = service.status()
    first = status["last_cycles"][-1]
    assert first["reason"] == "start"
    assert first["status"] == "succeeded", service.logs_text()[-2000:]
    assert first["steps"] == {"sync": "succeeded", "permissions": "succeeded", "circulation": "succeeded",
                              "notices": "succeeded"}
    assert status["role"] == "leader" and status["leadership"] == "file"
    assert status["outbox_depth"] == 0
    with service.client(token=None) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["role"] == "leader"


def test_the_first_permission_cycle_reports_drift_and_a_second_finds_none(service: ServiceProcess) -> None:
    with service.client() as c:
        run_id = c.post("/api/sync").json()["run_id"]
    run = service.wait_run(run_id)
    permissions = next(s for s in run["steps"] if s["name"] == "permissions")
    assert permissions["status"] == "succeeded"
    assert permissions["counts"]["drift"] == 0, "the start-up cycle should have applied everything"
    assert permissions["counts"]["remaining"] == 0


def test_trigger_without_a_valid_token_is_401(service: ServiceProcess) -> None:
    with service.client(token=None) as c:
        missing = c.post("/api/sync")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        wrong = c.post("/api/sync", headers={"authorization": "Bearer " + "y" * 40})
        assert wrong.status_code == 401
        forged = c.post("/api/sync", headers={"authorization": "Bearer " + _forged_token()})
        assert forged.status_code == 401
        assert c.get("/api/status").status_code == 401


def test_entra_token_without_the_app_role_is_403(service: ServiceProcess, tokens: sdk.Tokens,
                                                 tenant_info: dict[str, Any]) -> None:
    # The unprivileged app may get a token for the bot's API, but it has not been granted Sync.Trigger.
    token = tokens._get(f"{tenant_info['api_app_id_uri']}/.default", "unprivileged")
    import jwt

    assert "roles" not in jwt.decode(token, options={"verify_signature": False})
    with service.client(token=token) as c:
        answer = c.post("/api/sync")
    assert answer.status_code == 403
    assert "Sync.Trigger" in answer.json()["message"]


def test_entra_token_with_the_app_role_triggers_a_run(service: ServiceProcess, tokens: sdk.Tokens,
                                                       tenant_info: dict[str, Any]) -> None:
    token = tokens._get(f"{tenant_info['api_app_id_uri']}/.default", "secretariat")
    import jwt

    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["roles"] == ["Sync.Trigger"] and claims["aud"] == tenant_info["api_app_id_uri"]
    with service.client(token=token) as c:
        answer = c.post("/api/sync")
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert body["by"] == "entra" and answer.headers["location"] == f"/api/runs/{body['run_id']}"
    run = service.wait_run(body["run_id"])
    assert run["reason"] == "manual" and run["status"] == "succeeded"
    # A Graph token (audience Graph, not the bot's API) is refused even though it is genuine.
    with service.client(token=tokens.graph("secretariat")) as c:
        assert c.post("/api/sync").status_code == 401


def test_concurrent_triggers_queue_exactly_one_follow_up(service: ServiceProcess, admin: httpx.Client) -> None:
    # Slow the delta feed down so the first run is surely still in flight while we trigger again.
    admin.post("/faults", json={"kind": "latency", "path": "/delta", "latency_ms": 1500, "count": 2}).raise_for_status()
    try:
        with service.client() as c:
            first = c.post("/api/sync").json()
            service.wait_for(lambda: c.get(f"/api/runs/{first['run_id']}").json()["status"] == "running",
                             what="the first run to start")
            second = c.post("/api/sync").json()
            third = c.post("/api/sync").json()
            fourth = c.post("/api/sync").json()
            assert c.get(f"/api/runs/{first['run_id']}").json()["status"] == "running", \
                "the latency fault should keep the first run busy"
    finally:
        admin.delete("/faults")
    assert second["run_id"] != first["run_id"]
    assert third["run_id"] == second["run_id"] == fourth["run_id"], "triggers during a run join ONE follow-up"
    assert second["status"] == "queued" and second["after"] == first["run_id"]
    done_first = service.wait_run(first["run_id"])
    done_second = service.wait_run(second["run_id"])
    assert done_second["triggers"] == 3
    assert done_first["finished_at"] <= done_second["started_at"], "two cycles overlapped"
    ids = [r["id"] for r in service.status()["last_cycles"]]
    assert ids[:2] == [second["run_id"], first["run_id"]], "no other cycle ran for those triggers"


def test_metrics_are_prometheus_text_and_move_with_cycles(service: ServiceProcess, admin: httpx.Client) -> None:
    with service.client(token=None) as c:
        before = c.get("/metrics")
        assert before.headers["content-type"].startswith("text/plain")
        text = before.text
        for name in ("cartif_cycles_total", "cartif_cycle_duration_seconds_bucket", "cartif_http_requests_total",
                     "cartif_outbox_depth", "cartif_last_success_timestamp_seconds", "cartif_leader",
                     "cartif_api_requests_total", "cartif_http_retry_wait_seconds_total",
                     "cartif_http_retries_total"):
            assert name in text, f"{name} missing from /metrics"
        cycles = metric(text, "cartif_cycles_total", 'outcome="succeeded"')
        graph_ok = metric(text, "cartif_http_requests_total", 'api="graph",method="GET",status="200"')
        assert cycles >= 1 and graph_ok >= 1
        # The permissions step's SharePoint REST calls are counted by the same retry layer.
        assert metric(text, "cartif_http_requests_total", 'api="sharepoint",method="GET",status="200"') >= 1
        assert metric(text, "cartif_leader") == 1
    # One throttled delta request in the next cycle: the transport waits out its Retry-After and retries.
    admin.post("/faults", json={"kind": "429", "path": "/delta", "retry_after": "1", "count": 1}).raise_for_status()
    try:
        with service.client() as c:
            service.wait_run(c.post("/api/sync").json()["run_id"])
    finally:
        admin.delete("/faults")
    with service.client(token=None) as c:
        after = c.get("/metrics").text
    assert metric(after, "cartif_http_requests_total", 'api="graph",method="GET",status="429"') >= 1
    assert metric(after, "cartif_http_throttled_total", 'api="graph",status="429"') >= 1
    assert metric(after, "cartif_http_retries_total", 'api="graph",reason="retry_after"') >= 1
    assert metric(after, "cartif_http_retry_wait_seconds_total", 'api="graph",reason="retry_after"') >= 1.0
    assert metric(after, "cartif_cycles_total", 'outcome="succeeded"') == cycles + 1
    assert metric(after, "cartif_http_requests_total", 'api="graph",method="GET",status="200"') > graph_ok
    assert metric(after, "cartif_api_requests_total", 'route="/api/sync",status="202"') >= 1


def test_sync_remote_triggers_and_follows_a_run(service: ServiceProcess) -> None:
    env = {k: v for k, v in service.env.items() if not k.startswith("CARTIF_")}
    done = subprocess.run([sys.executable, "-m", "bot", "sync", "--remote", service.url, "--token", API_TOKEN],
                          check=False, env=env, capture_output=True, text=True, timeout=180, cwd=service.workdir)
    assert done.returncode == 0, done.stderr + done.stdout
    assert re.search(r"^  sync\s+succeeded", done.stdout, re.M)
    assert re.search(r"^  permissions\s+succeeded", done.stdout, re.M)
    refused = subprocess.run([sys.executable, "-m", "bot", "sync", "--remote", service.url, "--token", "n" * 20],
                             check=False,
                             env=env, capture_output=True, text=True, timeout=60, cwd=service.workdir)
    assert refused.returncode == 1 and "401" in refused.stderr


def test_scheduled_cycles_run_on_the_interval(local_tenant: LocalTenantProcess, tmp_path: Path) -> None:
    proc = ServiceProcess(local_tenant.connection_file, tmp_path,
                          env=service_env(tmp_path, CARTIF_SCHEDULE__INTERVAL_SECONDS="1")).start()
    try:
        proc.wait_for(lambda: sum(r["reason"] == "schedule" for r in proc.status()["last_cycles"]) >= 2,
                      what="two scheduled cycles")
        reasons = [r["reason"] for r in proc.status()["last_cycles"]]
        assert reasons[-1] == "start"
    finally:
        proc.stop()
    assert proc.proc is not None and proc.proc.returncode == 0


def test_sigterm_during_a_cycle_finishes_the_step_and_exits_cleanly(local_tenant: LocalTenantProcess,
                                                                     tmp_path: Path, admin: httpx.Client) -> None:
    proc = ServiceProcess(local_tenant.connection_file, tmp_path, env=service_env(tmp_path))
    admin.post("/faults", json={"kind": "latency", "path": "/delta", "latency_ms": 2000, "count": 1}).raise_for_status()
    try:
        proc.start()
        proc.wait_for(lambda: (proc.status().get("current") or {}).get("current_step") == "sync",
                      what="the start-up cycle inside its sync step")
        proc.signal(signal.SIGTERM)
        assert proc.wait_exit() == 0
    finally:
        admin.delete("/faults")
        proc.stop()
    records = proc.log_records()
    messages = [r["message"] for r in records]
    stop_at = next(i for i, m in enumerate(messages) if m.startswith("stopping"))
    sync_done = next(i for i, m in enumerate(messages) if m.startswith("step sync:"))
    interrupted = next(i for i, m in enumerate(messages) if m.startswith("cycle ") and "interrupted" in m)
    assert stop_at < sync_done < interrupted, "the sync step in flight must finish after SIGTERM"
    assert not any(m.startswith("step permissions") for m in messages), "no step may start after SIGTERM"
    assert messages[-1] == "stopped cleanly"
    # The step that finished committed its work: a cursor is stored for the drive.
    from bot.store import Store

    with Store.open(proc.env["CARTIF_STORE__URL"]) as store:
        assert store.cursor(local_tenant.info["drive_id"]) is not None


def test_a_second_instance_on_the_same_sqlite_store_is_refused(service: ServiceProcess) -> None:
    env = dict(service.env)
    done = subprocess.run([sys.executable, "-m", "bot", "run"], check=False, env=env, capture_output=True, text=True,
                          timeout=60, cwd=service.workdir)
    assert done.returncode == 1
    assert "already uses this store" in done.stderr


def test_logs_carry_run_ids_and_no_secret_or_token(service: ServiceProcess, tokens: sdk.Tokens,
                                                   tenant_info: dict[str, Any]) -> None:
    # Put a secret where a careless log line would show it: in a request the service answers.
    with service.client(token=tenant_info["admin_client_secret"]) as c:
        assert c.post("/api/sync").status_code == 401
    text = service.logs_text()
    records = service.log_records()
    assert records and all({"time", "level", "logger", "message", "run_id"} <= r.keys() for r in records)
    cycle_lines = [r for r in records if r["message"].startswith("step ")]
    assert cycle_lines and all(r["run_id"] for r in cycle_lines)
    for secret in (API_TOKEN, tenant_info["admin_client_secret"], tenant_info["secretariat_client_secret"],
                   tokens.graph(), tokens.sharepoint()):
        assert secret not in text
    assert not re.search(r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.", text), "a JWT reached the logs"
    assert not re.search(r"(?i)bearer\s+(?!\[redacted\])[A-Za-z0-9._~+/=-]{8,}", text), "a bearer credential leaked"


# ---------------------------------------------------------------------------------------------- unit
def test_redaction_removes_jwts_bearer_values_and_known_secrets() -> None:
    jwt_like = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTYifQ.c2lnbmF0dXJl"
    line = f"token {jwt_like} header Authorization: Bearer abcdefghijkl secret=hunter2hunter2"
    out = redact(line, ["hunter2hunter2"])
    assert jwt_like not in out and "abcdefghijkl" not in out and "hunter2hunter2" not in out
    assert out.count("[redacted]") == 3


@pytest.mark.parametrize(("expression", "now", "expected"), [
    ("*/10 * * * *", "2026-12-02T10:03:00", "2026-12-02T10:10:00"),
    ("0 7-19 * * 1-5", "2026-12-04T19:30:00", "2026-12-07T07:00:00"),   # Friday evening → Monday 07:00
    ("30 2 1 * *", "2026-12-02T00:00:00", "2027-01-01T02:30:00"),
    ("0 0 1 * 0", "2026-12-02T00:00:00", "2026-12-06T00:00:00"),       # either day field matches (Sunday)
    ("15 12 * * 7", "2026-12-02T00:00:00", "2026-12-06T12:15:00"),      # 7 is Sunday too
])
def test_cron_next_run(expression: str, now: str, expected: str) -> None:
    import datetime as dt

    start = dt.datetime.fromisoformat(now).replace(tzinfo=dt.UTC)
    assert CronExpression.parse(expression).next_after(start) == dt.datetime.fromisoformat(expected).replace(
        tzinfo=dt.UTC)


@pytest.mark.parametrize("expression", ["* * * *", "61 * * * *", "*/0 * * * *", "0 0 31 2 *", "a * * * *"])
def test_cron_errors_name_the_setting(expression: str) -> None:
    import datetime as dt

    from bot.errors import UserError

    with pytest.raises(UserError, match="CARTIF_SCHEDULE__CRON"):
        CronExpression.parse(expression).next_after(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


def _forged_token() -> str:
    """A well-formed RS256 token for the right audience, signed by a key the tenant never published."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    return jwt.encode({"aud": "api://x", "iss": "https://sts.windows.net/x/", "exp": now + 600, "iat": now,
                       "roles": ["Sync.Trigger"]}, key, algorithm="RS256", headers={"kid": "forged"})


def test_change_and_permission_notifications_trigger_cycles_that_sync_and_correct(
        local_tenant: LocalTenantProcess, tmp_path: Path, tokens: sdk.Tokens, tenant_info: dict[str, Any],
        unique: str) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = ServiceProcess(local_tenant.connection_file, tmp_path, env=service_env(
        tmp_path, CARTIF_SERVICE__PORT=str(port), CARTIF_NOTIFICATIONS__URL=f"http://127.0.0.1:{port}/notifications",
        CARTIF_NOTIFICATIONS__CLIENT_STATE="client-state-" + unique)).start()
    try:
        first = proc.wait_for(lambda: proc.status()["last_cycles"], what="the start-up cycle")[-1]
        assert first["steps"]["subscription"] == "succeeded", proc.logs_text()[-2000:]
        path = f"Service tests/{unique}.txt"
        # Uploaded by another app (the tenant admin's): the bot ignores its own writes.
        uploader = tokens.graph("admin")
        with httpx.Client(verify=tenant_info["ca_path"], trust_env=False, timeout=30) as graph:
            graph.put(f"{tenant_info['graph_url']}/drives/{tenant_info['drive_id']}/root:/{path}:/content",
                      content=b"notified", headers={"authorization": f"Bearer {uploader}",
                                                    "content-type": "text/plain"}).raise_for_status()

        def synced() -> dict[str, Any] | None:
            # The permission step's own writes notify too; look for the cycle that found OUR file.
            with proc.client() as c:
                for summary in proc.status()["last_cycles"]:
                    run: dict[str, Any] = c.get(f"/api/runs/{summary['id']}").json()
                    sync_step = next(s for s in run["steps"] if s["name"] == "sync")
                    if any(ch["path"].endswith(f"{unique}.txt") for ch in sync_step["detail"].get("changes", [])):
                        return run
            return None

        run = proc.wait_for(synced, what="a cycle that synced the uploaded file")
        assert run["reason"] == "notification", "no poll could have found it: the interval is an hour"

        # A governed folder shared by hand is a permission change only: the subscription asked for
        # those too (Prefer: includesecuritywebhooks), so a cycle puts it right within seconds.
        with httpx.Client(base_url=tenant_info["admin_url"], verify=tenant_info["ca_path"], trust_env=False) as admin:
            [sub] = [s for s in admin.get("/subscriptions").json()["value"]
                     if s["notificationUrl"] == f"http://127.0.0.1:{port}/notifications"]
        assert sub["includeSecurityWebhooks"] and sub["lifecycleNotificationUrl"] == sub["notificationUrl"]
        with httpx.Client(base_url=f"{tenant_info['graph_url']}/drives/{tenant_info['drive_id']}",
                          verify=tenant_info["ca_path"], trust_env=False, timeout=30,
                          headers={"authorization": f"Bearer {uploader}"}) as graph:
            graph.post("/root:/Service tests/KAZ:/createLink",
                       json={"type": "edit", "scope": "organization"}).raise_for_status()
            shared_at = time.monotonic()

            def links() -> list[dict[str, Any]]:
                granted: list[dict[str, Any]] = graph.get("/root:/Service tests/KAZ:/permissions").json()["value"]
                return [p for p in granted if "link" in p]
            assert links()
            proc.wait_for(lambda: not links(), what="the hand-made sharing link removed", timeout=30)
            removed_in = time.monotonic() - shared_at

        def fixing() -> list[dict[str, Any]]:  # the cycle that removed it, once it has finished
            with proc.client() as c:
                runs = [c.get(f"/api/runs/{r['id']}").json() for r in proc.status()["last_cycles"]]
            return [r for r in runs if r["reason"] == "notification" and any(
                st["name"] == "permissions" and st["counts"].get("applied") for st in r["steps"])]
        proc.wait_for(fixing, what="a notification-driven cycle that applied the correction", timeout=30)
        assert removed_in < 30, "no schedule could have done it: the interval is an hour"
        print(f"hand-made sharing link removed {removed_in:.2f} s after it was made")
        assert "client-state-" + unique not in proc.logs_text()
    finally:
        proc.stop()


def test_the_demo_service_act_shows_triggers_status_and_metrics(local_tenant: LocalTenantProcess,
                                                                tmp_path: Path) -> None:
    from bot.service.showing import show_service

    said: list[str] = []
    summary = show_service(local_tenant.connection_file, tmp_path, said.append,
                           extra_env=service_env(tmp_path))
    text = "\n".join(said)
    assert summary["exit"] == 0
    assert summary["manual"]["status"] == "succeeded" and summary["manual"]["reason"] == "manual"
    assert "without a token → 401" in text and "(Sync.Trigger) → 202" in text
    assert "cartif_cycles_total{" in text
