"""Faceted counts of a series search: how many series per modality, body part, ...

Counts are *disjunctive*: a facet is counted with every filter except its own,
so ticking "CT" still shows how many MR series the other filters would give
(the usual behaviour of faceted search UIs).  Each facet is one grouped SQL
query over the caller's scope, so a limited collection the caller may not see
contributes to no count at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dicomhub.core.db import Collection, Series
from dicomhub.publish.access import Visibility
from dicomhub.publish.filters import SeriesFilter
from dicomhub.publish.query import series_scope

#: Facet name → (the filter field it mirrors, the series column it groups by).
FACETS: Mapping[str, tuple[str, Any]] = {
    "collection": ("collections", Series.collection_id),
    "modality": ("modalities", Series.modality),
    "body_part": ("body_parts", Series.body_part_examined),
    "manufacturer": ("manufacturers", Series.manufacturer),
}


def facet_counts(
    session: Session, visibility: Visibility, wanted: SeriesFilter
) -> dict[str, list[dict[str, Any]]]:
    """``{facet: [{"value", "count"}, ...]}``, most series first, then by value.

    Values are as stored (an empty string means the header did not say).
    """
    return {name: value_counts(session, visibility, wanted, name) for name in FACETS}


def value_counts(
    session: Session, visibility: Visibility, wanted: SeriesFilter, facet: str
) -> list[dict[str, Any]]:
    """One facet (also for value lists such as NBIA's getModalityValues)."""
    field, column = FACETS[facet]
    scope = series_scope(session, visibility, wanted, skip=field)
    query = scope.apply(select(column, func.count(Series.id))).group_by(column)
    counts = [(value, int(count)) for value, count in session.execute(query)]
    if facet == "collection":
        counts = _collection_names(session, counts)
    counts.sort(key=lambda item: (-item[1], str(item[0])))
    return [{"value": value, "count": count} for value, count in counts]


def _collection_names(session: Session, counts: list[tuple[Any, int]]) -> list[tuple[Any, int]]:
    """Swap collection ids for names (the ids came out of an access-checked scope)."""
    ids = [ident for ident, _ in counts]
    if not ids:
        return []
    query = select(Collection.id, Collection.name).where(Collection.id.in_(ids))
    names = {ident: name for ident, name in session.execute(query)}
    return [(names[ident], count) for ident, count in counts]
