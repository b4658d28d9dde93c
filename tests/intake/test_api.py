"""The intake JSON API on a real uvicorn server: verification, status and quarantine."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from dicomhub.context import IntakeContext
from dicomhub.core.db import Instance, QuarantineItem
from dicomhub.core.db.intake import SitePolicy
from dicomhub.submit.verify import fetch_inventory
from dicomhub.web.app import create_intake_app
from tests.core.dicom.build import STUDY, instance_bytes
from tests.fixtures.http import serve_app
from tests.intake.conftest import COLLECTION, SITE
from tests.intake.helpers import CONTENT_TYPE, multipart, sha256, token_for


@pytest.fixture
def url(intake_context: IntakeContext) -> Iterator[str]:
    with serve_app(create_intake_app(intake_context.settings, intake_context)) as base:
        yield base


def _client(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _stow(client: httpx.Client, parts: list[bytes]) -> httpx.Response:
    return client.post("/dicomweb/studies", content=multipart(parts),
                       headers={"Content-Type": CONTENT_TYPE})  # fmt: skip


def test_verification_lists_what_arrived_with_sha256_and_size(
    url: str, intake_context: IntakeContext
) -> None:
    submitter = token_for(intake_context, "kit-a", "submitter")
    parts = [
        instance_bytes(sop_uid=f"1.2.3.50.{i}", instance_number=i,
                       series_uid=f"{STUDY}.{1 + i % 2}")
        for i in range(1, 8)
    ]  # fmt: skip
    parts.append(instance_bytes(sop_uid="1.2.3.50.99", patient_id="PAT-002",
                                study_uid="1.2.3.51", series_uid="1.2.3.51.1"))  # fmt: skip
    with _client(url, submitter) as client:
        assert _stow(client, parts).status_code == 200
        body = client.get("/intake/api/verification").json()
        assert body["counts"] == {"patients": 2, "studies": 2, "series": 3, "instances": 8}
        assert (body["collection"], body["site"], body["next"]) == (COLLECTION, SITE, None)
        by_uid = {item["sop_instance_uid"]: item for item in body["instances"]}
        expected = {f"1.2.3.50.{i}": sha256(parts[i - 1]) for i in range(1, 8)}
        expected["1.2.3.50.99"] = sha256(parts[7])
        assert {k: v["sha256"] for k, v in by_uid.items()} == expected
        assert by_uid["1.2.3.50.99"]["size"] == len(parts[7])
        assert by_uid["1.2.3.50.2"]["series_instance_uid"] == f"{STUDY}.1"
        # the submitter pipeline's own client reads the same answer
        assert fetch_inventory(client).sha256 == expected
        # keyset pages
        seen: list[str] = []
        after = 0
        while True:
            page = client.get("/intake/api/verification", params={"limit": 3, "after": after})
            seen += [item["sop_instance_uid"] for item in page.json()["instances"]]
            if page.json()["next"] is None:
                break
            after = page.json()["next"]
        assert sorted(seen) == sorted(expected)
        one = client.get("/intake/api/verification", params={"series": f"{STUDY}.2"}).json()
        assert one["counts"] == {"patients": 1, "studies": 1, "series": 1, "instances": 4}
        assert {i["sop_instance_uid"] for i in one["instances"]} == {
            "1.2.3.50.1", "1.2.3.50.3", "1.2.3.50.5", "1.2.3.50.7"}  # fmt: skip


def test_verification_is_scoped_to_the_token(url: str, intake_context: IntakeContext) -> None:
    with _client(url, token_for(intake_context, "kit-a", "submitter")) as client:
        assert _stow(client, [instance_bytes(sop_uid="1.2.3.52.1")]).status_code == 200
    with _client(url, token_for(intake_context, "kit-b", "submitter", site="SITE-B")) as other:
        body = other.get("/intake/api/verification").json()
        assert body["counts"]["instances"] == 0
        assert body["instances"] == []
        asked = other.get("/intake/api/verification", params={"site": SITE})
        assert asked.status_code == 403
    anonymous = httpx.get(f"{url}/intake/api/verification")
    assert anonymous.status_code == 401
    curator = token_for(intake_context, "cur", "curator", site=None)
    with _client(url, curator) as client:
        assert client.get("/intake/api/verification").status_code == 400
        named = client.get("/intake/api/verification", params={"site": SITE})
        assert named.json()["counts"]["instances"] == 1


def test_stow_records_sha256_and_reports_coercion_warning(
    url: str, intake_context: IntakeContext
) -> None:
    long_versions = ["v" * 60] * 5  # each value valid, joined too long for the index column
    data = instance_bytes(sop_uid="1.2.3.53.1", SoftwareVersions=long_versions)
    with _client(url, token_for(intake_context, "kit-a", "submitter")) as client:
        response = _stow(client, [data])
    assert response.status_code == 202
    [item] = response.json()["00081199"]["Value"]
    assert item["00081196"] == {"vr": "US", "Value": [0xB000]}
    with intake_context.db.sessions() as db:
        row = db.scalar(select(Instance))
    assert row is not None
    assert (row.sha256, row.size) == (sha256(data), len(data))
    assert row.header["00181020"]["Value"] == long_versions  # the header keeps what was sent


def test_status_counts_today_total_held_and_last_arrival(
    url: str, intake_context: IntakeContext
) -> None:
    with _client(url, token_for(intake_context, "kit-a", "submitter")) as client:
        _stow(client, [instance_bytes(sop_uid=f"1.2.3.54.{i}") for i in range(3)]
              + [instance_bytes(Modality="ct"), b"junk" * 40])  # fmt: skip
    viewer = token_for(intake_context, "cur", "curator", site=None)
    with _client(url, viewer) as client:
        body = client.get("/intake/api/status").json()
        rows = {(r["collection"], r["site"]): r for r in body["sites"]}
        mine = rows[(COLLECTION, SITE)]
        assert (mine["instances_total"], mine["instances_today"]) == (3, 3)
        assert mine["quarantined"] == {"unreadable": 1, "vr_violation": 1}
        assert mine["last_arrival"] is not None
        assert mine["last_stored_at"] is not None
        assert rows[(COLLECTION, "SITE-B")]["instances_total"] == 0
        narrowed = client.get("/intake/api/status", params={"site": "SITE-B"}).json()
        assert [r["site"] for r in narrowed["sites"]] == ["SITE-B"]
    with _client(url, token_for(intake_context, "kit-s", "submitter")) as submitter:
        assert submitter.get("/intake/api/status").status_code == 403
    stranger = token_for(intake_context, "cur-x", "curator", collection="OTHER", site=None)
    with _client(url, stranger) as client:
        assert client.get("/intake/api/status").json()["sites"] == []


def test_quarantine_api_lists_shows_releases_and_deletes(
    url: str, intake_context: IntakeContext
) -> None:
    with _client(url, token_for(intake_context, "kit-b", "submitter", site="SITE-B")) as client:
        answer = _stow(client, [instance_bytes(sop_uid="1.2.3.55.1"), b"junk" * 40])
    assert answer.status_code == 409
    manager = token_for(intake_context, "boss", "manager", site=None)
    curator = token_for(intake_context, "cur", "curator", site=None)
    with _client(url, manager) as client:
        items = client.get("/intake/api/quarantine").json()["items"]
        by_reason = {i["reason"]: i for i in items}
        assert set(by_reason) == {"deid_provenance", "unreadable"}
        held = by_reason["deid_provenance"]
        shown = client.get(f"/intake/api/quarantine/{held['id']}").json()
        assert shown["attributes"]["SOPInstanceUID"] == "1.2.3.55.1"
        assert shown["attributes"]["PatientID"] == "PAT-001"
        still = client.post(f"/intake/api/quarantine/{held['id']}/release").json()
        assert still["result"]["outcome"] == "quarantined"
        assert still["item"]["state"] == "held"
        with intake_context.db.sessions() as db, db.begin():
            db.add(SitePolicy(collection=COLLECTION, site="SITE-B", require_deid_provenance=False))
        done = client.post(f"/intake/api/quarantine/{held['id']}/release").json()
        assert (done["result"]["outcome"], done["item"]["state"]) == ("stored", "released")
        again = client.post(f"/intake/api/quarantine/{held['id']}/release")
        assert again.status_code == 400
        junk = by_reason["unreadable"]
        with _client(url, curator) as weaker:
            assert weaker.get(f"/intake/api/quarantine/{junk['id']}").status_code == 200
            assert weaker.delete(f"/intake/api/quarantine/{junk['id']}").status_code == 403
        gone = client.delete(f"/intake/api/quarantine/{junk['id']}")
        assert gone.json()["item"]["state"] == "deleted"
        assert client.get("/intake/api/quarantine").json()["items"] == []
        everything = client.get("/intake/api/quarantine", params={"state": "deleted"}).json()
        assert [i["id"] for i in everything["items"]] == [junk["id"]]
        assert client.get("/intake/api/quarantine/999999").status_code == 404
    with intake_context.db.sessions() as db:
        stored = db.scalars(select(Instance.sop_instance_uid)).all()
        deleted = db.get(QuarantineItem, junk["id"])
        assert deleted is not None
        assert not intake_context.store.exists(deleted.blob_key)
    assert stored == ["1.2.3.55.1"]
    other_manager = token_for(intake_context, "boss2", "manager", collection="OTHER", site=None)
    with _client(url, other_manager) as client:
        assert client.get("/intake/api/quarantine").json()["items"] == []
        assert client.get(f"/intake/api/quarantine/{junk['id']}").status_code == 403
