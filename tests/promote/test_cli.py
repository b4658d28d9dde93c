"""`dicomhub promote`: the command runs the job and prints the release."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dicomhub.cli.main import app
from tests.promote import helpers
from tests.promote.conftest import Sides
from tests.promote.test_resume import cli_env


def test_promote_command(ingested: Sides, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in cli_env(ingested.settings).items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["promote", "--collection", "LUNG1"])
    assert result.exit_code == 0, result.output
    assert "release 1 of LUNG1" in result.output
    assert "succeeded" in result.output
    assert helpers.counts(ingested.settings.public_db)["instances"] > 0
    again = CliRunner().invoke(app, ["promote", "--collection", "LUNG1"])
    assert again.exit_code == 0, again.output
    assert "nothing changed since this release" in again.output


def test_promote_command_refuses_unknown_collection(
    ingested: Sides, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in cli_env(ingested.settings).items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["promote", "--collection", "NOPE"])
    assert result.exit_code == 1
    assert "no collection named 'NOPE'" in result.output
