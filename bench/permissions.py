"""``python -m bench permissions``: the permission cycle on the default CARTIF structure.

On a fresh, seeded local tenant with the default CARTIF structure (config/cartif.yaml): the first
reconcile from a site without the structure (observe → plan → guard → apply → verify), then a
no-op cycle (observe → empty plan), each with HTTP requests and SharePoint resource units counted
by the tenant (``/_admin/stats``) and wall time. Side by side, a naive observation of the same
folders and groups — what a script without ``$expand`` does: per folder one request for
HasUniqueRoleAssignments and one for RoleAssignments, then per role assignment one for its Member
and one for its RoleDefinitionBindings; per group one for its users — with the ratio.

Budget: the first reconcile spends more than one minute of SharePoint's 1,200 RU budget (650-odd
writes at 5 RU each), so by default it runs with the budget raised and its RU are reported against
1,200/min; ``--first-at-budget`` runs it under the production budget too (throttled: it then
measures how the one retry layer waits out SharePoint's Retry-After).
The no-op cycle runs under the production budget of 1,200 RU/minute with an empty window (429s, if
any, are counted). The naive observation runs with the budget raised again, so that its cost is
measured rather than its throttling waits. A measurement, not a test: nothing asserts a time.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from bot.applying import reconcile
from bot.desired import build_desired
from bot.model import DesiredState
from bot.observing import observe
from bot.planning import GuardPolicy
from bot.ports import MemoryAuditLog
from config.settings import Settings
from config.structure import load_structure
from connectors.auth import Authenticator, Resource
from connectors.sharepoint_permissions import build_site_permissions
from emulator.process import LocalTenantProcess

#: SharePoint's per-app budget for a tenant of 0–1,000 licences (graph-api.md §2.17).
PRODUCTION_RU_PER_MINUTE = 1200
#: Raised budget for the steps that must not be throttled to be measured (first build, naive walk).
UNTHROTTLED = 100_000_000
_NOMETADATA = {"Accept": "application/json;odata=nometadata"}


def _stats(admin: httpx.Client) -> dict[str, Any]:
    data: dict[str, Any] = admin.get("/stats").json()
    return data


def _delta(admin: httpx.Client, before: dict[str, Any]) -> dict[str, int]:
    after = _stats(admin)
    # The /stats call itself is counted by the tenant (0 RU): leave it out.
    return {"requests": int(after["total_requests"]) - int(before["total_requests"]) - 1,
            "ru": int(after["total_resource_units"]) - int(before["total_resource_units"]),
            "throttled": int(after["by_status"].get("429", 0)) - int(before["by_status"].get("429", 0)),
            "inside": int(after["total_requests_inside_retry_after"])
            - int(before["total_requests_inside_retry_after"])}


def naive_observe(site_url: str, token: str, ca: str, library: str, desired: DesiredState) -> tuple[int, int]:
    """Read what ``observe`` reads, one resource per request (no ``$expand``): (requests, non-200 answers)."""
    requests = failed = 0
    with httpx.Client(base_url=f"{site_url}/_api/", verify=ca, trust_env=False, timeout=60,
                      headers={**_NOMETADATA, "Authorization": f"Bearer {token}"}) as client:
        def get(path: str) -> Any:
            nonlocal requests, failed
            requests += 1
            response = client.get(path)
            if response.status_code != 200:
                failed += 1
                return None
            return response.json()

        for spec in desired.folders:
            item = f"web/GetFolderByServerRelativeUrl('{quote(f'{library}/{spec.path}', safe='/')}')/ListItemAllFields"
            if get(f"{item}/HasUniqueRoleAssignments") is None:
                continue  # missing folder
            assignments = get(f"{item}/RoleAssignments") or {}
            for ra in assignments.get("value", []):
                principal = ra["PrincipalId"]
                get(f"{item}/RoleAssignments/GetByPrincipalId({principal})/Member")
                get(f"{item}/RoleAssignments/GetByPrincipalId({principal})/RoleDefinitionBindings")
        groups = get("web/sitegroups") or {}
        wanted = {g.name for g in desired.groups}
        for group in groups.get("value", []):
            if group["Title"] in wanted:
                get(f"web/sitegroups/GetById({group['Id']})/Users")
    return requests, failed


def run(work: Path, *, first_at_budget: bool = False) -> dict[str, Any]:
    tenant = LocalTenantProcess(work / "tenant")  # seeded CARTIF tenant, default budget 1,200 RU/min
    info = tenant.start()
    admin = httpx.Client(base_url=info["admin_url"], verify=info["ca_path"], trust_env=False, timeout=300)
    settings = Settings.load(env_file=None, tenant_file=Path(info["data_dir"]) / "tenant.json",
                             store={"data_dir": str(work / "store")})
    structure = load_structure()
    desired = build_desired(structure)
    authenticator = Authenticator(settings)
    out: dict[str, Any] = {"governed_folders": len(desired.folders), "groups": len(desired.groups),
                           "default_budget": admin.get("/throttle").json()["ru_per_minute"]}
    try:
        connector = build_site_permissions(settings, authenticator, library=structure.library)
        audit = MemoryAuditLog()
        policy = structure.guard

        first_budget = PRODUCTION_RU_PER_MINUTE if first_at_budget else UNTHROTTLED
        admin.post("/throttle", json={"ru_per_minute": first_budget, "reset": True})
        out["first_budget"] = first_budget
        before = _stats(admin)
        t0 = time.perf_counter()
        guard = GuardPolicy(policy.max_removal_share, policy.min_guarded_removals)
        first = reconcile(desired, connector, connector, audit, policy=guard)
        out["first"] = {**_delta(admin, before), "seconds": time.perf_counter() - t0, "actions": len(first.plan),
                        "failed": len(first.failed), "remaining": len(first.remaining)}

        # The no-op cycle under the production budget, from an empty window.
        admin.post("/throttle", json={"ru_per_minute": PRODUCTION_RU_PER_MINUTE, "reset": True})
        before = _stats(admin)
        t0 = time.perf_counter()
        noop = reconcile(desired, connector, connector, audit, policy=guard)
        out["noop"] = {**_delta(admin, before), "seconds": time.perf_counter() - t0, "actions": len(noop.plan)}

        # The same observation, naively, and a check that our cheap observation saw the same thing.
        admin.post("/throttle", json={"ru_per_minute": UNTHROTTLED, "reset": True})
        token = authenticator.access_token(Resource.SHAREPOINT)
        before = _stats(admin)
        t0 = time.perf_counter()
        counted, failed = naive_observe(info["site_url"], token, info["ca_path"], structure.library, desired)
        out["naive"] = {**_delta(admin, before), "seconds": time.perf_counter() - t0, "counted": counted,
                        "failed": failed}
        before = _stats(admin)
        t0 = time.perf_counter()
        observe(desired, connector)
        out["observe"] = {**_delta(admin, before), "seconds": time.perf_counter() - t0}
    finally:
        authenticator.close()
        admin.close()
        tenant.stop()
    return out


def main(argv: list[str]) -> int:
    first_at_budget = "--first-at-budget" in argv
    with tempfile.TemporaryDirectory() as tmp:
        r = run(Path(tmp), first_at_budget=first_at_budget)
    folders, first, noop, naive, obs = r["governed_folders"], r["first"], r["noop"], r["naive"], r["observe"]
    budget = PRODUCTION_RU_PER_MINUTE
    print(f"default CARTIF structure: {folders} governed folders, {r['groups']} groups; "
          f"tenant default budget {r['default_budget']} RU/min\n")
    print("| cycle | actions | requests | requests per governed folder | RU | % of 1,200 RU/min | 429s | "
          "requests inside Retry-After | wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| first reconcile (empty site → structure) | {first['actions']} ({first['failed']} failed, "
          f"{first['remaining']} left) | {first['requests']} | {first['requests'] / folders:.2f} | {first['ru']} | "
          f"{100 * first['ru'] / budget:.0f} % | {first['throttled']} "
          f"({'at 1,200 RU/min' if first_at_budget else 'budget raised'}) | {first['inside']} | "
          f"{first['seconds']:.2f} |")
    print(f"| no-op cycle (observe, empty plan) | {noop['actions']} | {noop['requests']} | "
          f"{noop['requests'] / folders:.2f} | {noop['ru']} | {100 * noop['ru'] / budget:.1f} % | "
          f"{noop['throttled']} (at 1,200 RU/min) | {noop['inside']} | {noop['seconds']:.2f} |")
    print()
    print("| observation of the same folders and groups | requests | RU | % of 1,200 RU/min | wall s |")
    print("|---|---|---|---|---|")
    print(f"| bot (`Folders?$expand=…RoleAssignments…` per parent + sitegroups?$expand=Users + library items "
          f"scan, 5,000 per page) | {obs['requests']} | "
          f"{obs['ru']} | {100 * obs['ru'] / budget:.1f} % | {obs['seconds']:.2f} |")
    print(f"| naive (per folder HasUniqueRoleAssignments + RoleAssignments, per assignment Member + "
          f"RoleDefinitionBindings, per group Users) | {naive['requests']} | {naive['ru']} | "
          f"{100 * naive['ru'] / budget:.0f} % | {naive['seconds']:.2f} |")
    print(f"| ratio naive / bot | {naive['requests'] / max(obs['requests'], 1):.0f}× | "
          f"{naive['ru'] / max(obs['ru'], 1):.0f}× | | {naive['seconds'] / max(obs['seconds'], 1e-9):.0f}× |")
    print(f"\nnaive: {naive['counted']} requests sent, {naive['failed']} not answered 200 (must be 0)")
    sys.stdout.flush()
    return 0
