"""The local tenant's Teams webhooks, admin API, throttling model, fault injection and generator.

We test these aspects:
- ``Throttle`` on a fake clock: budget, whole-second Retry-After that lets the same request
  through, throttled calls counting, RateLimit-* headers from 80 % and on the 429, runtime budget;
- ``Faults``: validation naming the field, count limits, route/method/path matching;
- ``Tenant.dispatch`` counts requests an app sends inside a Retry-After window, from injected
  faults and from real throttling, and renders injected faults in the surface's envelope;
- the Workflows webhook answers 202 to everything and records the flow run's outcome
  (oversize, wrong envelope, too-new card, valid card), readable as JSON and HTML;
- the admin API: faults (429 with Retry-After "1.5" served, count-limited), stats, throttle
  budget, generation (10k items in-process, a small tree over HTTPS).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator.app import Tenant, TenantConfig
from emulator.generate import generate_items
from emulator.http import Caller, Ctx, Headers, Req, Resp, json_resp
from emulator.limits import Faults, FaultSpecError, Stats, Throttle, client_hint
from emulator.state import App
from emulator.teams import MAX_BYTES, evaluate


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _card(text: str, version: str = "1.4", **extra: Any) -> dict[str, Any]:
    return {"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
        "content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                    "version": version, "body": [{"type": "TextBlock", "text": text, "wrap": True}],
                    **extra}}]}


# ---------------------------------------------------------------------------- Throttle


def test_throttle_admits_up_to_the_budget_then_429_with_whole_seconds_that_suffice() -> None:
    clock = FakeClock()
    throttle = Throttle(10, clock=clock)
    for _ in range(5):
        assert throttle.charge("app", 2) is None
        clock.now += 1
    denied = throttle.charge("app", 2)
    assert denied is not None
    assert denied.status == 429
    retry_after = denied.header("retry-after")
    assert retry_after is not None
    assert retry_after.isdigit()
    # The throttled call counted: 10 spent + 2 = 12; the oldest charges (t=1000, 1001) must leave.
    assert throttle.used("app") == 12
    assert int(retry_after) == 56  # t=1001 charge leaves at 1061; now is 1005
    clock.now += int(retry_after) - 1
    assert throttle.charge("app", 2) is not None, "a retry before Retry-After is throttled again"
    clock.now += 60  # everything has left the window
    assert throttle.charge("app", 2) is None


def test_throttle_retry_after_lets_the_same_request_through_when_honoured() -> None:
    clock = FakeClock()
    throttle = Throttle(6, clock=clock)
    for _ in range(3):
        assert throttle.charge("app", 2) is None
        clock.now += 10
    denied = throttle.charge("app", 2)
    assert denied is not None
    clock.now += int(denied.header("retry-after") or "0")
    assert throttle.charge("app", 2) is None


def test_throttle_rate_limit_headers_from_80_percent_and_on_the_429() -> None:
    clock = FakeClock()
    throttle = Throttle(100, clock=clock)
    throttle.charge("app", 79)
    assert throttle.rate_limit_headers("app") == []
    throttle.charge("app", 1)
    clock.now += 5
    headers = dict(throttle.rate_limit_headers("app"))
    assert headers == {"ratelimit-limit": "100", "ratelimit-remaining": "20", "ratelimit-reset": "55"}
    throttle.charge("app", 20)
    denied = throttle.charge("app", 5)
    assert denied is not None
    got = dict(denied.headers)
    # As SharePoint's published 429: Retry-After 31, RateLimit-Remaining 0, RateLimit-Reset 31.
    assert got["ratelimit-remaining"] == "0"
    assert got["ratelimit-reset"] == got["retry-after"]
    assert throttle.rate_limit_headers("other") == []


def test_throttle_budget_changes_at_run_time_and_apps_are_separate() -> None:
    clock = FakeClock()
    throttle = Throttle(4, clock=clock)
    assert throttle.charge("a", 4) is None
    assert throttle.charge("a", 1) is not None
    assert throttle.charge("b", 4) is None
    throttle.set_budget(100)
    assert throttle.charge("a", 1) is None
    with pytest.raises(ValueError, match="positive"):
        throttle.set_budget(0)
    assert throttle.snapshot()["ru_per_minute"] == 100


def test_arrivals_inside_a_fractional_retry_after_window_are_counted() -> None:
    clock, stats = FakeClock(), Stats()
    throttle = Throttle(100, stats, clock=clock)
    throttle.note_retry_after("app", Resp(429, b"", [("Retry-After", "1.5")]))
    clock.now += 1.0
    assert throttle.note_arrival("app") is True
    assert throttle.note_arrival("other") is False
    clock.now += 0.6
    assert throttle.note_arrival("app") is False
    assert stats.snapshot()["requests_inside_retry_after"] == {"app": 1}


def test_client_hint_reads_the_app_from_an_unverified_bearer_token() -> None:
    payload = base64.urlsafe_b64encode(json.dumps({"appid": "abc-123"}).encode()).decode().rstrip("=")
    req = Req("GET", "/v1.0/sites", {}, Headers({"Authorization": f"Bearer x.{payload}.y"}), b"", "https://h")
    assert client_hint(req) == "abc-123"
    assert client_hint(Req("GET", "/", {}, Headers({"Authorization": "Bearer junk"}), b"", "https://h")) == ""
    assert client_hint(Req("GET", "/", {}, Headers(), b"", "https://h")) == ""


# ---------------------------------------------------------------------------- Faults


@pytest.mark.parametrize(("spec", "field"), [
    ({"kind": "418"}, "kind"),
    ({"kind": "429", "probability": 2}, "probability"),
    ({"kind": "429", "retry_after": "soon"}, "retry_after"),
    ({"kind": "429", "retry_after": -1}, "retry_after"),
    ({"kind": "503", "count": 0}, "count"),
    ({"kind": "503", "count": 1.5}, "count"),
    ({"kind": "latency"}, "latency_ms"),
    ({"kind": "429", "method": "FETCH"}, "method"),
    ({"kind": "429", "route": "graph.(unclosed"}, "route"),
    ({"kind": "429", "path": "["}, "path"),
    ({"kind": "429", "colour": "red"}, "colour"),
])
def test_fault_validation_names_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(FaultSpecError) as info:
        Faults().add(spec)
    assert info.value.field == field
    assert str(info.value).startswith(field)


def test_faults_are_added_all_or_nothing_and_fire_count_times() -> None:
    faults = Faults(seed=1)
    with pytest.raises(FaultSpecError, match=r"rules\[1\]\.kind"):
        faults.add_many([{"kind": "429"}, {"kind": "nope"}])
    assert faults.rules == []
    rule = faults.add({"kind": "429", "route": "graph\\.drive\\..*", "method": "get", "retry_after": 2.128,
                       "count": 2})
    assert rule.retry_after == "2.128"
    assert rule.method == "GET"
    assert faults.pick("graph.drive.children", "/v1.0/x", "POST") is None
    assert faults.pick("graph.site.get", "/v1.0/x", "GET") is None
    hits = [faults.pick("graph.drive.children", "/v1.0/x", "GET") for _ in range(4)]
    assert [h is not None for h in hits] == [True, True, False, False]
    assert rule.fired == 2
    assert rule.to_dict()["exhausted"] is True


def test_fault_probability_is_a_fraction_of_requests() -> None:
    faults = Faults(seed=7)
    faults.add({"kind": "503", "path": "^/v1\\.0/", "probability": 0.25})
    fired = sum(faults.pick("r", "/v1.0/drives", "GET") is not None for _ in range(2000))
    assert 400 < fired < 600
    assert faults.pick("r", "/sites/CARTIF/_api/web", "GET") is None


# ---------------------------------------------------------------------------- dispatch wiring


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tenant = Tenant(TenantConfig(data_dir=tmp_path_factory.mktemp("teams-admin")))

    async def probe(ctx: Ctx) -> Resp:
        return json_resp({"ok": True})

    tenant.router.add("GET", r"/v1\.0/probe", probe, name="test.probe", surface="graph", cost=2)
    yield tenant
    tenant.state.close()


def _caller(client_id: str) -> Caller:
    return Caller(App(client_id, "probe app", None, None, ("Sites.Read.All",)), "graph",
                  frozenset({"Sites.Read.All"}), {})


def _probe() -> Req:
    return Req("GET", "/v1.0/probe", {}, Headers(), b"", "https://localhost")


async def test_dispatch_counts_requests_inside_an_injected_retry_after(local: Tenant) -> None:
    client = str(uuid.uuid4())
    local.faults.add({"kind": "429", "route": "test.probe", "retry_after": "1.5", "count": 1})
    try:
        first = await local.dispatch(_probe(), caller=_caller(client))
        assert first is not None
        assert first.status == 429
        assert first.header("retry-after") == "1.5"
        assert json.loads(first.body)["error"]["code"] == "activityLimitReached"
        again = await local.dispatch(_probe(), caller=_caller(client))  # at once: ignores Retry-After
        assert again is not None
        assert again.status == 200, "the count-limited fault fired only once"
    finally:
        local.faults.clear()
    assert local.stats.snapshot()["requests_inside_retry_after"].get(client) == 1
    assert local.stats.requests[("GET", "test.probe", 429)] >= 1


async def test_dispatch_counts_requests_inside_a_real_throttling_window(local: Tenant) -> None:
    client = str(uuid.uuid4())
    budget = local.throttle.budget
    local.throttle.set_budget(4)
    try:
        statuses = [(await local.dispatch(_probe(), caller=_caller(client))) for _ in range(4)]
    finally:
        local.throttle.set_budget(budget)
    assert [r.status if r else 0 for r in statuses] == [200, 200, 429, 429]
    throttled = statuses[2]
    assert throttled is not None
    assert throttled.header("retry-after") == "60"
    assert throttled.header("ratelimit-remaining") == "0"
    assert local.stats.snapshot()["requests_inside_retry_after"].get(client) == 1
    assert local.stats.ru_by_app[client] == 8


# ---------------------------------------------------------------------------- the flow run


def test_flow_run_outcomes() -> None:
    ok = evaluate(json.dumps(_card("hello")).encode())
    assert [(o.status, o.reason) for o in ok] == [("posted", None)]
    too_big = evaluate(json.dumps(_card("x" * MAX_BYTES)).encode())
    assert too_big[0].status == "failed"
    assert "Request Entity too large" in (too_big[0].reason or "")
    missing = evaluate(b'{"type":"message","text":"hi"}')[0]
    assert missing.status == "failed"
    assert ("the result of the evaluation of 'foreach' expression "
            "'@triggerOutputs()?['body']?['attachments']' "
            "is of type 'Null'. The result must be a valid array.") in (missing.reason or "")
    assert "'Object'" in (evaluate(b'{"type":"message","attachments":{}}')[0].reason or "")
    assert "'Null'" in (evaluate(b"<html>not json</html>")[0].reason or "")
    newer = evaluate(json.dumps(_card("hi", version="1.5")).encode())[0]
    assert newer.status == "failed"
    assert "couldn't be displayed" in (newer.reason or "")
    no_version = _card("hi")
    del no_version["attachments"][0]["content"]["version"]
    assert evaluate(json.dumps(no_version).encode())[0].status == "failed"
    wrong_type = _card("hi")
    wrong_type["attachments"][0]["content"]["type"] = "Adaptivecard"
    wrong_reason = evaluate(json.dumps(wrong_type).encode())[0].reason or ""
    assert "Property 'type' must be 'AdaptiveCard'" in wrong_reason
    body_not_list = _card("hi")
    body_not_list["attachments"][0]["content"]["body"] = {"type": "TextBlock"}
    assert evaluate(json.dumps(body_not_list).encode())[0].status == "failed"
    two = _card("one")
    two["attachments"].append(_card("two", version="1.2")["attachments"][0])
    outcomes = evaluate(json.dumps(two).encode())
    assert [o.status for o in outcomes] == ["posted", "posted"]
    assert "two" in outcomes[1].body
    assert "one" not in outcomes[1].body


# ---------------------------------------------------------------------------- generation


def test_generate_10k_items_in_one_go(tmp_path: Path) -> None:
    from emulator.state import State

    state = State(tmp_path / "g.sqlite3")
    site = state.create_site("localhost", "/sites/G", "G")
    lib = state.create_list(site, "Documents", base_template=101, url_name="Shared Documents")
    assert lib.drive_id is not None

    class Holder:
        pass

    holder: Any = Holder()
    holder.state = state
    before = state.current_seq()
    summary = generate_items(holder, lib.drive_id, 9000, 1000, depth=5, seed=3, under="/bench/one")
    assert summary["items"] == 10_000
    assert summary["depth"] == 5
    counts = state.q1("SELECT SUM(is_folder) AS folders, SUM(1-is_folder) AS files, "
                      "COUNT(DISTINCT seq) AS seqs, COUNT(DISTINCT list_item_id) AS ids, "
                      "MAX(length(path)-length(replace(path,'/',''))) AS d "
                      "FROM items WHERE drive_id=? AND path LIKE '/bench/one/%'", (lib.drive_id,))
    assert counts is not None
    assert (counts["folders"], counts["files"], counts["seqs"], counts["ids"]) == (1000, 9000, 10_000, 10_000)
    assert counts["d"] == 2 + 5 + 1  # /bench/one, five folder levels, then a file
    assert state.current_seq() == before + 2 + 10_000  # two folders for ``under``, then one per item
    versions = state.q1("SELECT COUNT(*) AS n FROM versions v JOIN items i ON i.id=v.item_id "
                        "WHERE i.drive_id=?",
                        (lib.drive_id,))
    assert versions is not None
    assert versions["n"] == 9000
    top = state.item_by_path(lib.drive_id, "/bench/one")
    assert top is not None
    assert state.child_count(top) == summary["top_level"]
    some_file = state.q1("SELECT id FROM items WHERE drive_id=? AND is_folder=0 LIMIT 1", (lib.drive_id,))
    assert some_file is not None
    item = state.item(lib.drive_id, some_file["id"])
    assert item is not None
    assert state.content(item).startswith(item.name.encode())
    again = generate_items(holder, lib.drive_id, 10, 3, depth=2, seed=3, under="/bench/one")
    assert again["items"] == 13  # same seed, same folder: taken top-level names get a suffix
    state.close()


# ---------------------------------------------------------------------------- over HTTPS


def _teams(info: dict[str, Any]) -> httpx.Client:
    return httpx.Client(verify=info["ca_path"], trust_env=False, timeout=30)


def _wait_for(admin: httpx.Client, channel: str, marker: str, n: int = 1) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = admin.get(f"/teams/{channel}")
        assert r.status_code == 200
        found = [m for m in r.json()["messages"] if marker in json.dumps(m)]
        if len(found) >= n:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no message with {marker!r} in {channel}")


def test_webhook_answers_202_then_records_the_run(tenant_info: dict[str, Any], admin: httpx.Client,
                                                   unique: str) -> None:
    channel, url = next(iter(tenant_info["teams_webhooks"].items()))
    with _teams(tenant_info) as http:
        posted = http.post(url, json=_card(f"{unique} valid"))
        assert posted.status_code == 202
        assert posted.content == b""
        assert posted.headers["x-ms-workflow-run-id"]
        for payload in ({"type": "message", "text": f"{unique} no attachments"},
                        _card(f"{unique} too new", version="1.5"),
                        _card(f"{unique} oversize " + "x" * MAX_BYTES)):
            assert http.post(url, json=payload).status_code == 202
        assert http.post(url.rsplit("/", 1)[0] + "/" + uuid.uuid4().hex).status_code == 404
        assert http.get(url).status_code == 405
    messages = _wait_for(admin, channel, unique, 4)
    assert sorted(m["status"] for m in messages) == ["failed", "failed", "failed", "posted"]
    reasons = " | ".join(m["reason"] or "" for m in messages)
    assert "Request Entity too large" in reasons
    assert "ExpressionEvaluationFailed" in reasons
    assert "couldn't be displayed" in reasons
    valid = next(m for m in messages if m["status"] == "posted")
    assert valid["card"]["body"][0]["text"] == f"{unique} valid"
    api = httpx.get(f"{tenant_info['teams_url']}/api/{channel}/messages", verify=tenant_info["ca_path"],
                    trust_env=False)
    assert api.status_code == 200
    assert any(m["id"] == valid["id"] for m in api.json())


def test_teams_pages_list_channels_and_render_cards(tenant_info: dict[str, Any], admin: httpx.Client,
                                                     unique: str) -> None:
    channel, url = list(tenant_info["teams_webhooks"].items())[-1]
    with _teams(tenant_info) as http:
        assert http.post(url, json=_card(f"{unique} <b>escaped</b>")).status_code == 202
        _wait_for(admin, channel, unique)
        index = http.get(tenant_info["teams_url"])
        assert index.status_code == 200
        assert index.headers["content-type"].startswith("text/html")
        assert all(name in index.text for name in tenant_info["teams_webhooks"])
        page = http.get(f"{tenant_info['teams_url']}/{channel}")
        assert page.status_code == 200
        assert f"{unique} &lt;b&gt;escaped&lt;/b&gt;" in page.text
        assert "<b>escaped" not in page.text
        assert http.get(f"{tenant_info['teams_url']}/no-such-channel").status_code == 404


def test_admin_fault_429_with_fractional_retry_after_is_served_count_times(
        tenant_info: dict[str, Any], admin: httpx.Client) -> None:
    hook_id = next(iter(tenant_info["teams_webhooks"].values())).rsplit("/", 1)[1]
    created = admin.post("/faults", json={"rules": [{"kind": "429", "route": "teams.webhook", "path": hook_id,
                                                     "retry_after": "1.5", "count": 2}]})
    assert created.status_code == 201
    rule = created.json()["rules"][0]
    assert rule["id"] >= 1
    assert rule["retry_after"] == "1.5"
    assert rule["fired"] == 0
    try:
        url = next(iter(tenant_info["teams_webhooks"].values()))
        with _teams(tenant_info) as http:
            statuses = [http.post(url, content=b"{}") for _ in range(3)]
        assert [r.status_code for r in statuses] == [429, 429, 202]
        assert statuses[0].headers["retry-after"] == "1.5"
        listed = admin.get("/faults").json()["rules"]
        assert [r["fired"] for r in listed if r["id"] == rule["id"]] == [2]
    finally:
        assert admin.delete("/faults").status_code == 204
    assert admin.get("/faults").json() == {"rules": []}


@pytest.mark.parametrize(("body", "field"), [
    ({"kind": "429", "retry_after": "later"}, "retry_after"),
    ({"rules": [{"kind": "503"}, {"kind": "latency"}]}, "rules[1].latency_ms"),
    ({"kind": "sometimes"}, "kind"),
])
def test_admin_fault_validation_is_400_naming_the_field(admin: httpx.Client, body: dict[str, Any],
                                                         field: str) -> None:
    r = admin.post("/faults", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith(field)
    assert admin.get("/faults").json() == {"rules": []}


async def test_admin_fault_on_graph_counts_requests_inside_retry_after(
        tenant_info: dict[str, Any], admin: httpx.Client, graph_http: httpx.AsyncClient) -> None:
    site = f"/sites/{tenant_info['site_id']}"
    assert (await graph_http.get(site)).status_code == 200
    client = tenant_info["client_id"]
    before = admin.get("/stats").json()["requests_inside_retry_after"].get(client, 0)
    admin.post("/faults", json={"kind": "503", "path": "^/v1\\.0/sites/[^/]+$", "retry_after": "5",
                                "count": 1})
    try:
        first = await graph_http.get(site)
        assert first.status_code == 503
        assert first.headers["retry-after"] == "5"
        assert first.json()["error"]["code"] == "serviceNotAvailable"
        assert (await graph_http.get(site)).status_code == 200  # too early, but served
    finally:
        admin.delete("/faults")
        # The app is still inside the 5 s window it ignored on purpose: close it, or the next
        # test's well-behaved requests from the same app would be counted as early.
        admin.post("/throttle", json={"reset": True})
    after = admin.get("/stats").json()["requests_inside_retry_after"].get(client, 0)
    assert after == before + 1


def test_admin_stats_count_by_method_route_status_and_reset(tenant_info: dict[str, Any],
                                                             admin: httpx.Client) -> None:
    assert admin.post("/stats/reset").status_code == 204
    url = next(iter(tenant_info["teams_webhooks"].values()))
    with _teams(tenant_info) as http:
        for _ in range(3):
            http.post(url, json=_card("stats"))
    stats = admin.get("/stats").json()
    rows = [r for r in stats["requests"] if r["route"] == "teams.webhook"]
    assert rows == [{"method": "POST", "route": "teams.webhook", "status": 202, "count": 3}]
    assert stats["by_route"]["teams.webhook"] == 3
    assert stats["by_status"]["202"] >= 3
    assert "resource_units_by_app" in stats
    assert "throttle" in stats


def test_admin_throttle_budget_changes_at_run_time(admin: httpx.Client) -> None:
    original = admin.get("/throttle").json()["ru_per_minute"]
    try:
        assert admin.get("/throttle", params={"budget": 50}).json()["ru_per_minute"] == 50
        assert admin.post("/throttle", json={"ru_per_minute": 7000}).json()["ru_per_minute"] == 7000
        bad = admin.post("/throttle", json={"ru_per_minute": 0})
        assert bad.status_code == 400
        assert bad.json()["error"]["message"].startswith("ru_per_minute")
    finally:
        admin.post("/throttle", json={"ru_per_minute": original})
    assert admin.get("/health").json()["status"] == "ok"


def test_admin_seed_generates_items_below_a_folder(tenant_info: dict[str, Any], admin: httpx.Client,
                                                   unique: str) -> None:
    # Small on purpose: the tenant is shared and other tests crawl its drive (10k: the test above).
    r = admin.post("/seed", json={"generate": {"files": 180, "folders": 20, "depth": 4, "seed": 11,
                                               "under": f"/{unique}"}})
    assert r.status_code == 201, r.text
    summary = r.json()["generate"]
    counts = (summary["items"], summary["folders"], summary["files"], summary["depth"])
    assert counts == (200, 20, 180, 4)
    assert summary["drive_id"] == tenant_info["drive_id"]
    assert summary["under"] == f"/{unique}"
    assert summary["last_seq"] - summary["first_seq"] == 200 - 1  # one change per item
    bad = admin.post("/seed", json={"generate": {"files": -1}})
    assert bad.status_code == 400
    assert bad.json()["error"]["message"].startswith("generate.files")
    assert admin.post("/seed", json={"scenario": "summary"}).status_code == 400
    again = admin.post("/seed", json={"scenario": "cartif"})
    assert again.status_code == 201
    assert again.json()["summary"]["scenario"] == "cartif"
