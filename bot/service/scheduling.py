"""When the next cycle starts: a fixed interval, or a five-field cron expression (UTC).

Where it sits: ``bot.service.running.CycleRunner`` asks ``Schedule.next_after(now)`` after every
cycle and sleeps until then (or until a manual trigger or a change notification wakes it). Pure:
no clock, no I/O; the caller passes ``now``.

The cron dialect is the classic one (``minute hour day-of-month month day-of-week``; ``*``,
lists ``1,15``, ranges ``1-5``, steps ``*/10`` and ``8-18/2``; day of week 0-7 with 0 and 7 =
Sunday). As in Vixie cron, when both day fields are restricted a day matches if EITHER does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from bot.errors import UserError

__all__ = ["CronExpression", "Schedule"]

#: (name, lowest, highest) of the five fields
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31), ("month", 1, 12), ("day-of-week", 0, 7))
#: A cron expression that matches nothing (30 February) would loop forever; give up after 5 years.
_HORIZON = dt.timedelta(days=366 * 5)


def _parse_field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if base == "*":
                start, stop = low, high
            elif "-" in base:
                a, b = base.split("-", 1)
                start, stop = int(a), int(b)
            else:
                start = int(base)
                stop = high if step_text else start
        except ValueError:
            raise UserError(f"CARTIF_SCHEDULE__CRON: {name} field {text!r} is not a number, range or step") from None
        if step < 1 or not low <= start <= stop <= high:
            raise UserError(f"CARTIF_SCHEDULE__CRON: {name} field {text!r} is outside {low}-{high} "
                            "(or has a step below 1)")
        values.update(range(start, stop + 1, step))
    return frozenset(values)


@dataclasses.dataclass(frozen=True)
class CronExpression:
    """A parsed cron expression; ``CronExpression.parse("*/5 * * * *")``."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday … 6 = Saturday
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        fields = text.split()
        if len(fields) != 5:
            raise UserError(f"CARTIF_SCHEDULE__CRON: {text!r} has {len(fields)} fields, expected 5 "
                            "(minute hour day-of-month month day-of-week)")
        parsed = [_parse_field(f, *spec) for f, spec in zip(fields, _FIELDS, strict=True)]
        weekdays = frozenset(d % 7 for d in parsed[4])
        return cls(" ".join(fields), parsed[0], parsed[1], parsed[2], parsed[3], weekdays,
                   fields[2] != "*", fields[4] != "*")

    def _day_matches(self, day: dt.datetime) -> bool:
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_month or in_week
        return in_month and in_week

    def next_after(self, now: dt.datetime) -> dt.datetime:
        """The first matching minute strictly after ``now`` (an aware datetime; the result is UTC)."""
        t = now.astimezone(dt.UTC).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        limit = t + _HORIZON
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + dt.timedelta(days=32)).replace(day=1)
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + dt.timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + dt.timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += dt.timedelta(minutes=1)
            else:
                return t
        raise UserError(f"CARTIF_SCHEDULE__CRON: {self.text!r} never matches")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Every ``interval`` seconds, or at the times of ``cron`` when it is set."""

    interval: float
    cron: CronExpression | None = None

    @classmethod
    def from_settings(cls, schedule: object) -> Schedule:
        cron_text = getattr(schedule, "cron", None)
        return cls(float(getattr(schedule, "interval_seconds", 300)),
                   CronExpression.parse(cron_text) if cron_text else None)

    def next_after(self, now: dt.datetime) -> dt.datetime:
        if self.cron is not None:
            return self.cron.next_after(now)
        return now + dt.timedelta(seconds=self.interval)

    def describe(self) -> str:
        return f"cron {self.cron.text!r} (UTC)" if self.cron else f"every {self.interval:g} s"
