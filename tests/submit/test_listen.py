"""`dicomhub submit listen`: C-STORE from a PACS (dcmtk, pynetdicom) into the pipeline."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pydicom import dcmread
from typer.testing import CliRunner

from dicomhub.cli.main import app
from dicomhub.sample import SampleManifest
from dicomhub.submit import listen
from dicomhub.submit.idmap import load_idmap
from dicomhub.submit.kit import load_kit
from dicomhub.submit.pipeline import Options, Pipeline, WorkFolderBusy, _lock_folder, state_folder
from tests.submit.intake_server import Intake
from tests.submit.pacs import (
    LISTEN_AE,
    listener,
    need_dcmtk,
    pynetdicom_send,
    site_env,
    storescu,
    wait_for,
)
from tests.submit.test_end_to_end import sent_hashes
from tests.submit.test_resilience import small_disk, stage_counts  # noqa: F401  (a fixture)

UNCOMPRESSED = ("Explicit VR Little Endian", "Implicit VR Little Endian")
RISKY = ("US", "OT")  # the kit's burned-in filter keeps them at the site


def files_by_syntax(sample: tuple[Path, SampleManifest]) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for entry in sample[1].files:
        found.setdefault(entry.transfer_syntax_name, []).append(sample[0] / entry.path)
    return found


def received(work: Path) -> int:
    return sum(stage_counts(work / "state.sqlite3").values())


def test_listener_submits_what_a_pacs_sends_until_verified(
    intake: Intake, tmp_path: Path, sample: tuple[Path, SampleManifest], idmap_path: Path
) -> None:
    need_dcmtk()
    work = tmp_path / "work"
    groups = files_by_syntax(sample)
    total = len(sample[1].files)
    risky = sum(f.modality in RISKY for f in sample[1].files)
    args = ("--kit", str(intake.kit), "--idmap", str(idmap_path), "--work", str(work),
            "--settle", "0.3", "--workers", "2")  # fmt: skip
    with listener(*args, log=tmp_path / "listen.log") as running:
        # dcmtk proposes one set of syntaxes per association: uncompressed, then JPEG-LS
        plain = [p for name in UNCOMPRESSED for p in groups.pop(name)]
        out = storescu(running.port, plain, "-R")  # the SOP classes of the files
        assert "Failed" not in out, out
        out = storescu(running.port, groups.pop("JPEG-LS Lossless Image Compression"), "-R", "-xt")
        assert "Failed" not in out, out
        # pynetdicom sends the rest as stored: JPEG 2000, RLE, deflated
        rest = [p for paths in groups.values() for p in paths]
        assert set(pynetdicom_send(running.port, rest).values()) == {0x0000}

        def done() -> bool:
            counts = stage_counts(work / "state.sqlite3")
            return counts.get("verified", 0) + counts.get("quarantined", 0) == total

        wait_for(done, "every instance verified or quarantined")
        assert running.stop() == 0, running.output()
    counts = stage_counts(work / "state.sqlite3")
    assert counts == {"verified": total - risky, "quarantined": risky}, running.output()
    stored = intake.instances()
    assert len(stored) == total - risky
    assert sent_hashes(work) == stored
    # verified copies left the spool; what stays at the site is what was quarantined
    assert len(list(listen.spool_folder(work).rglob("*.dcm"))) == risky
    assert f"stopped: {total} instance(s) received, 0 refused" in running.output()


def test_received_then_sent_by_submit_run_with_calling_titles_checked(
    intake: Intake, tmp_path: Path, sample: tuple[Path, SampleManifest], idmap_path: Path
) -> None:
    need_dcmtk()
    work = tmp_path / "work"
    files = files_by_syntax(sample)["Explicit VR Little Endian"]
    expected = sum(dcmread(p, stop_before_pixels=True).Modality not in RISKY for p in files)
    args = ("--kit", str(intake.kit), "--work", str(work), "--calling-ae", "PACS")
    with listener(*args, log=tmp_path / "listen.log") as running:
        echo = subprocess.run(["echoscu", "-aet", "PACS", "-aec", LISTEN_AE,
                               "127.0.0.1", str(running.port)], check=False)  # fmt: skip
        assert echo.returncode == 0
        refused = storescu(running.port, files[:1], aet="STRANGER")
        assert "Association Rejected" in refused, refused
        assert received(work) == 0
        out = storescu(running.port, files, "-R")
        assert "Failed" not in out, out
        assert received(work) == len(files)
        assert running.stop() == 0, running.output()
    assert "receiving only" in running.output()
    assert stage_counts(work / "state.sqlite3") == {"seen": len(files)}
    done = subprocess.run(
        [sys.executable, "-m", "dicomhub", "submit", "run", "--kit", str(intake.kit),
         "--idmap", str(idmap_path), "--work", str(work), "--workers", "2"],
        capture_output=True, text=True, check=False, env=site_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "submission complete and verified" in done.stdout
    assert stage_counts(work / "state.sqlite3")["verified"] == expected
    assert len(intake.instances()) == expected


@pytest.mark.slow
def test_full_disk_answers_out_of_resources_and_loses_no_acknowledged_instance(
    small_disk: Path,  # noqa: F811
    tmp_path: Path,
    sample: tuple[Path, SampleManifest],
    kit_path: Path,
) -> None:  # fmt: skip
    # room for the state database and some of the sample (1.5 MB), not all of it
    subprocess.run(["mount", "-o", "remount,size=768k", str(small_disk)], check=True)
    work = small_disk / "work"
    files = [sample[0] / f.path for f in sample[1].files]
    originals = {str(dcmread(p).SOPInstanceUID): p for p in files}
    with listener("--kit", str(kit_path), "--work", str(work),
                  log=tmp_path / "listen.log") as running:  # fmt: skip
        statuses = pynetdicom_send(running.port, files)
        # the abrupt end: whatever was acknowledged must already be durable
        assert running.stop(signal.SIGKILL) == -signal.SIGKILL
    acked = {uid for uid, status in statuses.items() if status == 0x0000}
    refused = {uid for uid, status in statuses.items() if status != 0x0000}
    assert acked, statuses
    assert refused, "the disk never filled"
    assert set(statuses[uid] for uid in refused) == {listen.OUT_OF_RESOURCES}
    assert_spooled(work, acked, originals)
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    with listener("--kit", str(kit_path), "--work", str(work),
                  log=tmp_path / "again.log") as running:  # fmt: skip
        again = pynetdicom_send(running.port, [originals[uid] for uid in sorted(refused)])
        assert set(again.values()) == {0x0000}
        assert running.stop() == 0
    assert_spooled(work, acked | refused, originals)


def assert_spooled(work: Path, uids: set[str], originals: dict[str, Path]) -> None:
    """Each of ``uids`` is one complete spool file with a ``seen`` row; nothing else is."""
    with sqlite3.connect(f"file:{work / 'state.sqlite3'}?mode=ro", uri=True) as conn:
        rows = dict(conn.execute("SELECT path, stage FROM files").fetchall())
    assert set(rows.values()) == {"seen"}
    spooled = {str(p): p for p in listen.spool_folder(work).rglob("*.dcm")}
    assert set(rows) == set(spooled)
    assert not list(listen.spool_folder(work).rglob(".*.tmp"))
    found = {}
    for path in spooled.values():
        ds = dcmread(path)
        found[str(ds.SOPInstanceUID)] = ds
    assert set(found) == uids
    for uid, ds in found.items():
        original = dcmread(originals[uid])
        assert ds.get("PixelData") == original.get("PixelData")
        assert ds.PatientID == original.PatientID


def test_spool_store_is_durable_and_adopts_what_a_crash_left(
    tmp_path: Path, kit_path: Path, sample: tuple[Path, SampleManifest]
) -> None:
    kit = load_kit(kit_path)
    source = sample[0] / sample[1].files[0].path
    spool = listen.Spool(tmp_path / "work", kit)
    try:
        assert spool.store(source.read_bytes(), "1.2.3.4") == listen.SUCCESS
        # stores from many association threads at once share one connection
        threads = [threading.Thread(target=spool.store, args=(source.read_bytes(), f"1.2.{i}"))
                   for i in range(8)]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert spool.received == 9
        (first,) = spool.folder.rglob("1.2.3.4-*.dcm")
        assert first.stat().st_mode & 0o777 == 0o600
        assert first.read_bytes() == source.read_bytes()
        # a crash between rename and commit, and one mid-write
        orphan = spool.folder / "77" / "1.2.77-abc.dcm"
        orphan.parent.mkdir()
        orphan.write_bytes(source.read_bytes())
        (orphan.parent / ".1.2.78-abc.dcm.tmp").write_bytes(b"half")
        assert spool.recover() == 1
        assert not list(spool.folder.rglob(".*.tmp"))
    finally:
        spool.close()
    assert stage_counts(tmp_path / "work" / "state.sqlite3") == {"seen": 10}


def test_two_runs_never_share_a_work_folder(
    tmp_path: Path, kit_path: Path, idmap_path: Path, sample: tuple[Path, SampleManifest]
) -> None:
    options = Options(folders=[sample[0]], work=tmp_path / "work", workers=1, dry_run=True,
                      out=tmp_path / "out")  # fmt: skip
    folder = state_folder(options)
    folder.mkdir(parents=True)
    held = _lock_folder(folder)
    try:
        with pytest.raises(WorkFolderBusy, match="another submit run or listener"):
            Pipeline(load_kit(kit_path), load_idmap(idmap_path), options).run()
    finally:
        assert held is not None
        held.close()
    assert Pipeline(load_kit(kit_path), load_idmap(idmap_path), options).run().complete


def test_run_without_folders_needs_something_received(tmp_path: Path, kit_path: Path,
                                                      idmap_path: Path) -> None:  # fmt: skip
    result = CliRunner().invoke(app, ["submit", "run", "--kit", str(kit_path), "--idmap",
                                      str(idmap_path), "--work", str(tmp_path / "w")])  # fmt: skip
    assert result.exit_code == 1
    assert "give the folders to submit" in result.output
