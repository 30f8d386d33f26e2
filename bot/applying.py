"""Apply a plan through the writer port, verify, and record every applied change in the audit trail.

Where it sits: after the guard in the permission cycle. ``reconcile`` is the whole cycle —
observe → plan → guard → apply → verify — and the only way the CLI changes permissions, so
the guard cannot be skipped (only ``force`` lifts it, and ``dry_run`` stops before any write).

Actions run one by one in plan order; a failed action is logged, reported as an ``Outcome``
and does not stop the others (a later cycle retries it, since the plan is level-based). Each
applied action becomes one audit entry (when, action, target, before/after, rule, cycle id).
The plan's notes (a group named like the bot's but without its ownership marker, left alone) are
logged as warnings each cycle; they change nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Sequence

from bot.model import ActualState, DesiredState
from bot.observing import observe
from bot.planning import (
    Action,
    AddMember,
    BreakInheritance,
    CreateFolder,
    CreateGroup,
    DeleteGroup,
    Grant,
    GuardPolicy,
    MarkGroup,
    Plan,
    RemoveMember,
    RemoveSharingLink,
    ResetInheritance,
    Revoke,
    check_guard,
    plan,
    undeclared_drift,
)
from bot.ports import AuditEntry, AuditLog, PermissionReader, PermissionWriter

__all__ = ["CycleResult", "Outcome", "apply_plan", "reconcile"]

log = logging.getLogger("cartif.permissions")


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What became of one action: applied, or the error that stopped it."""

    action: Action
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclasses.dataclass(frozen=True)
class CycleResult:
    """One reconcile: the plan, what applying it did, and what verification still found."""

    cycle_id: str
    plan: Plan
    outcomes: tuple[Outcome, ...]
    remaining: Plan
    actual: ActualState
    seconds: float
    dry_run: bool = False

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _run(action: Action, writer: PermissionWriter) -> None:
    match action:
        case CreateGroup(group=g, description=d):
            writer.create_group(g, d)
        case MarkGroup(group=g, description=d):
            writer.set_group_description(g, d)
        case DeleteGroup(group=g):
            writer.delete_group(g)
        case AddMember(group=g, person=p):
            writer.add_member(g, p)
        case RemoveMember(group=g, login=login):
            writer.remove_member(g, login)
        case CreateFolder(path=p):
            writer.create_folder(p)
        case BreakInheritance(path=p):
            writer.break_inheritance(p)
        case ResetInheritance(path=p):
            writer.reset_inheritance(p)
        case Grant(path=p, to=who, level=level):
            writer.grant(p, who, level)
        case Revoke(path=p, of=who, level=level):
            writer.revoke(p, who, level)
        case RemoveSharingLink(path=p, group_login=login, level=level):
            writer.remove_sharing_link(p, login, level)
        case _:
            raise TypeError(f"unknown action {action!r}")


def apply_plan(the_plan: Plan, writer: PermissionWriter, audit: AuditLog, *, cycle_id: str,
               now: Callable[[], str] = _utc_now) -> list[Outcome]:
    """Run every action; record the applied ones (one audit batch at the end, failures logged)."""
    outcomes: list[Outcome] = []
    entries: list[AuditEntry] = []
    for action in the_plan:
        try:
            _run(action, writer)
        except Exception as exc:  # one failure must not stop the cycle; the next one retries
            log.warning("permissions: %s %s %s failed: %s", action.kind, action.target, action.principal, exc)
            outcomes.append(Outcome(action, f"{type(exc).__name__}: {exc}"))
            continue
        log.info("permissions: %s %s %s (%s → %s) — %s", action.kind, action.target, action.principal,
                 action.before, action.after, action.rule)
        outcomes.append(Outcome(action))
        target = f"{action.target} / {action.principal}" if action.principal else action.target
        entries.append(AuditEntry(action.kind, target, now(), cycle_id, action.before, action.after, action.rule))
    audit.record_audit(entries)
    return outcomes


def reconcile(desired: DesiredState, reader: PermissionReader, writer: PermissionWriter, audit: AuditLog,
              *, policy: GuardPolicy, force: bool = False, dry_run: bool = False,
              cycle_id: str | None = None) -> CycleResult:
    """observe → plan → guard → apply → verify (see the module docstring)."""
    started = time.monotonic()
    cycle = cycle_id or uuid.uuid4().hex[:12]
    actual = observe(desired, reader)
    the_plan = plan(desired, actual)
    drift = undeclared_drift(actual)
    if drift and desired.undeclared == "report":
        log.warning("permissions: %d undeclared item(s) inside governed folders have their own permissions "
                    "(reported only, folders.undeclared: report): %s", len(drift), ", ".join(sorted(drift)))
    for note in the_plan.notes:  # e.g. a hand-made group named like the bot's: left alone, but shown
        log.warning("permissions: %s", note)
    check_guard(the_plan, desired, actual, policy, force=force)
    if dry_run or not the_plan:
        return CycleResult(cycle, the_plan, (), the_plan, actual, time.monotonic() - started, dry_run)
    outcomes = apply_plan(the_plan, writer, audit, cycle_id=cycle)
    after = observe(desired, reader)
    remaining = plan(desired, after)
    if remaining:
        log.warning("permissions: %d difference(s) remain after apply (cycle %s)", len(remaining), cycle)
    return CycleResult(cycle, the_plan, tuple(outcomes), remaining, after, time.monotonic() - started)


def summarize(outcomes: Sequence[Outcome]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for o in outcomes:
        key = o.action.kind if o.ok else f"failed {o.action.kind}"
        counts[key] = counts.get(key, 0) + 1
    return counts
