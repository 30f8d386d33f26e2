"""Change notifications: the pure parts, the receiver, and the watch loop against the local tenant.

We test these aspects:

* pure: bodies are parsed or refused with a clear message; clientState matches only our secret;
  many requests coalesce into one pending cycle, and requests during a cycle make exactly one more;
  lifecycle notifications (Microsoft's example body) are parsed, kept per subscription, and put
  back when answering them failed;
* receiver (ASGI, in process): the validationToken handshake echoes the decoded token as
  text/plain; good notifications get 202 and signal; a wrong clientState gets the same 202 but
  signals nothing; malformed JSON gets 400 naming the problem; a lifecycle notification gets 202
  and is handed over for its subscription;
* local tenant: the receiver on a free port, the subscription created through our connector,
  5 quick changes by another app → at most two notification-driven cycles report exactly those 5
  changes within seconds; renewal extends the expiry; a subscription deleted on the tenant is
  re-created on renewal; a reauthorizationRequired renews at once, subscriptionRemoved re-creates,
  and a subscription stored without a lifecycle URL is replaced; the tenant pausing the watch
  loop's subscription (reauthorizationRequired) is answered by the loop, which then reads the
  change made while paused and gets notifications again; poll-only mode finds changes without
  any notification;
* CLI: ``cartif-bot watch`` (a subprocess) runs the receiver and reports a change from a notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.notifications import (
    NotificationError,
    SyncRequests,
    client_state_hash,
    client_state_matches,
    parse_notifications,
    split_by_client_state,
)
from bot.receiver import Receiver, serve_receiver
from bot.store import Store
from bot.watching import Cycle, watch
from connectors.auth import Authenticator
from connectors.graph import build_graph_client
from connectors.graph_subscriptions import SubscriptionManager, needs_renewal
from tests import sdk
from tests.notified import notified_store
from tests.test_syncing import mine, settings_for

SECRET = "s3cret-client-state-for-tests"


def body(*states: str | None, sub: str = "sub-1") -> bytes:
    import json
    return json.dumps({"value": [{"subscriptionId": sub, "clientState": s, "changeType": "updated",
                                  "resource": "/drives/d/root", "tenantId": "t",
                                  "subscriptionExpirationDateTime": "2026-12-01T00:00:00Z"} for s in states]}
                      ).encode()


# ---------------------------------------------------------------------------------------------- pure
def test_parse_notifications_accepts_graph_bodies_and_names_problems() -> None:
    parsed = parse_notifications(body(SECRET, None))
    assert [(n.subscription_id, n.client_state, n.change_type) for n in parsed] == [
        ("sub-1", SECRET, "updated"), ("sub-1", None, "updated")]
    for bad, words in [(b"{nope", "not JSON"), (b"[]", '{"value"'), (b'{"value": [1]}', "value[0] is not"),
                       (b'{"value": [{"changeType": "updated", "resource": "r"}]}', "subscriptionId"),
                       (b"\xff\xfe", "not JSON")]:
        with pytest.raises(NotificationError, match=words.replace("[", r"\[").replace("{", r"\{")):
            parse_notifications(bad)


LIFECYCLE = {"subscriptionId": "sub-1", "subscriptionExpirationDateTime": "2019-03-20T11:00:00.0000000Z",
             "tenantId": "t", "clientState": SECRET, "lifecycleEvent": "reauthorizationRequired"}


def test_lifecycle_notifications_are_parsed_and_kept_per_subscription() -> None:
    import json

    # Microsoft's lifecycle body has no changeType and no resource.
    [parsed] = parse_notifications(json.dumps({"value": [LIFECYCLE]}).encode())
    assert (parsed.subscription_id, parsed.lifecycle_event, parsed.change_type) == (
        "sub-1", "reauthorizationRequired", "")
    with pytest.raises(NotificationError, match="lifecycleEvent is not one of"):
        parse_notifications(json.dumps({"value": [LIFECYCLE | {"lifecycleEvent": "whatever"}]}).encode())
    with pytest.raises(NotificationError, match="subscriptionId"):
        parse_notifications(json.dumps({"value": [LIFECYCLE | {"subscriptionId": None}]}).encode())

    requests = SyncRequests()
    requests.note_lifecycle("sub-1", "reauthorizationRequired")
    assert requests.pending == 1 and requests.is_set  # the paused flow hid changes: sync too
    taken = requests.take_lifecycle()
    assert taken == {"sub-1": "reauthorizationRequired"} and requests.take_lifecycle() == {}
    requests.note_lifecycle("sub-2", "missed")  # arrives while answering sub-1 failed
    requests.restore_lifecycle(taken)
    assert requests.take_lifecycle() == {"sub-1": "reauthorizationRequired", "sub-2": "missed"}


def test_client_state_matches_only_our_secret() -> None:
    assert client_state_matches(SECRET, SECRET)
    assert not client_state_matches(SECRET + "x", SECRET)
    assert not client_state_matches(SECRET[:-1], SECRET)
    assert not client_state_matches(None, SECRET)
    assert not client_state_matches("", "")
    accepted, rejected = split_by_client_state(parse_notifications(body(SECRET, "forged", None)), SECRET)
    assert len(accepted) == 1 and len(rejected) == 2
    assert client_state_hash(SECRET) != SECRET and len(client_state_hash(SECRET)) == 64


async def test_many_requests_coalesce_into_one_cycle() -> None:
    requests = SyncRequests()
    assert await requests.wait(0.01) is False
    for _ in range(10):
        requests.request()
    assert await requests.wait(0.01) is True
    assert requests.take() == 10
    assert await requests.wait(0.01) is False  # taken: nothing left
    requests.request(2)  # arrives "during the cycle" → exactly one more
    assert requests.take() == 2 and requests.take() == 0
    assert requests.taken == 2 and requests.requested == 12


def test_renewal_is_due_when_a_third_of_the_lifetime_is_left() -> None:
    now = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
    lifetime = dt.timedelta(minutes=300)
    assert not needs_renewal("2026-11-28T01:41:00Z", now, lifetime)
    assert needs_renewal("2026-11-28T01:39:00.000Z", now, lifetime)


# ---------------------------------------------------------------------------------------------- receiver
@pytest.fixture
async def receiver_client() -> AsyncIterator[tuple[httpx.AsyncClient, Receiver]]:
    app = Receiver(SyncRequests(), SECRET, path="/hooks/graph")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://receiver") as client:
        yield client, app


async def test_receiver_handshake_notifications_and_errors(
        receiver_client: tuple[httpx.AsyncClient, Receiver], caplog: pytest.LogCaptureFixture) -> None:
    client, app = receiver_client
    token = "Validation: Testing client application reachability for subscription Request-Id: 1 & 2=3"
    resp = await client.post("/hooks/graph", params={"validationToken": token})
    assert resp.status_code == 200 and resp.text == token
    assert resp.headers["content-type"].startswith("text/plain")

    resp = await client.post("/hooks/graph", content=body(SECRET, SECRET))
    assert resp.status_code == 202 and resp.content == b""
    assert app.requests.pending == 2

    forged = await client.post("/hooks/graph", content=body("guess-1"))
    assert forged.status_code == 202 and forged.content == b""  # the same answer: nothing leaks
    assert app.requests.pending == 2 and app.rejected == 1
    assert "wrong clientState" in caplog.text and "guess-1" not in caplog.text

    import json
    lifecycle = await client.post("/hooks/graph", content=json.dumps({"value": [LIFECYCLE]}).encode())
    assert lifecycle.status_code == 202 and app.requests.lifecycle == {"sub-1": "reauthorizationRequired"}
    forged_lifecycle = json.dumps({"value": [LIFECYCLE | {"subscriptionId": "sub-9", "clientState": "guess"}]})
    assert (await client.post("/hooks/graph", content=forged_lifecycle.encode())).status_code == 202
    assert set(app.requests.lifecycle) == {"sub-1"}
    app.requests.take_lifecycle()
    app.requests.take()

    bad = await client.post("/hooks/graph", content=b"{not json")
    assert bad.status_code == 400 and "not JSON" in bad.json()["error"]
    assert (await client.post("/elsewhere", content=body(SECRET))).status_code == 404
    assert (await client.get("/hooks/graph")).status_code == 405
    assert app.requests.pending == 0


# ---------------------------------------------------------------------------------------------- local tenant
@pytest.fixture
async def editor(tenant_info: dict[str, Any], tokens: sdk.Tokens) -> AsyncIterator[httpx.AsyncClient]:
    """Graph as the tenant-admin app, async so the receiver in this event loop keeps answering."""
    token = tokens.graph("admin")
    async with httpx.AsyncClient(base_url=tenant_info["graph_url"] + f"/drives/{tenant_info['drive_id']}",
                                 verify=tenant_info["ca_path"], trust_env=False, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


async def put(editor: httpx.AsyncClient, path: str, data: bytes) -> str:
    resp = await editor.put(f"/root:{path}:/content", content=data)
    resp.raise_for_status()
    return str(resp.json()["id"])


async def until(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.05)
    return check()


@contextlib.asynccontextmanager
async def running(coro: Awaitable[None]) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.ensure_future(coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_five_quick_changes_arrive_as_one_notification_driven_sync(
        tenant_info: dict[str, Any], editor: httpx.AsyncClient, graph_http: httpx.AsyncClient, unique: str,
        tmp_path: Path) -> None:
    base = f"/{unique}"
    (await editor.post("/root/children", json={"name": unique, "folder": {}})).raise_for_status()
    await put(editor, f"{base}/a.txt", b"a")
    b = await put(editor, f"{base}/b.txt", b"b")
    d = await put(editor, f"{base}/d.txt", b"d")
    async with notified_store(tenant_info, tmp_path, SECRET) as notified:
        app, cycles, store, url = notified.receiver, notified.cycles, notified.store, notified.url
        async with running(watch(notified.settings, store, requests=notified.requests,
                                 on_cycle=cycles.append)) as task:
            assert await until(lambda: bool(cycles) or task.done(), 60), "no start-up cycle"
            assert cycles[0].reason == "start" and cycles[0].error is None
            [sub] = store.subscriptions(tenant_info["drive_id"])
            on_tenant = (await graph_http.get(f"/subscriptions/{sub.id}")).json()
            assert on_tenant["resource"] == f"/drives/{tenant_info['drive_id']}/root"
            assert on_tenant["notificationUrl"] == url and on_tenant["changeType"] == "updated"
            assert sub.client_state_hash == client_state_hash(SECRET)
            # The set-up writes above may still be notified (the tenant batches for ~1 s and the
            # subscription now exists): let that land so it does not count as one of ours.
            await asyncio.sleep(1.5)
            first = len(cycles)

            await put(editor, f"{base}/c.txt", b"c")                                       # created
            await put(editor, f"{base}/a.txt", b"a, edited")                               # modified
            (await editor.patch(f"/items/{b}", json={"name": "b2.txt"})).raise_for_status()  # renamed
            (await editor.post(f"/root:{base}:/children", json={"name": "sub", "folder": {}})
             ).raise_for_status()                                                          # created
            (await editor.delete(f"/items/{d}")).raise_for_status()                        # deleted
            changed = time.monotonic()

            def seen() -> list[tuple[str, str, str | None]]:
                return sorted(x for c in cycles[first:] if c.result for x in mine(c.result, unique))
            assert await until(lambda: len(seen()) >= 5, 10), f"only {seen()} after 10 s"
            latency = time.monotonic() - changed
            await asyncio.sleep(2.5)  # anything extra would show up now
        ours = [c for c in cycles[first:] if c.result and mine(c.result, unique)]
    assert seen() == sorted([("created", f"{base}/c.txt", None), ("modified", f"{base}/a.txt", None),
                             ("renamed", f"{base}/b2.txt", f"{base}/b.txt"), ("created", f"{base}/sub", None),
                             ("deleted", f"{base}/d.txt", None)])
    assert len(ours) in (1, 2), "a burst of notifications should be coalesced into one or two syncs"
    assert all(c.reason == "notification" and c.notifications >= 1 for c in ours)
    assert len(cycles) - first <= 2, [(c.reason, c.notifications) for c in cycles]
    assert app.accepted >= 1 and app.rejected == 0
    assert latency < 5, latency
    print(f"change-to-event latency {latency:.2f} s, {len(ours)} cycle(s) for the 5 changes, "
          f"{len(cycles) - first} after them, {app.accepted} notification(s) in all")


async def test_renewal_extends_expiry_and_a_vanished_subscription_is_recreated(
        tenant_info: dict[str, Any], graph_http: httpx.AsyncClient, tmp_path: Path) -> None:
    app = Receiver(SyncRequests(), SECRET)
    async with serve_receiver(app) as port:
        url = f"http://127.0.0.1:{port}/notifications"
        settings = settings_for(tenant_info, tmp_path, notifications={"url": url, "client_state": SECRET})
        authenticator = Authenticator(settings)
        try:
            graph = build_graph_client(settings, authenticator)
            with Store.open(settings.store.url) as store:
                lifetime = dt.timedelta(minutes=60)
                manager = SubscriptionManager(graph, store, tenant_info["drive_id"], notification_url=url,
                                              client_state=SECRET, lifetime=lifetime)
                first = await manager.ensure()
                assert await manager.ensure() == first  # fresh: nothing to do
                # 45 minutes later, 15 of 60 minutes are left (< 1/3): ensure renews.
                manager.now = lambda: dt.datetime.now(dt.UTC) + dt.timedelta(minutes=45)
                renewed = await manager.ensure()
                assert renewed.id == first.id and renewed.expiration > first.expiration
                on_tenant = (await graph_http.get(f"/subscriptions/{first.id}")).json()
                assert on_tenant["expirationDateTime"][:19] == renewed.expiration[:19]

                on_tenant = (await graph_http.get(f"/subscriptions/{first.id}")).json()
                assert on_tenant["lifecycleNotificationUrl"] == url and first.lifecycle_notification_url == url

                # reauthorizationRequired: renewed at once (one PATCH), though not due.
                manager.now = lambda: dt.datetime.now(dt.UTC)
                answered = await manager.ensure({renewed.id: "reauthorizationRequired", "not-ours": "missed"})
                assert answered.id == first.id and answered.expiration != renewed.expiration
                expected = dt.datetime.now(dt.UTC) + lifetime
                assert abs((dt.datetime.fromisoformat(answered.expiration.replace("Z", "+00:00"))
                            - expected).total_seconds()) < 60
                # A subscription stored without a lifecycle URL (an older version made it) is replaced.
                store.save_subscription(dataclasses.replace(answered, lifecycle_notification_url=None))
                replaced = await manager.ensure()
                assert replaced.id != first.id and replaced.lifecycle_notification_url == url
                assert (await graph_http.get(f"/subscriptions/{first.id}")).status_code == 404
                # Asked for permission changes now (the service): replaced, made with the header.
                security = SubscriptionManager(graph, store, tenant_info["drive_id"], notification_url=url,
                                               client_state=SECRET, lifetime=lifetime, include_security=True)
                widened = await security.ensure()
                assert widened.id != replaced.id and widened.include_security
                assert await security.ensure() == widened
                replaced, manager = widened, security
                # subscriptionRemoved (Graph sends it for other resources today): a new one.
                removed = await manager.ensure({replaced.id: "subscriptionRemoved"})
                assert removed.id != replaced.id
                (await graph_http.delete(f"/subscriptions/{replaced.id}")).raise_for_status()
                first, renewed = removed, removed

                (await graph_http.delete(f"/subscriptions/{first.id}")).raise_for_status()
                recreated = await manager.renew(renewed)
                assert recreated.id != first.id
                assert store.subscriptions(tenant_info["drive_id"]) == [recreated]
                assert (await graph_http.get(f"/subscriptions/{recreated.id}")).status_code == 200
                assert (await graph_http.get(f"/subscriptions/{first.id}")).status_code == 404
                await manager.delete(recreated)
                assert store.subscriptions() == []
                assert (await graph_http.get(f"/subscriptions/{recreated.id}")).status_code == 404
        finally:
            authenticator.close()


async def test_a_paused_subscription_is_reauthorized_and_what_changed_meanwhile_is_found(
        tenant_info: dict[str, Any], editor: httpx.AsyncClient, unique: str, tmp_path: Path) -> None:
    (await editor.post("/root/children", json={"name": unique, "folder": {}})).raise_for_status()
    tenant = httpx.AsyncClient(base_url=tenant_info["admin_url"], verify=tenant_info["ca_path"],
                               trust_env=False, timeout=30)  # async: the receiver shares this loop
    async with tenant, notified_store(tenant_info, tmp_path, SECRET) as notified:
        cycles, store = notified.cycles, notified.store
        async with running(watch(notified.settings, store, requests=notified.requests, on_cycle=cycles.append,
                                 settle_seconds=0.1)) as task:
            assert await until(lambda: bool(cycles) or task.done(), 60), "no start-up cycle"
            [sub] = store.subscriptions(tenant_info["drive_id"])
            await asyncio.sleep(1.5)  # let set-up notifications land

            async def paused() -> bool:
                listed = (await tenant.get("/subscriptions")).json()["value"]
                return bool(next(s for s in listed if s["id"] == sub.id)["paused"])

            challenged = (await tenant.post(f"/subscriptions/{sub.id}/reauthorize")).json()
            assert challenged["delivered"] and challenged["lifecycleNotificationUrl"] == notified.url
            await put(editor, f"/{unique}/while-paused.txt", b"p")  # may never be notified
            deadline = time.monotonic() + 10
            while await paused() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert not await paused(), "the watch loop did not answer reauthorizationRequired"
            renewed = store.subscriptions(tenant_info["drive_id"])
            assert [s.id for s in renewed] == [sub.id] and renewed[0].expiration >= sub.expiration

            def found(name: str) -> list[Cycle]:
                return [c for c in cycles if c.result and any(x[1].endswith(name) for x in mine(c.result, unique))]
            assert await until(lambda: bool(found("while-paused.txt")), 10)
            # The flow is back: the next change comes by notification, not by a poll.
            await put(editor, f"/{unique}/after.txt", b"a")
            assert await until(lambda: bool(found("after.txt")), 10)
        assert found("after.txt")[0].reason == "notification"
        assert notified.receiver.rejected == 0


async def test_poll_only_mode_finds_changes_without_notifications(
        tenant_info: dict[str, Any], editor: httpx.AsyncClient, unique: str, tmp_path: Path) -> None:
    settings = settings_for(tenant_info, tmp_path)  # no notification URL: poll-only
    (await editor.post("/root/children", json={"name": unique, "folder": {}})).raise_for_status()
    cycles: list[Cycle] = []
    with Store.open(settings.store.url) as store:
        async with running(watch(settings, store, on_cycle=cycles.append, poll_seconds=0.5)):
            assert await until(lambda: bool(cycles), 60)
            await put(editor, f"/{unique}/polled.txt", b"p")
            assert await until(lambda: any(c.result and mine(c.result, unique) for c in cycles), 10)
        assert store.subscriptions() == []
    found = [c for c in cycles if c.result and mine(c.result, unique)]
    assert len(found) == 1 and found[0].reason == "poll" and found[0].notifications == 0
    assert mine(found[0].result, unique) == [("created", f"/{unique}/polled.txt", None)]  # type: ignore[arg-type]


def test_cli_watch_receives_notifications_and_reports_the_change(
        tenant_info: dict[str, Any], tokens: sdk.Tokens, unique: str, tmp_path: Path) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:  # a free port for the receiver
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTIF_")}
    env.update({"CARTIF_TENANT_FILE": str(Path(tenant_info["data_dir"]) / "tenant.json"),
                "CARTIF_STORE__DATA_DIR": str(tmp_path),
                "CARTIF_NOTIFICATIONS__URL": f"http://127.0.0.1:{port}/hooks/graph",
                "CARTIF_NOTIFICATIONS__CLIENT_STATE": SECRET, "PYTHONUNBUFFERED": "1"})
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-m", "bot", "watch"], env=env, cwd=root, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        def read_until(word: str) -> None:
            for line in proc.stdout:  # type: ignore[union-attr]
                lines.append(line)
                if word in line:
                    return
            raise AssertionError(f"watch ended before {word!r}: {lines} {proc.stderr.read()}")  # type: ignore[union-attr]

        read_until("watch (start")
        assert f"receiving notifications on 127.0.0.1:{port}/hooks/graph" in lines[0]
        headers = {"Authorization": f"Bearer {tokens.graph('admin')}"}
        with httpx.Client(base_url=tenant_info["graph_url"] + f"/drives/{tenant_info['drive_id']}",
                          verify=tenant_info["ca_path"], trust_env=False, timeout=30, headers=headers) as client:
            client.post("/root/children", json={"name": unique, "folder": {}}).raise_for_status()
        read_until(f"created  /{unique}")
        assert any(line.startswith("watch (notification, ") for line in lines), lines
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
