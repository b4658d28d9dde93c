"""How work flows: the intake's STOW batches and the submitter's backpressure and last batches."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from dicomhub.intake.routes import BATCH_BYTES, BATCH_PARTS, MIN_PARTS, batch_due
from dicomhub.submit.idmap import load_idmap
from dicomhub.submit.kit import load_kit
from dicomhub.submit.pipeline import Options, Pipeline
from dicomhub.submit.state import FileRow
from dicomhub.submit.upload import BatchResult, StowClient, UploadError, make_client


def test_stow_parts_wait_for_a_worthwhile_batch() -> None:
    # nothing being recorded: a few parts wait, enough go
    assert not batch_due(1, 1000, recording=False, recorded=False)
    assert not batch_due(MIN_PARTS - 1, 1000, recording=False, recorded=False)
    assert batch_due(MIN_PARTS, 1000, recording=False, recorded=False)
    # the last batch is still being recorded: only a full one goes (after it)
    assert not batch_due(MIN_PARTS, 1000, recording=True, recorded=False)
    assert batch_due(BATCH_PARTS, 1000, recording=True, recorded=False)
    assert batch_due(2, BATCH_BYTES, recording=True, recorded=False)
    # the last batch is recorded: whatever arrived since goes, if enough
    assert batch_due(MIN_PARTS, 1000, recording=True, recorded=True)
    assert not batch_due(MIN_PARTS - 1, 1000, recording=True, recorded=True)


@pytest.fixture
def pipeline(tmp_path: Path, kit_path: Path, idmap_path: Path) -> Iterator[Pipeline]:
    kit = load_kit(kit_path)
    body = kit.body
    with make_client(body.intake_url, body.credential.get_secret_value(), None) as client:
        options = Options([tmp_path / "src"], tmp_path / "work", batch_size=10, upload_threads=2)
        made = Pipeline(kit, load_idmap(idmap_path), options, stow=StowClient(client),
                        inventory=dict)  # fmt: skip
        try:
            yield made
        finally:
            made.state.close()


def rows(count: int) -> list[FileRow]:
    def row(i: int) -> FileRow:
        uid, out = f"2.25.{i}", f"/out/{i}.dcm"
        return FileRow(i, f"/src/{i}.dcm", "deidentified", None, uid, None, None, out, "0", 1, None)

    return [row(i) for i in range(1, count + 1)]


def busy(pipeline: Pipeline, connections: int) -> None:
    """Occupy ``connections`` upload slots with batches still in flight."""
    pipeline.uploads = {Future[BatchResult](): [] for _ in range(connections)}


def test_de_identification_waits_while_the_sender_is_behind(pipeline: Pipeline) -> None:
    pipeline.ready.extend(rows(10))
    busy(pipeline, 1)
    assert not pipeline._backlogged()  # a connection is free: the batch goes at once
    busy(pipeline, 2)
    assert pipeline._backlogged()  # every connection busy and a whole batch waiting
    pipeline.ready.pop()
    assert not pipeline._backlogged()  # less than a batch waits: keep de-identifying
    pipeline.ready.extend(rows(1))
    pipeline.send_error = UploadError("gone")
    assert not pipeline._backlogged()  # nothing will be sent: de-identify what is left


def test_the_last_instances_are_shared_by_the_free_connections(pipeline: Pipeline) -> None:
    pipeline.ready.extend(rows(13))
    assert pipeline._next_size(final=False) == 10  # during the run: whole batches
    assert pipeline._next_size(final=True) == 7  # 13 left, 2 connections free: 7 and 6
    busy(pipeline, 1)
    assert pipeline._next_size(final=True) == 10  # one connection free: a whole batch
    busy(pipeline, 0)
    pipeline.ready.extend(rows(20))
    assert pipeline._next_size(final=True) == 10  # 33 left: whole batches first
