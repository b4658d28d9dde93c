"""`dicomhub submit` and `dicomhub kits` as a site and an archive operator use them."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner, Result

from dicomhub.cli import kits, submit
from dicomhub.sample import SampleManifest
from dicomhub.submit.kit import load_kit
from tests.submit.intake_server import Intake

root = typer.Typer()
root.add_typer(submit.app, name="submit")
root.add_typer(kits.app, name="kits")


def run(*args: str) -> Result:
    return CliRunner().invoke(root, list(args))


def test_dry_run_then_quarantine_listing(
    tmp_path: Path, sample: tuple[Path, SampleManifest], kit_path: Path, idmap_path: Path
) -> None:
    work, out = str(tmp_path / "work"), str(tmp_path / "out")
    result = run("submit", "run", str(sample[0]), "--kit", str(kit_path), "--idmap",
                 str(idmap_path), "--work", work, "--dry-run", "--out", out, "-j", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "dry run complete" in result.output
    assert "manifest.json" in result.output  # the non-DICOM file is listed
    listing = run("submit", "quarantine", "--kit", str(kit_path), "--work", work, "--out", out)
    assert listing.exit_code == 0, listing.output
    assert "burned_in" in listing.output
    assert "4 file(s) quarantined" in listing.output


def test_tampered_kit_is_one_clear_line(tmp_path: Path, kit_path: Path, idmap_path: Path) -> None:
    doc = json.loads(kit_path.read_text())
    doc["kit"]["site"] = "S2"
    kit_path.write_text(json.dumps(doc))
    result = run("submit", "run", str(tmp_path), "--kit", str(kit_path), "--idmap",
                 str(idmap_path), "--dry-run", "--out", str(tmp_path / "o"))  # fmt: skip
    assert result.exit_code == 1
    assert "modified or is corrupt" in result.stderr
    assert "Traceback" not in result.output
    assert run("submit", "check-kit", str(kit_path)).exit_code == 1


def test_check_kit_and_template(tmp_path: Path, kit_path: Path) -> None:
    shown = run("submit", "check-kit", str(kit_path))
    assert shown.exit_code == 0, shown.output
    assert "LUNG1/S1" in shown.output
    assert "Modified Dates" in shown.output
    made = run("submit", "idmap-template", "--kit", str(kit_path), str(tmp_path / "m.csv"))
    assert made.exit_code == 0, made.output
    assert (tmp_path / "m.csv").read_text().startswith("submitter_patient_id,")


def test_kit_needs_a_token_for_exactly_that_site(intake: Intake, tmp_path: Path) -> None:
    token = submitter_token_other(intake)
    result = run("kits", "create", "--collection", "LUNG1", "--site", "S2", "--token", token,
                 "--intake-url", intake.url, "--out", str(tmp_path / "k.json"))  # fmt: skip
    assert result.exit_code == 1
    assert "not LUNG1/S2" in result.stderr
    bad = run("kits", "create", "--collection", "LUNG1", "--site", "S1", "--token", "dh_x_y",
              "--intake-url", intake.url, "--out", str(tmp_path / "k2.json"))  # fmt: skip
    assert bad.exit_code == 1
    assert "API token" in bad.stderr
    assert run("kits", "verify", str(intake.kit)).exit_code == 0


def submitter_token_other(intake: Intake) -> str:
    # The fixture's user already exists; a second token of the same S1 scope will do.
    from dicomhub.core.auth import create_token, get_user

    with intake.context.accounts.sessions() as db, db.begin():
        _row, token = create_token(
            db, get_user(db, "site-s1"), "submitter", "LUNG1", "S1", None,
            secret_key=intake.context.settings.secret_key, actor="admin", origin="test",
        )  # fmt: skip
    return token


def test_kit_sponsor_filter_and_pixel_rules(intake: Intake, tmp_path: Path) -> None:
    token = submitter_token_other(intake)
    rules = tmp_path / "filter.toml"
    rules.write_text('[filter]\nmanufacturers = ["Acme Imaging"]\nrisky_modalities = ["US"]\n')
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        "[recipe]\nclean_descriptors = true\n"
        '[[recipe.clean_pixels]]\nmodality = "US"\nregions = [[0, 0, 640, 40]]\n'
    )
    out = tmp_path / "k.json"
    made = run("kits", "create", "--collection", "LUNG1", "--site", "S1", "--token", token,
               "--intake-url", intake.url, "--out", str(out), "--sponsor", "Example Network",
               "--filter", str(rules), "--recipe", str(recipe))  # fmt: skip
    assert made.exit_code == 0, made.output
    kit = load_kit(out)
    assert kit.body.sponsor == "Example Network"
    assert kit.body.burned_in.manufacturers == ("Acme Imaging",)
    assert kit.body.burned_in.risky_modalities == ("US",)
    assert kit.recipe().clean_pixels[0].regions == ((0, 0, 640, 40),)
    shown = run("submit", "check-kit", str(out))
    assert "clean pixel data of US: blank 640x40 at (0, 0)" in shown.output
    rules.write_text("[filter]\nrisky_modalities = 3\n")
    bad = run("kits", "create", "--collection", "LUNG1", "--site", "S1", "--token", token,
              "--intake-url", intake.url, "--out", str(tmp_path / "k2.json"),
              "--filter", str(rules))  # fmt: skip
    assert bad.exit_code == 1
    assert "the filter" in bad.stderr
    assert "risky_modalities" in bad.stderr
    assert not (tmp_path / "k2.json").exists()
