"""Submit to dicomhub's own intake over HTTPS: sent once, verified by sha256, resumable."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from dicomhub.core.db import Instance
from dicomhub.sample import SampleManifest, make_sample
from dicomhub.submit.idmap import load_idmap
from dicomhub.submit.kit import load_kit
from dicomhub.submit.pipeline import Options, Pipeline
from dicomhub.submit.report import Summary
from dicomhub.submit.upload import StowClient, make_client
from dicomhub.submit.verify import fetch_inventory
from tests.submit.helpers import first_ct, plant_bad_inputs, write_idmap
from tests.submit.intake_server import Intake
from tests.submit.test_resilience import stage_counts


def submit(intake: Intake, idmap: Path, folder: Path, work: Path, batch: int = 10) -> Summary:
    kit = load_kit(intake.kit)
    body = kit.body
    with make_client(body.intake_url, body.credential.get_secret_value(), body.ca_bundle) as client:
        stow = StowClient(client, retries=2, backoff=0.1)
        options = Options(folders=[folder], work=work, workers=2, batch_size=batch)
        pipeline = Pipeline(kit, load_idmap(idmap), options, stow=stow,
                            inventory=lambda: fetch_inventory(client).sha256)  # fmt: skip
        return pipeline.run()


def sent_hashes(work: Path) -> dict[str, str]:
    with sqlite3.connect(work / "state.sqlite3") as conn:
        rows = conn.execute(
            "SELECT sop_uid, sha256 FROM files WHERE stage IN ('sent', 'verified')"
        ).fetchall()
    return dict(rows)


def verified_count(work: Path) -> int:
    with sqlite3.connect(work / "state.sqlite3") as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM files WHERE stage='verified'").fetchone()
    return int(count)


IMPLICIT = "Implicit VR Little Endian"


def copy_files(sample: tuple[Path, SampleManifest], dst: Path, *, implicit: bool) -> int:
    """Copy the sample's files of one kind; return how many the intake should take."""
    count = 0
    for entry in sample[1].files:
        if (entry.transfer_syntax_name == IMPLICIT) != implicit:
            continue
        target = dst / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((sample[0] / entry.path).read_bytes())
        count += entry.modality not in ("US", "OT")
    return count


def check_stored(summary: Summary, intake: Intake, work: Path, expected: int) -> None:
    stored = intake.instances()
    assert summary.rejected == {}, intake.quarantined()
    assert len(stored) == expected
    assert sent_hashes(work) == stored  # what intake holds is exactly what was sent
    # the intake's verification endpoint answered and every instance ended verified
    assert summary.unverified is None
    assert summary.stages.get("verified") == expected, summary.stages
    assert "sent" not in summary.stages
    assert summary.complete
    assert verified_count(work) == expected


def test_submit_sends_each_instance_once(
    intake: Intake, tmp_path: Path, sample: tuple[Path, SampleManifest]
) -> None:
    src = tmp_path / "src"
    expected = copy_files(sample, src, implicit=False)
    plant_bad_inputs(src, first_ct(src))
    idmap = write_idmap(tmp_path / "map.csv", sample[1])
    summary = submit(intake, idmap, src, tmp_path / "work")
    check_stored(summary, intake, tmp_path / "work", expected)
    assert summary.sent_this_run == expected
    assert summary.quarantined["truncated"] == 1
    stored = intake.instances()
    again = submit(intake, idmap, src, tmp_path / "work")
    assert again.sent_this_run == 0
    assert intake.instances() == stored


def test_implicit_vr_instances_pass_the_provenance_check(
    intake: Intake, tmp_path: Path, sample: tuple[Path, SampleManifest]
) -> None:
    expected = copy_files(sample, tmp_path / "src", implicit=True)
    idmap = write_idmap(tmp_path / "map.csv", sample[1])
    summary = submit(intake, idmap, tmp_path / "src", tmp_path / "work")
    check_stored(summary, intake, tmp_path / "work", expected)


@pytest.mark.slow
def test_killed_submission_resumes_to_complete_without_duplicates(
    intake: Intake, tmp_path: Path
) -> None:
    manifest = make_sample(tmp_path / "all", patients=4, seed=21, small=True)
    expected = copy_files((tmp_path / "all", manifest), tmp_path / "src", implicit=False)
    idmap = write_idmap(tmp_path / "map.csv", manifest)
    work = tmp_path / "work"
    args = [sys.executable, "-m", "dicomhub", "submit", "run", str(tmp_path / "src"), "--kit",
            str(intake.kit), "--idmap", str(idmap), "--work", str(work), "--workers", "2",
            "--batch-size", "5"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOMHUB_")}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=env)  # fmt: skip
    deadline = time.monotonic() + 120
    while stage_counts(work / "state.sqlite3").get("sent", 0) < 10:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = stage_counts(work / "state.sqlite3")
    assert before.get("seen", 0) + before.get("deidentified", 0) > 0, before
    done = subprocess.run(args, capture_output=True, text=True, check=False, env=env)
    after = stage_counts(work / "state.sqlite3")
    stored = intake.instances()
    assert len(stored) == expected, done.stdout + done.stderr
    assert sent_hashes(work) == stored
    assert "seen" not in after
    assert "deidentified" not in after
    assert "rejected" not in after
    assert "sent" not in after
    assert after["verified"] == expected
    with intake.context.db.sessions() as db:
        rows = db.scalars(select(Instance.sop_instance_uid)).all()
    assert len(rows) == len(set(rows)) == expected
