"""Domain events that later steps of the cycle react to (the notices step turns them into cards).

Where it sits: ``bot.circulation`` creates a ``CirculationEvent`` for every text it circulates and
writes it to the outbox in the same transaction as the register entry; the notices step
(``bot.notices``) routes it to the Teams channels whose whole audience may read ``folder`` and
renders it as an Adaptive Card. Plain frozen values, JSON-serialisable with ``to_json``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

__all__ = ["CirculationEvent", "CirculationKind"]

CirculationKind = Literal["original", "revision", "addendum", "corrigendum"]


@dataclasses.dataclass(frozen=True, slots=True)
class CirculationEvent:
    """A document was circulated under a symbol (``CARTIF/WG-TF/W/3/Rev.2``)."""

    symbol: str
    series: str                      #: series code, e.g. "WG-TF", "PLEN", "INF"
    title: str
    kind: CirculationKind
    revises: str | None              #: the symbol this one revises / adds to / corrects
    folder: str                      #: library-relative folder whose readers may see the text (routing)
    archive_path: str                #: library-relative path of the immutable archive copy
    archive_url: str                 #: web URL of the archive copy
    redline_url: str | None          #: web URL of the HTML redline against ``revises``, if any
    brackets_total: int              #: bracketed segments in this text
    brackets_previous: int | None    #: … in the text it revises (None for an original)
    clean_articles: tuple[str, ...]  #: articles with no brackets left
    circulated_at: str               #: ISO-8601 UTC with Z
    circulated_by: str               #: UPN or "cartif-bot"

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["clean_articles"] = list(self.clean_articles)
        data["type"] = "circulation"
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CirculationEvent:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["clean_articles"] = tuple(values.get("clean_articles", ()))
        return cls(**values)
