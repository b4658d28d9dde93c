"""Search and facets over the JSON API, on both databases, and bad input to every filter."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.public_data import BRAIN, BREAST, LUNG, MR_IMAGE, make_uid
from tests.publish.conftest import PublicSite


def _search(site: PublicSite, params: Any, **kwargs: Any) -> dict[str, Any]:
    with site.client(**kwargs) as client:
        answer = client.get("/api/search", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_everything_public_and_nothing_limited(public_site: PublicSite) -> None:
    body = _search(public_site, {"limit": 1000, "facets": "1"})
    public = public_site.catalogue.all_series(LUNG, BRAIN)
    assert body["total"] == len(public) == 16 + 9
    assert sorted(r["series_uid"] for r in body["results"]) == sorted(public)
    facets = body["facets"]
    assert {f["value"]: f["count"] for f in facets["collection"]} == {LUNG: 16, BRAIN: 9}
    assert {f["value"]: f["count"] for f in facets["modality"]} == {"CT": 16, "MR": 6, "SEG": 3}
    assert {f["value"] for f in facets["body_part"]} == {"CHEST", "BRAIN"}
    assert "HOLOGIC" not in {f["value"] for f in facets["manufacturer"]}


def test_filters_each_narrow_the_search(public_site: PublicSite) -> None:
    lung = public_site.catalogue.series[LUNG]
    cases: list[tuple[dict[str, Any], int]] = [
        ({"collection": LUNG}, 16),
        ({"modality": "MR"}, 6),
        ({"modality": ["MR", "SEG"]}, 9),
        ({"manufacturer": "SIEMENS"}, 8),
        ({"model": "LightSpeed VCT"}, 8),
        ({"body_part": "BRAIN"}, 9),
        ({"patient_id": "LUNG-001"}, 4),
        ({"patient_id": ["LUNG-001", "BRAIN-002"]}, 7),
        ({"sop_class": MR_IMAGE}, 6),
        ({"description": "flair"}, 3),
        ({"description": "FLAIR AX"}, 3),
        ({"description": "%"}, 0),
        ({"description": "_"}, 0),
        ({"series_uid": lung[0]}, 1),
        ({"study_uid": public_site.catalogue.studies[BRAIN][0]}, 3),
        ({"study_date_from": "2021-01-01"}, 9),
        ({"study_date_to": "2019-06-30"}, 8),
        ({"study_date_from": "2019-03-01", "study_date_to": "20190301"}, 2),
        ({"collection": LUNG, "manufacturer": "SIEMENS", "patient_id": "LUNG-002"}, 2),
    ]
    for params, expected in cases:
        assert _search(public_site, params)["total"] == expected, params


def test_facets_are_disjunctive_and_follow_other_filters(public_site: PublicSite) -> None:
    with public_site.client() as client:
        facets = client.get("/api/facets", params={"modality": "MR"}).json()["facets"]
    # The modality facet ignores the modality filter; the others apply it.
    assert {f["value"]: f["count"] for f in facets["modality"]} == {"CT": 16, "MR": 6, "SEG": 3}
    assert facets["collection"] == [{"value": BRAIN, "count": 6}]
    assert facets["manufacturer"] == [{"value": "Philips", "count": 6}]


def test_pages_are_stable_and_cover_everything_once(public_site: PublicSite) -> None:
    seen: list[str] = []
    for offset in range(0, 30, 7):
        body = _search(public_site, {"limit": 7, "offset": offset})
        assert body["limit"] == 7
        assert body["offset"] == offset
        seen += [r["series_uid"] for r in body["results"]]
    assert len(seen) == len(set(seen)) == 25
    everything = [r["series_uid"] for r in _search(public_site, {"limit": 100})["results"]]
    assert seen == everything
    first = _search(public_site, {"limit": 100})["results"]
    assert [r["collection"] for r in first[:9]] == [BRAIN] * 9  # byte order: B before L
    assert _search(public_site, {"offset": 1000})["results"] == []


def test_a_series_and_a_collection_in_detail(public_site: PublicSite) -> None:
    uid = public_site.catalogue.series[BRAIN][2]
    with public_site.client() as client:
        series = client.get(f"/api/series/{uid}").json()
        assert series["series_uid"] == uid
        assert series["collection"] == BRAIN
        assert series["modality"] == "SEG"
        assert series["instances"] == 2
        detail = client.get(f"/api/collections/{LUNG}").json()
    assert detail["patients"] == 4
    assert detail["studies"] == 8
    assert detail["series"] == 16
    assert detail["instances"] == 48
    assert detail["size"] == public_site.catalogue.sizes[LUNG]
    assert detail["license_name"].startswith("Creative Commons Attribution 4.0")
    assert "Lung CT demo" in detail["citation"]
    assert detail["by_modality"] == [{"value": "CT", "series": 16, "patients": 4, "instances": 48}]
    assert detail["by_body_part"][0]["value"] == "CHEST"


# -- bad input -------------------------------------------------------------------

FILTERS = [
    "collection",
    "modality",
    "body_part",
    "manufacturer",
    "model",
    "patient_id",
    "sop_class",
    "study_uid",
    "series_uid",
    "description",
    "study_date_from",
    "study_date_to",
]
HOSTILE = [
    "' OR '1'='1",
    "1; DROP TABLE series; --",
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "\\..\\..\\windows",
    "%' UNION SELECT name FROM collection --",
    'CT" OR 1=1 --',
]
UID_PARAMS = {"sop_class", "study_uid", "series_uid"}
DATE_PARAMS = {"study_date_from", "study_date_to"}


@pytest.mark.parametrize("name", FILTERS)
def test_hostile_strings_in_every_filter(public_site: PublicSite, name: str) -> None:
    with public_site.client() as client:
        for value in HOSTILE:
            answer = client.get("/api/search", params={name: value})
            if name in UID_PARAMS or name in DATE_PARAMS:
                assert answer.status_code == 400, (name, value, answer.text)
                assert answer.json()["error"] == "bad_request"
            elif name == "collection":
                assert answer.status_code == 404, (name, value)
            else:
                assert answer.status_code == 200, (name, value, answer.text)
                assert answer.json()["total"] == 0
        # the database is intact afterwards
        assert client.get("/api/search").json()["total"] == 25


def test_malformed_values_are_400_with_a_reason(public_site: PublicSite) -> None:
    bad: list[dict[str, Any]] = [
        {"limit": 1_000_000},
        {"limit": 0},
        {"limit": "ten"},
        {"offset": -1},
        {"offset": "1e3"},
        {"series_uid": "1.2.abc"},
        {"series_uid": "1." + "2" * 80},
        {"study_uid": "1..2"},
        {"study_date_from": "2020-13-45"},
        {"study_date_from": "2021-01-01", "study_date_to": "2020-01-01"},
        {"description": "x" * 300},
        {"modality": "CT\x00"},
        {"no_such_filter": "1"},
    ]
    with public_site.client() as client:
        for params in bad:
            answer = client.get("/api/search", params=params)
            assert answer.status_code == 400, (params, answer.text)
            assert answer.json()["message"]
        assert client.get("/api/series/not-a-uid").status_code == 400
        assert client.get(f"/api/series/{make_uid('nothing')}").status_code == 404


def test_unknown_collection_is_404_everywhere(public_site: PublicSite) -> None:
    with public_site.client() as client:
        for path in ("/api/collections/NOPE", "/api/collections/..%2F..%2Fetc"):
            answer = client.get(path)
            assert answer.status_code == 404
        answer = client.get("/api/search", params={"collection": "NOPE"})
        assert answer.status_code == 404
        assert answer.json()["message"] == "no collection named 'NOPE'"
        limited = client.get("/api/search", params={"collection": BREAST})
        assert limited.status_code == 404
        assert limited.json()["message"] == f"no collection named '{BREAST}'"
