"""An intake context on each database backend, with one collection, one site and one peer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomhub.context import IntakeContext
from dicomhub.core.db import Collection, Site
from dicomhub.core.db.intake import DimsePeer, SitePolicy
from dicomhub.intake.service import IntakeService
from dicomhub.settings import load_settings

COLLECTION = "LUNG-CT"
SITE = "SITE-A"
PEER = "SITE_A_SCU"


@pytest.fixture
def intake_context(migrated_db_url: str, tmp_path: Path) -> Iterator[IntakeContext]:
    settings = load_settings(
        data_dir=tmp_path / "var",
        intake_database_url=migrated_db_url,
        public_database_url=migrated_db_url,
        secret_key="test-secret-key-0123456789",
        dimse_port=0,
    ).intake()
    context = IntakeContext.from_settings(settings)
    with context.db.sessions() as db, db.begin():
        collection = Collection(name=COLLECTION)
        db.add(collection)
        db.flush()
        db.add(Site(collection_id=collection.id, name=SITE))
        db.add(Site(collection_id=collection.id, name="SITE-B"))
        db.add(SitePolicy(collection=COLLECTION, site=SITE, require_deid_provenance=False))
        db.add(DimsePeer(ae_title=PEER, collection=COLLECTION, site=SITE))
    yield context
    context.close()


@pytest.fixture
def service(intake_context: IntakeContext) -> IntakeService:
    return IntakeService(intake_context)
