"""`dicomhub sample make` through typer's runner, including the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dicomhub.cli.sample import app
from dicomhub.errors import BadRequest
from dicomhub.sample import SampleManifest, make_sample

runner = CliRunner()


def test_make_writes_sample_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["make", str(out), "--patients", "1", "--seed", "3", "--small"])
    assert result.exit_code == 0, result.output
    manifest = SampleManifest.read(out / "manifest.json")
    assert manifest.seed == 3
    assert manifest.small
    assert len(manifest.patients) == 1
    assert f"wrote {len(manifest.files)} files" in result.output
    assert "JPEG-LS" in result.output


@pytest.mark.parametrize("count", ["0", "-2"])
def test_patients_must_be_positive(tmp_path: Path, count: str) -> None:
    result = runner.invoke(app, ["make", str(tmp_path / "out"), "--patients", count])
    assert result.exit_code == 2
    assert "--patients" in result.output
    assert not (tmp_path / "out").exists()


def test_out_is_a_regular_file(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    result = runner.invoke(app, ["make", str(target), "--small"])
    assert result.exit_code == 1
    assert "not a directory" in result.output
    assert target.read_text() == "keep me"


def test_out_not_empty(tmp_path: Path) -> None:
    (tmp_path / "other.txt").write_text("x")
    result = runner.invoke(app, ["make", str(tmp_path), "--small"])
    assert result.exit_code == 1
    assert "not empty" in result.output


def test_library_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="at least 1"):
        make_sample(tmp_path / "out", patients=0)
    (tmp_path / "f").write_text("")
    with pytest.raises(BadRequest, match="not a directory"):
        make_sample(tmp_path / "f", patients=1)
