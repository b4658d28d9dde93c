"""Guest baskets untouched for ``guest_basket_days`` are swept out; users' baskets stay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from dicomhub.core.db import Basket, session_scope, utcnow
from dicomhub.errors import ConfigurationError
from dicomhub.publish import routes
from dicomhub.settings import load_settings
from tests.fixtures.public_data import LUNG
from tests.publish.conftest import PublicSite


def _age_all_baskets(site: PublicSite, days: int) -> None:
    with session_scope(site.context.db.sessions) as session:
        session.execute(update(Basket).values(updated_at=utcnow() - timedelta(days=days)))


def test_stale_guest_baskets_go_on_the_next_guest_add(public_site: PublicSite) -> None:
    uids = public_site.catalogue.series[LUNG]
    old_guest, alice, new_guest = public_site.client(), public_site.login("alice"), None
    try:
        assert old_guest.post("/api/basket/series", json={"uids": uids[:2]}).status_code == 200
        assert alice.post("/api/basket/series", json={"uids": uids[:3]}).status_code == 200
        assert public_site.context.settings.guest_basket_days == 30
        _age_all_baskets(public_site, 31)

        routes._last_sweep.clear()  # as if the process had just started
        new_guest = public_site.client()
        assert new_guest.post("/api/basket/series", json={"uids": uids[:1]}).status_code == 200
        assert old_guest.get("/api/basket").json()["series"] == 0
        assert alice.get("/api/basket").json()["series"] == 3
        assert new_guest.get("/api/basket").json()["series"] == 1

        # A guest basket younger than the limit stays, and the sweep is not run on every add.
        _age_all_baskets(public_site, 29)
        routes._last_sweep.clear()
        assert old_guest.post("/api/basket/series", json={"uids": uids[:1]}).status_code == 200
        assert new_guest.get("/api/basket").json()["series"] == 1
        _age_all_baskets(public_site, 40)
        assert old_guest.post("/api/basket/series", json={"uids": uids[1:2]}).status_code == 200
        assert new_guest.get("/api/basket").json()["series"] == 1
    finally:
        for client in (old_guest, alice, new_guest):
            if client is not None:
                client.close()


@pytest.mark.parametrize("days", [0, -1, 5000])
def test_guest_basket_days_must_be_sensible(days: int) -> None:
    with pytest.raises(ConfigurationError, match="GUEST_BASKET_DAYS"):
        load_settings(secret_key="s" * 32, guest_basket_days=days)
