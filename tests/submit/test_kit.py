"""Kits: sealed and signed, refused with a clear message when corrupt, edited or expired."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dicomhub.submit.kit import (
    KitError,
    canonical,
    default_date_offset,
    load_kit,
    parse_kit,
    verify_signature,
)
from tests.submit.helpers import SECRET, kit_body, write_test_kit


def test_kit_round_trip_gives_the_recipe(kit_path: Path) -> None:
    kit = load_kit(kit_path)
    recipe = kit.recipe()
    assert (kit.collection, kit.site) == ("LUNG1", "S1")
    assert recipe.kit_id == kit.kit_id
    assert recipe.retain_long_modified_dates
    assert recipe.date_offset_days == default_date_offset(SECRET, "LUNG1", "S1")
    assert -3650 <= recipe.date_offset_days <= -1826
    assert verify_signature(kit, SECRET)
    assert not verify_signature(kit, "another archive's secret key")
    assert os.stat(kit_path).st_mode & 0o777 == 0o600


def test_same_site_gets_the_same_offset_and_uid_secret(tmp_path: Path) -> None:
    a, b = kit_body(), kit_body()
    assert a.kit_id != b.kit_id
    assert a.recipe["date_offset_days"] == b.recipe["date_offset_days"]
    assert a.uid_secret == b.uid_secret
    other_site = kit_body(site="S2")
    assert other_site.uid_secret == a.uid_secret  # one UID secret per collection
    assert kit_body(collection="BRAIN").uid_secret != a.uid_secret


def test_edited_kit_is_refused(kit_path: Path) -> None:
    doc = json.loads(kit_path.read_text())
    doc["kit"]["recipe"]["date_offset_days"] = 0
    kit_path.write_text(json.dumps(doc))
    with pytest.raises(KitError, match="modified or is corrupt"):
        load_kit(kit_path)


def test_edited_kit_with_recomputed_checksum_is_not_signed(kit_path: Path) -> None:
    import hashlib

    from dicomhub.submit.kit import canonical

    doc = json.loads(kit_path.read_text())
    doc["kit"]["burned_in"]["risky_modalities"] = []
    doc["sha256"] = hashlib.sha256(canonical(doc["kit"])).hexdigest()
    kit_path.write_text(json.dumps(doc))
    assert not verify_signature(load_kit(kit_path), SECRET)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda t: t[: len(t) // 2], "not valid JSON"),
        (lambda t: "", "not valid JSON"),
        (lambda t: b"\xff\xfe garbage".decode("latin-1"), "not valid JSON"),
        (lambda t: json.dumps({"format": "other"}), "expected format"),
        (lambda t: json.dumps({"format": "dicomhub-kit/1"}), "damaged"),
    ],
)
def test_corrupt_kit_is_refused(kit_path: Path, damage: object, message: str) -> None:
    kit_path.write_text(damage(kit_path.read_text()))  # type: ignore[operator]
    with pytest.raises(KitError, match=message):
        load_kit(kit_path)


def test_missing_kit(tmp_path: Path) -> None:
    with pytest.raises(KitError, match="cannot read the kit"):
        load_kit(tmp_path / "nope.json")


def test_expired_kit_is_refused(tmp_path: Path) -> None:
    past = datetime.now(UTC) - timedelta(days=1)
    path = write_test_kit(tmp_path / "old.json", expires_at=past)
    with pytest.raises(KitError, match="expired on"):
        load_kit(path)
    later = datetime.now(UTC) + timedelta(days=1)
    assert load_kit(write_test_kit(tmp_path / "new.json", expires_at=later))


def test_plain_http_intake_is_refused() -> None:
    with pytest.raises(KitError, match="https"):
        kit_body(intake_url="http://127.0.0.1:8081")


def test_bad_recipe_is_refused() -> None:
    with pytest.raises(KitError, match="uid_root"):
        kit_body(uid_root="1.02.3")
    with pytest.raises(KitError, match="full dates or modified"):
        kit_body(recipe={"retain_long_full_dates": True})


def test_kit_never_overwritten(kit_path: Path) -> None:
    with pytest.raises(FileExistsError):
        write_test_kit(kit_path)


def test_parse_kit_names_its_source() -> None:
    with pytest.raises(KitError, match=r"^the upload is not a kit"):
        parse_kit(b"{", source="the upload")


def test_kit_sponsor_reaches_the_worker_and_old_kits_still_load(tmp_path: Path) -> None:
    sponsored = load_kit(write_test_kit(tmp_path / "a.json", sponsor="Example Cancer Network"))
    assert sponsored.body.sponsor == "Example Cancer Network"
    document = json.loads((tmp_path / "a.json").read_text())
    assert "sponsor" in document["kit"]
    plain = load_kit(write_test_kit(tmp_path / "b.json"))
    assert plain.body.sponsor is None
    # a kit written before the field existed is sealed over a body without it
    old = json.loads((tmp_path / "b.json").read_text())
    del old["kit"]["sponsor"]
    old["sha256"] = hashlib.sha256(canonical(old["kit"])).hexdigest()
    (tmp_path / "c.json").write_text(json.dumps(old))
    assert load_kit(tmp_path / "c.json").body.sponsor is None


def _resealed(kit_path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Edit the kit body and recompute its checksum, as a careful tamperer would."""
    doc = json.loads(kit_path.read_text())
    change(doc["kit"])
    doc["sha256"] = hashlib.sha256(canonical(doc["kit"])).hexdigest()
    kit_path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda k: k.update(extra="x"), "is invalid: extra"),
        (lambda k: k.pop("credential"), "is invalid: credential"),
        (lambda k: k.update(expires_at="someday"), "is invalid: expires_at"),
        (lambda k: k.update(expires_at="2001-01-01T00:00:00Z"), "expired on 2001-01-01"),
        (lambda k: k["recipe"].update(uid_root="1.02"), "recipe is invalid: uid_root"),
        (lambda k: k["recipe"].update(clean_pixels=[{"regions": []}]), "recipe is invalid"),
        (lambda k: k["burned_in"].update(unknown=1), "is invalid: burned_in"),
        (lambda k: k.update(intake_url="http://x"), "is invalid: intake_url"),
    ],
)
def test_resealed_kit_is_refused_with_the_reason(
    kit_path: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    _resealed(kit_path, change)
    with pytest.raises(KitError, match=message):
        load_kit(kit_path)


def test_resealed_kit_loads_but_fails_the_signature(kit_path: Path) -> None:
    _resealed(kit_path, lambda k: k.update(sponsor="Someone Else"))
    assert not verify_signature(load_kit(kit_path), SECRET)
    assert not verify_signature(load_kit(write_test_kit(kit_path.with_name("b.json"))), "other")
