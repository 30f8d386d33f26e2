"""Wiring of the permission commands: settings + structure → connector → cycle, and their output.

Where it sits: called by ``bot.cli`` (plan, apply, access report, access who); the cycle itself is
``bot.applying.reconcile`` over pure planning. The structure file comes from ``--structure``
(default: ``settings.permissions.structure_path``, the shipped config/cartif.yaml).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bot.access import report, who
from bot.applying import CycleResult, reconcile
from bot.desired import build_desired
from bot.model import ActualState, DesiredState
from bot.observing import observe
from bot.planning import GuardPolicy, Plan, plan, undeclared_drift
from bot.ports import AuditLog
from config.settings import Settings
from config.structure import Structure, load_structure

__all__ = ["Session", "format_cycle", "format_plan", "format_report_csv", "guard_policy", "open_session"]


@dataclasses.dataclass
class Session:
    """Everything a permission command needs, built once."""

    structure: Structure
    desired: DesiredState
    connector: Any
    policy: GuardPolicy

    def observe(self) -> ActualState:
        return observe(self.desired, self.connector)

    def plan(self) -> tuple[Plan, ActualState]:
        actual = self.observe()
        return plan(self.desired, actual), actual

    def apply(self, audit: AuditLog, *, force: bool, dry_run: bool) -> CycleResult:
        return reconcile(self.desired, self.connector, self.connector, audit, policy=self.policy, force=force,
                         dry_run=dry_run)

    def report(self) -> list[dict[str, Any]]:
        return [row.as_json() for row in report(self.desired, self.observe())]

    def who(self, path: str) -> list[dict[str, Any]]:
        return [entry.as_json() for entry in who(self.desired, self.observe(), path)]


def guard_policy(settings: Settings, structure: Structure) -> GuardPolicy:
    """The structure's ``guard:`` section, with the settings' overrides (CARTIF_PERMISSIONS__…) on top."""
    perms = settings.permissions
    share = perms.max_removal_share
    minimum = perms.min_guarded_removals
    return GuardPolicy(structure.guard.max_removal_share if share is None else share,
                       structure.guard.min_guarded_removals if minimum is None else minimum)


@contextmanager
def open_session(settings: Settings, structure_path: Path | None) -> Iterator[Session]:
    from connectors.auth import Authenticator
    from connectors.sharepoint_permissions import build_site_permissions

    structure = load_structure(structure_path or settings.permissions.structure_path)
    authenticator = Authenticator(settings)
    try:
        connector = build_site_permissions(settings, authenticator, library=structure.library)
        yield Session(structure, build_desired(structure), connector, guard_policy(settings, structure))
    finally:
        authenticator.close()


# ---------------------------------------------------------------------------------------------- output
def format_plan(the_plan: Plan) -> str:
    """A readable table: action, folder or group, principal, before → after, rule."""
    notes = [f"note: {n}" for n in the_plan.notes]  # left alone, but an admin should see it
    if not the_plan:
        return "\n".join(["nothing to do: the site matches the structure", *notes]) + "\n"
    rows = [(a.kind, a.target, a.principal or "", f"{a.before or '-'} → {a.after or '-'}", a.rule) for a in the_plan]
    head = ("ACTION", "FOLDER / GROUP", "PRINCIPAL", "BEFORE → AFTER", "RULE")
    widths = [min(max(len(r[i]) for r in [*rows, head]), 48) for i in range(4)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head[:4], widths, strict=True)) + "  " + head[4]]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4] for r in rows]
    counts = ", ".join(f"{n} {k}" for k, n in the_plan.counts().items())
    return "\n".join([*lines, "", f"{len(the_plan)} action(s): {counts}", *notes]) + "\n"


def format_cycle(result: CycleResult) -> dict[str, Any]:
    return {"cycle_id": result.cycle_id, "dry_run": result.dry_run, "planned": result.plan.counts(),
            "applied": len([o for o in result.outcomes if o.ok]),
            "failed": [{**o.action.as_json(), "error": o.error} for o in result.failed],
            "remaining": result.remaining.as_json() if not result.dry_run else None,
            "seconds": round(result.seconds, 3), "actions": result.plan.as_json(),
            "undeclared_drift": sorted(undeclared_drift(result.actual)), "notes": list(result.plan.notes)}


def format_report_csv(rows: list[dict[str, Any]]) -> str:
    """Folders × groups: one column per principal, cells "desired/actual" levels."""
    principals = sorted({g["principal"] for r in rows for g in [*r["desired"], *r["actual"]]})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["path", "unique", "drift", *principals])
    for r in rows:
        want = {g["principal"]: g["role"] for g in r["desired"]}
        have = {g["principal"]: g["role"] for g in r["actual"]}
        cells = [f"{want.get(p, '')}/{have.get(p, '')}" if p in want or p in have else "" for p in principals]
        writer.writerow([r["path"], r["actual_unique"], r["drift"], *cells])
    return out.getvalue()


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"
