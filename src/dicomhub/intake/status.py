"""Intake status: per collection and site, what arrived today and in all, and what is held.

Totals come from the per-series counters the service keeps (no instance scan);
"today" (UTC) counts instances stored or replaced since midnight, looking only at
series touched today (``series.updated_at`` is indexed).  Quarantined items are
counted by reason, including those for collections or sites intake does not know.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dicomhub.core.db import (
    Collection,
    Instance,
    Patient,
    QuarantineItem,
    QuarantineState,
    Series,
    Site,
    Study,
    utcnow,
)

LOGGER = logging.getLogger(__name__)

Key = tuple[str, str]


@dataclass
class SiteStatus:
    """What intake holds for one collection and site."""

    collection: str
    site: str
    instances_total: int = 0
    instances_today: int = 0
    size_total: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    last_stored_at: datetime | None = None
    last_quarantined_at: datetime | None = None

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    @property
    def last_arrival(self) -> datetime | None:
        """The latest instance stored or quarantined."""
        times = [t for t in (self.last_stored_at, self.last_quarantined_at) if t is not None]
        return max(times) if times else None

    def to_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "collection": self.collection,
            "site": self.site,
            "instances_total": self.instances_total,
            "instances_today": self.instances_today,
            "size_total": self.size_total,
            "quarantined": dict(sorted(self.quarantined.items())),
            "quarantined_total": self.quarantined_total,
            "last_arrival": iso(self.last_arrival),
            "last_stored_at": iso(self.last_stored_at),
            "last_quarantined_at": iso(self.last_quarantined_at),
        }


def start_of_day(now: datetime | None = None) -> datetime:
    """Midnight UTC of ``now``'s day."""
    now = (now or utcnow()).astimezone(UTC)
    return datetime.combine(now.date(), time(), tzinfo=UTC)


def _series_by_site() -> Any:
    return (
        select(Collection.name, Site.name)
        .select_from(Series)
        .join(Collection, Series.collection_id == Collection.id)
        .join(Study, Series.study_id == Study.id)
        .join(Patient, Study.patient_id == Patient.id)
        .join(Site, Patient.site_id == Site.id)
        .group_by(Collection.name, Site.name)
    )


def intake_status(
    session: Session,
    *,
    collection: str | None = None,
    site: str | None = None,
    now: datetime | None = None,
) -> list[SiteStatus]:
    """One :class:`SiteStatus` per known site (and per place quarantined items name)."""
    found: dict[Key, SiteStatus] = {}

    def entry(key: Key) -> SiteStatus:
        if key not in found:
            found[key] = SiteStatus(*key)
        return found[key]

    sites = select(Collection.name, Site.name).join(Site, Site.collection_id == Collection.id)
    for names in session.execute(sites):
        entry((names[0], names[1]))
    totals = _series_by_site().add_columns(
        func.sum(Series.instance_count), func.sum(Series.total_size), func.max(Series.updated_at)
    )
    for row in session.execute(totals):
        status = entry((row[0], row[1]))
        status.instances_total = int(row[2] or 0)
        status.size_total = int(row[3] or 0)
        status.last_stored_at = row[4]
    midnight = start_of_day(now)
    today = (
        _series_by_site()
        .add_columns(func.count(Instance.id))
        .join(Instance, Instance.series_id == Series.id)
        .where(Series.updated_at >= midnight, Instance.updated_at >= midnight)
    )
    for row in session.execute(today):
        entry((row[0], row[1])).instances_today = int(row[2])
    held = (
        select(
            QuarantineItem.collection,
            QuarantineItem.site,
            QuarantineItem.reason_code,
            func.count(QuarantineItem.id),
            func.max(QuarantineItem.created_at),
        )
        .where(QuarantineItem.state == QuarantineState.HELD)
        .group_by(QuarantineItem.collection, QuarantineItem.site, QuarantineItem.reason_code)
    )
    for row in session.execute(held):
        status = entry((row[0], row[1]))
        status.quarantined[row[2]] = int(row[3])
        latest = _aware(row[4])
        if status.last_quarantined_at is None or (latest and latest > status.last_quarantined_at):
            status.last_quarantined_at = latest
    rows = [
        s
        for key, s in sorted(found.items())
        if (collection is None or key[0] == collection) and (site is None or key[1] == site)
    ]
    for status in rows:
        status.last_stored_at = _aware(status.last_stored_at)
    return rows


def _aware(value: datetime | None) -> datetime | None:
    """Aggregates bypass the column type on SQLite; make them UTC-aware like the rest."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
