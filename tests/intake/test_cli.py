"""`dicomhub intake` and `dicomhub quarantine` on the intake database."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dicomhub.cli.main import app
from dicomhub.context import IntakeContext
from dicomhub.core.db.intake import SitePolicy
from dicomhub.intake.origin import Origin
from dicomhub.intake.service import IntakeService
from tests.core.dicom.build import instance_bytes
from tests.intake.conftest import COLLECTION, SITE
from tests.intake.servers import server_env


@pytest.fixture
def cli(intake_context: IntakeContext, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for key, value in server_env(intake_context).items():
        if key.startswith("DICOMHUB_"):
            monkeypatch.setenv(key, value)
    return CliRunner()


def _ok(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_peers_and_sites(cli: CliRunner, intake_context: IntakeContext) -> None:
    _ok(cli, "intake", "peers", "add", "NEW_SCU", "NEWCOL", "S9")
    assert "NEW_SCU" in _ok(cli, "intake", "peers", "list")
    again = cli.invoke(app, ["intake", "peers", "add", "NEW_SCU", "NEWCOL", "S9"])
    assert again.exit_code == 1
    assert "already registered" in again.output
    bad = cli.invoke(app, ["intake", "peers", "add", "WAY_TOO_LONG_AE_TITLE", "NEWCOL", "S9"])
    assert bad.exit_code == 1
    _ok(cli, "intake", "peers", "remove", "NEW_SCU")
    assert "NEW_SCU" not in _ok(cli, "intake", "peers", "list")
    refused = cli.invoke(app, ["intake", "sites", "add", "NEWCOL", "S9"])
    assert refused.exit_code == 1  # provenance required by default, but no kit given
    _ok(cli, "intake", "sites", "add", "NEWCOL", "S9", "--kit-id", "kit-1", "--recipe-hash", "ab")
    _ok(cli, "intake", "sites", "add", "NEWCOL", "S9", "--no-require-deid-provenance")
    listing = _ok(cli, "intake", "sites", "list")
    assert "NEWCOL" in listing
    assert "off" in listing
    with intake_context.db.sessions() as db:
        policy = db.query(SitePolicy).filter_by(collection="NEWCOL").one()
    assert (policy.require_deid_provenance, policy.kit_id) == (False, None)


def test_status_and_quarantine_release_after_a_policy_change(
    cli: CliRunner, intake_context: IntakeContext
) -> None:
    service = IntakeService(intake_context)
    session = service.open_session(Origin("cli", "t", "", COLLECTION, "SITE-B"))
    held = service.store(session, instance_bytes(sop_uid="1.2.3.90.1"))
    assert held.reason == "deid_provenance"
    mine = service.open_session(Origin("cli", "t", "", COLLECTION, SITE))
    assert service.store(mine, instance_bytes(sop_uid="1.2.3.90.2")).accepted
    rows = json.loads(_ok(cli, "intake", "status", "--json"))
    by_site = {row["site"]: row for row in rows}
    assert by_site[SITE]["instances_today"] == 1
    assert by_site["SITE-B"]["quarantined"] == {"deid_provenance": 1}
    assert "SITE-B" in _ok(cli, "intake", "status")  # the table (cells fold when narrow)
    assert "deid_" in _ok(cli, "quarantine", "list")
    [listed] = json.loads(_ok(cli, "quarantine", "list", "--json"))
    assert listed["sop_instance_uid"] == "1.2.3.90.1"
    shown = json.loads(_ok(cli, "quarantine", "show", str(held.quarantine_id), "--json"))
    assert shown["attributes"]["SOPInstanceUID"] == "1.2.3.90.1"
    still = cli.invoke(app, ["quarantine", "release", str(held.quarantine_id)])
    assert still.exit_code == 2
    assert "still held" in still.output
    _ok(cli, "intake", "sites", "add", COLLECTION, "SITE-B", "--no-require-deid-provenance")
    assert "released" in _ok(cli, "quarantine", "release", str(held.quarantine_id))
    assert json.loads(_ok(cli, "quarantine", "list", "--json")) == []
    junk = service.store(mine, b"junk" * 50)
    _ok(cli, "quarantine", "delete", str(junk.quarantine_id), "--yes")
    deleted = json.loads(_ok(cli, "quarantine", "list", "--state", "deleted", "--json"))
    assert [item["id"] for item in deleted] == [junk.quarantine_id]
