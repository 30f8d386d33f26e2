"""The admin API of the local tenant (``/_admin``): what tests and benchmarks use to steer it.

No Microsoft counterpart: this is the emulator's own control surface (surface ``admin``, no
authentication, never throttled or faulted). It exposes

* ``GET /_admin/health``: liveness and a few numbers;
* ``GET /_admin/stats`` / ``POST /_admin/stats/reset``: request counts by method, route and
  status, resource units by app, requests sent inside a ``Retry-After`` window (``limits.Stats``);
* ``POST|GET|DELETE /_admin/faults`` (and ``DELETE /_admin/faults/{id}``): injected faults
  (``limits.Faults``; one rule or ``{"rules": […]}``, 400 naming the bad field);
* ``GET|POST /_admin/throttle``: the per-app resource-unit budget, changeable at run time;
* ``POST /_admin/seed``: a scenario (``{"scenario": "cartif"}``) or generated content
  (``{"generate": {"files", "folders", "depth", "drive_id"?, "seed"?, "under"?}}``);
* ``GET /_admin/teams/{channel}``: what the channel's Workflows webhook recorded (emulator/teams.py);
* ``GET /_admin/subscriptions``: every app's change-notification subscriptions, paused or not;
* ``POST /_admin/subscriptions/{id}/reauthorize``: require a reauthorization, as Graph does when the
  authorization behind a subscription must be checked again: notifications pause and a
  ``reauthorizationRequired`` lifecycle notification is sent (``graph_misc.require_reauthorization``).
"""

from __future__ import annotations

import importlib
import time
from typing import Any

from emulator.generate import generate_items
from emulator.http import Ctx, HttpError, Resp, Router, empty, json_resp
from emulator.limits import FaultSpecError
from emulator.teams import message_view

_JSON = "application/json; charset=utf-8"
_STARTED = time.time()
#: Scenarios of emulator/seed.py (``seed_<name>(tenant)``) that ``POST /_admin/seed`` may run.
SCENARIOS = ("cartif",)


def _ok(data: Any, status: int = 200) -> Resp:
    return json_resp(data, status, content_type=_JSON)


def _body(ctx: Ctx) -> dict[str, Any]:
    data = ctx.req.json()
    if not isinstance(data, dict):
        raise HttpError(400, "invalidRequest", "The request body must be a JSON object.")
    return data


async def health(ctx: Ctx) -> Resp:
    state = ctx.state
    return _ok({"status": "ok", "tenant_id": ctx.tenant.tenant_id, "base_url": ctx.tenant.base_url,
                "uptime_seconds": round(time.time() - _STARTED, 3), "seeded": state.meta("seeded"),
                "change_seq": state.current_seq(), "background_tasks": len(ctx.tenant.background),
                "fault_rules": len(ctx.tenant.faults.rules), "ru_per_minute": ctx.tenant.throttle.budget})


async def stats(ctx: Ctx) -> Resp:
    snapshot = ctx.tenant.stats.snapshot()
    snapshot["throttle"] = ctx.tenant.throttle.snapshot()
    snapshot["faults"] = [f.to_dict() for f in ctx.tenant.faults.rules]
    return _ok(snapshot)


async def stats_reset(ctx: Ctx) -> Resp:
    ctx.tenant.stats.reset()
    return empty(204)


async def faults_add(ctx: Ctx) -> Resp:
    data = _body(ctx)
    if "rules" in data:
        specs = data["rules"]
        if not isinstance(specs, list) or not specs:
            raise HttpError(400, "invalidRequest", "rules: must be a non-empty array of fault rules.")
        if len(data) > 1:
            extra = next(k for k in data if k != "rules")
            raise HttpError(400, "invalidRequest", f"{extra}: give either one rule or {{\"rules\": […]}}.")
    else:
        specs = [data]
    try:
        added = ctx.tenant.faults.add_many(specs)
    except FaultSpecError as exc:
        raise HttpError(400, "invalidRequest", str(exc)) from exc
    return _ok({"rules": [f.to_dict() for f in added]}, 201)


async def faults_list(ctx: Ctx) -> Resp:
    return _ok({"rules": [f.to_dict() for f in ctx.tenant.faults.rules]})


async def faults_clear(ctx: Ctx) -> Resp:
    ctx.tenant.faults.clear()
    return empty(204)


async def fault_delete(ctx: Ctx) -> Resp:
    faults = ctx.tenant.faults
    wanted = int(ctx.params["id"])
    kept = [f for f in faults.rules if f.id != wanted]
    if len(kept) == len(faults.rules):
        raise HttpError(404, "itemNotFound", f"There is no fault rule {wanted}.")
    faults.rules[:] = kept
    return empty(204)


def _budget(value: Any, field: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if isinstance(value, bool) or number < 1 or (isinstance(value, float) and value != number):
        raise HttpError(400, "invalidRequest", f"{field}: must be a positive integer, not {value!r}.")
    return number


async def throttle_get(ctx: Ctx) -> Resp:
    # ``?budget=`` sets the budget too: convenient from a shell or a benchmark's setup line.
    budget = ctx.req.q("budget")
    if budget is not None:
        ctx.tenant.throttle.set_budget(_budget(budget, "budget"))
    return _ok(ctx.tenant.throttle.snapshot())


async def throttle_set(ctx: Ctx) -> Resp:
    data = _body(ctx)
    unknown = [k for k in data if k not in ("ru_per_minute", "reset")]
    if unknown:
        raise HttpError(400, "invalidRequest",
                        f"{unknown[0]}: not a throttle setting (ru_per_minute, reset).")
    if "ru_per_minute" not in data and not data.get("reset"):
        raise HttpError(400, "invalidRequest", "ru_per_minute: required (or \"reset\": true).")
    if "ru_per_minute" in data:
        ctx.tenant.throttle.set_budget(_budget(data["ru_per_minute"], "ru_per_minute"))
    if data.get("reset"):
        ctx.tenant.throttle.reset()
    return _ok(ctx.tenant.throttle.snapshot())


def _int(spec: dict[str, Any], key: str, default: int | None = None) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise HttpError(400, "invalidRequest",
                        f"generate.{key}: must be a non-negative integer, not {value!r}.")
    return value


async def seed(ctx: Ctx) -> Resp:
    data = _body(ctx)
    if ("scenario" in data) == ("generate" in data):
        raise HttpError(400, "invalidRequest", "scenario: give exactly one of \"scenario\" or \"generate\".")
    if "scenario" in data:
        scenario = data["scenario"]
        seed_module = importlib.import_module("emulator.seed")
        runner = getattr(seed_module, f"seed_{scenario}", None) if scenario in SCENARIOS else None
        if not callable(runner):
            raise HttpError(400, "invalidRequest",
                            f"scenario: unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)}).")
        summary = runner(ctx.tenant)
        return _ok({"scenario": scenario, "summary": summary}, 201)
    spec = data["generate"]
    if not isinstance(spec, dict):
        raise HttpError(400, "invalidRequest", "generate: must be an object {files, folders, depth, …}.")
    known = ("files", "folders", "depth", "drive_id", "seed", "under")
    unknown = [k for k in spec if k not in known]
    if unknown:
        raise HttpError(400, "invalidRequest", f"generate.{unknown[0]}: not a generator setting "
                                               f"({', '.join(known)}).")
    files, folders = _int(spec, "files", 0), _int(spec, "folders", 0)
    depth = _int(spec, "depth", 3 if folders else 1)
    if depth < 1:
        raise HttpError(400, "invalidRequest", "generate.depth: must be at least 1.")
    seed_value = _int(spec, "seed", 0)
    drive_id = spec.get("drive_id") or ctx.state.meta("drive_id")
    if not isinstance(drive_id, str) or not drive_id:
        raise HttpError(400, "invalidRequest",
                        "generate.drive_id: required (the tenant has no default drive).")
    under = spec.get("under", "")
    if not isinstance(under, str):
        raise HttpError(400, "invalidRequest", "generate.under: must be a drive-relative folder path.")
    summary = generate_items(ctx.tenant, drive_id, files, folders, depth=depth, seed=seed_value, under=under)
    return _ok({"generate": summary}, 201)


async def teams_channel(ctx: Ctx) -> Resp:
    name = ctx.params["channel"]
    channel = next((c for c in ctx.state.channels() if c["name"].lower() == name.lower()), None)
    if channel is None:
        raise HttpError(404, "itemNotFound", f"There is no channel '{name}'.")
    messages = [message_view(m) for m in ctx.state.teams_messages(channel["name"])]
    counts: dict[str, int] = {}
    for m in messages:
        counts[m["status"]] = counts.get(m["status"], 0) + 1
    return _ok({"channel": channel["name"], "displayName": channel["display_name"], "counts": counts,
                "messages": messages})


async def subscriptions_list(ctx: Ctx) -> Resp:
    return _ok({"value": [{"id": s.id, "clientId": s.client_id, "resource": s.resource,
                           "notificationUrl": s.notification_url, "lifecycleNotificationUrl": s.lifecycle_url,
                           "expirationDateTime": s.expiration, "paused": s.challenged_at is not None,
                           "includeSecurityWebhooks": s.include_security}
                          for s in ctx.state.subscriptions()]})


async def subscription_reauthorize(ctx: Ctx) -> Resp:
    from emulator.graph_misc import require_reauthorization

    return _ok(await require_reauthorization(ctx.tenant, ctx.params["id"]))


def register(router: Router) -> None:
    for method, pattern, handler, name in (
        ("GET", r"/_admin/health", health, "admin.health"),
        ("GET", r"/_admin/stats", stats, "admin.stats"),
        ("POST", r"/_admin/stats/reset", stats_reset, "admin.stats.reset"),
        ("POST", r"/_admin/faults", faults_add, "admin.faults.add"),
        ("GET", r"/_admin/faults", faults_list, "admin.faults.list"),
        ("DELETE", r"/_admin/faults", faults_clear, "admin.faults.clear"),
        ("DELETE", r"/_admin/faults/(?P<id>\d+)", fault_delete, "admin.faults.delete"),
        ("GET", r"/_admin/throttle", throttle_get, "admin.throttle.get"),
        ("POST", r"/_admin/throttle", throttle_set, "admin.throttle.set"),
        ("POST", r"/_admin/seed", seed, "admin.seed"),
        ("GET", r"/_admin/teams/(?P<channel>[^/]+)", teams_channel, "admin.teams"),
        ("GET", r"/_admin/subscriptions", subscriptions_list, "admin.subscriptions.list"),
        ("POST", r"/_admin/subscriptions/(?P<id>[^/]+)/reauthorize", subscription_reauthorize,
         "admin.subscriptions.reauthorize"),
    ):
        router.add(method, pattern, handler, name=name, surface="admin")
