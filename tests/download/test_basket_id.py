"""SOURCE = a basket id: the owner's basket through ``/api/baskets/<id>/manifest.tcia``."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import select

from dicomhub.core.db import Basket, User, make_engine, make_sessionmaker
from tests.download.helpers import check_md5s, run_cli, series_folders
from tests.download.site import Site
from tests.fixtures.public_data import BREAST, LUNG


def _alice_basket(site: Site) -> int:
    engine = make_engine(site.db_url)
    try:
        with make_sessionmaker(engine)() as session:
            found = session.scalar(
                select(Basket.id)
                .join(User, User.id == Basket.user_id)
                .where(User.username == "alice")
            )
            assert found is not None
            return int(found)
    finally:
        engine.dispose()


def test_basket_id_with_the_owners_token(site: Site, tmp_path: Path) -> None:
    uids = site.catalogue.series[BREAST][:1] + site.catalogue.series[LUNG][:2]
    auth = {"Authorization": f"Bearer {site.alice_token}"}
    added = httpx.post(f"{site.url}/api/basket/series", json={"uids": uids}, headers=auth)
    assert added.status_code == 200, added.text
    ident = _alice_basket(site)
    dest = tmp_path / "out"
    result = run_cli(str(ident), "--server", site.url, "--dest", dest, "-q",
                     "--token", site.alice_token)  # fmt: skip
    assert result.exit_code == 0, result.output
    folders = series_folders(dest)
    assert set(folders) == set(uids)
    for folder in folders.values():
        check_md5s(folder)
    asked = {path for (path, _uid), n in site.recorder.requests.items() if n}
    assert "manifest.tcia" in asked
    # without the owner's credential the basket is not there, and nothing is fetched
    stranger = run_cli(f"basket:{ident}", "--server", site.url, "--dest", tmp_path / "x", "-q")
    assert stranger.exit_code == 1
    assert f"basket {ident} was not found" in " ".join(stranger.output.split())
    missing = run_cli("999999", "--server", site.url, "--dest", tmp_path / "y", "-q",
                      "--token", site.alice_token)  # fmt: skip
    assert missing.exit_code == 1
    assert "basket 999999 was not found" in " ".join(missing.output.split())
