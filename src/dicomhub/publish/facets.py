"""Faceted counts of a series search: how many series per collection, modality, ...

Counts are *disjunctive*: a facet is counted with every filter except its own,
so ticking "CT" still shows how many MR series the other filters would give
(the usual behaviour of faceted search UIs).

All facets, and the per-collection totals a search page needs, come from one
grouped query over the series table: the series matching every *non-facet*
filter, counted per combination of (collection, modality, body part,
manufacturer).  There are few such combinations (hundreds, whatever the number
of series), and a covering index serves the grouping, so each facet is then a
sum over them in Python instead of one more scan of the series per facet.  The
query runs inside the caller's scope, so a limited collection the caller may
not see contributes to no count at all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dicomhub.core.db import Collection, Series
from dicomhub.publish.access import Visibility
from dicomhub.publish.filters import Page, SeriesFilter
from dicomhub.publish.query import SearchResult, resolve_collections, search_series, series_scope

#: Facet name → (the filter field it mirrors, the series column it groups by).
FACETS: Mapping[str, tuple[str, Any]] = {
    "collection": ("collections", Series.collection_id),
    "modality": ("modalities", Series.modality),
    "body_part": ("body_parts", Series.body_part_examined),
    "manufacturer": ("manufacturers", Series.manufacturer),
}


@dataclass(frozen=True)
class Combinations:
    """Series counts per facet-value combination, and the facet filters to apply to them.

    ``wanted[i]`` is the set of accepted values of facet ``i`` (None: no filter);
    collection values are ids (resolved inside the caller's visibility).
    """

    rows: Sequence[tuple[tuple[Any, ...], int]]
    wanted: tuple[frozenset[Any] | None, ...]

    def _matches(self, key: tuple[Any, ...], skip: int | None) -> bool:
        return all(
            accepted is None or n == skip or key[n] in accepted
            for n, accepted in enumerate(self.wanted)
        )

    def facet(self, index: int) -> Counter[Any]:
        """Series per value of facet ``index`` under every filter but its own."""
        counts: Counter[Any] = Counter()
        for key, count in self.rows:
            if self._matches(key, index):
                counts[key[index]] += count
        return counts

    def per_collection(self) -> dict[int, int]:
        """Series matching *every* filter, per collection id (zero counts left out)."""
        counts: Counter[int] = Counter()
        for key, count in self.rows:
            if self._matches(key, None):
                counts[key[0]] += count
        return dict(counts)


def combinations(session: Session, visibility: Visibility, wanted: SeriesFilter) -> Combinations:
    """The grouped counts behind every facet of ``wanted`` (one query).

    Raises
    ------
    NotFound
        A named collection does not exist or is not visible to the caller.
    """
    collection_ids = resolve_collections(session, visibility, wanted.collections)
    rest = wanted
    for field, _column in FACETS.values():
        rest = rest.without(field)
    columns = [column for _field, column in FACETS.values()]
    scope = series_scope(session, visibility, rest)
    query = scope.apply(select(*columns, func.count())).group_by(*columns)
    rows = [(tuple(row[:-1]), int(row[-1])) for row in session.execute(query)]
    accepted: list[frozenset[Any] | None] = [frozenset(collection_ids) or None]
    for field, _column in list(FACETS.values())[1:]:
        values = getattr(wanted, field)
        accepted.append(frozenset(values) if values else None)
    return Combinations(rows, tuple(accepted))


def facet_counts(
    session: Session,
    visibility: Visibility,
    wanted: SeriesFilter,
    found: Combinations | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """``{facet: [{"value", "count"}, ...]}``, most series first, then by value.

    Values are as stored (an empty string means the header did not say).  Pass
    ``found`` when the caller already has the :func:`combinations` of ``wanted``.
    """
    if found is None:
        found = combinations(session, visibility, wanted)
    return {name: _listed(session, name, found.facet(index)) for index, name in enumerate(FACETS)}


def value_counts(
    session: Session, visibility: Visibility, wanted: SeriesFilter, facet: str
) -> list[dict[str, Any]]:
    """One facet (also for value lists such as NBIA's getModalityValues)."""
    index = list(FACETS).index(facet)
    return _listed(session, facet, combinations(session, visibility, wanted).facet(index))


def _listed(session: Session, facet: str, counter: Counter[Any]) -> list[dict[str, Any]]:
    counts = [(value, count) for value, count in counter.items() if count]
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


def faceted_search(
    session: Session, visibility: Visibility, wanted: SeriesFilter, page: Page
) -> tuple[SearchResult, dict[str, list[dict[str, Any]]]]:
    """One page of results and every facet, from one grouped pass over the series."""
    found = combinations(session, visibility, wanted)
    result = search_series(session, visibility, wanted, page, found.per_collection())
    return result, facet_counts(session, visibility, wanted, found)
