"""Result pages placed by per-collection counts, with and without facets; non-ASCII text search."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from dicomhub.core.db import Series, make_engine
from tests.fixtures.public_data import BREAST, LUNG
from tests.publish.conftest import PublicSite


def _uids(client: Any, params: dict[str, Any]) -> tuple[int, list[str]]:
    answer = client.get("/api/search", params=params)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return body["total"], [row["series_uid"] for row in body["results"]]


def test_every_window_is_a_slice_of_the_whole_order(public_site: PublicSite) -> None:
    """Pages that start, end and straddle collection boundaries, for a user who sees three."""
    client = public_site.login("alice")
    try:
        total, everything = _uids(client, {"limit": 1000})
        assert BREAST in {r["collection"] for r in client.get("/api/search").json()["results"]}
        assert total == len(everything) > 25
        for limit in (1, 4, 9):
            for offset in range(0, total + 2, 4):
                params = {"limit": limit, "offset": offset, "facets": str(offset % 2)}
                count, page = _uids(client, params)
                assert count == total
                assert page == everything[offset : offset + limit], params
        _, ct = _uids(client, {"modality": "CT", "limit": 1000})
        assert _uids(client, {"modality": "CT", "limit": 5, "offset": 14, "facets": "1"}) == (
            len(ct),
            ct[14:19],
        )
    finally:
        client.close()


def test_description_search_folds_case_in_any_alphabet(public_site: PublicSite) -> None:
    uid = public_site.catalogue.series[LUNG][0]
    engine = make_engine(public_site.db_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                update(Series)
                .where(Series.series_instance_uid == uid)
                .values(series_description="Thorax Müller ÄRZTIN Straße")
            )
    finally:
        engine.dispose()
    with public_site.client() as client:
        for needle in ("MÜLLER", "müller", "ärztin", "Ärztin", "STRAßE", "thorax m"):
            total, found = _uids(client, {"description": needle, "facets": "1"})
            assert (total, found) == (1, [uid]), needle
        assert _uids(client, {"description": "MULLER"}) == (0, [])
