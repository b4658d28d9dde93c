"""`dicomhub jobs`: list, show, watch, cancel and run-test against a real database."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from dicomhub.cli.jobs import app, run_with_progress
from dicomhub.core.jobs import CANCELLING, FAILED, SUCCEEDED, JobService
from dicomhub.errors import NotFound


@pytest.fixture
def env(migrated_db_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "DICOMHUB_DATA_DIR": str(tmp_path),
        "DICOMHUB_INTAKE_DATABASE_URL": migrated_db_url,
        "DICOMHUB_PUBLIC_DATABASE_URL": f"sqlite:///{tmp_path / 'unmigrated.db'}",
        "DICOMHUB_JOB_EXECUTOR": "inprocess",
        "DICOMHUB_SECRET_KEY": "a-test-secret-of-32-characters!!",
        "COLUMNS": "200",
    }


def invoke(env: dict[str, str], *args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output, result.exception


def test_list_and_filter(service: JobService, env: dict[str, str]) -> None:
    ok = service.wait(service.submit("sleep_count", {"count": 1, "delay": 0}, "alice"), 10)
    bad = service.submit("sleep_count", {"count": 2, "delay": 0, "fail_at": 1}, "bob")
    bad_job = service.wait(bad, 10)
    code, out, _ = invoke(env, "list")
    assert code == 0
    assert ok.id in out
    assert bad in out
    assert "alice" in out
    assert bad_job.error is not None
    assert bad_job.error in out
    code, out, _ = invoke(env, "list", "--state", FAILED)
    assert code == 0
    assert bad in out
    assert ok.id not in out
    code, out, _ = invoke(env, "list", "--kind", "test.echo")
    assert ok.id not in out


def test_show_as_text_and_json(service: JobService, env: dict[str, str]) -> None:
    job = service.wait(service.submit("sleep_count", {"count": 2, "delay": 0}, "alice"), 10)
    code, out, _ = invoke(env, "show", job.id)
    assert code == 0
    assert SUCCEEDED in out
    assert '{"counted": 2}' in out
    code, out, _ = invoke(env, "show", job.id, "--json")
    assert code == 0
    assert json.loads(out) == job.to_dict()


def test_show_an_unknown_job_raises_not_found(env: dict[str, str]) -> None:
    code, _, exc = invoke(env, "show", "nope")
    assert code != 0
    assert isinstance(exc, NotFound)


def test_cancel_a_running_job(service: JobService, env: dict[str, str]) -> None:
    job_id = service.submit("sleep_count", {"count": 500, "delay": 0.01})
    code, out, _ = invoke(env, "cancel", job_id)
    assert code == 0
    assert CANCELLING in out or "cancelled" in out
    assert service.wait(job_id, 10).state == "cancelled"


def test_watch_follows_a_running_job_to_its_end(service: JobService, env: dict[str, str]) -> None:
    job_id = service.submit("sleep_count", {"count": 10, "delay": 0.05})
    code, out, _ = invoke(env, "watch", job_id)
    assert code == 0
    assert f"job {job_id} succeeded" in out
    assert "10/10" in out


def test_watch_exits_1_for_a_failed_job(service: JobService, env: dict[str, str]) -> None:
    job_id = service.submit("sleep_count", {"count": 3, "delay": 0, "fail_at": 2})
    service.wait(job_id, 10)
    code, out, _ = invoke(env, "watch", job_id)
    assert code == 1
    assert "failed at step 2" in out


def test_run_test_runs_the_counting_job(env: dict[str, str]) -> None:
    code, out, _ = invoke(env, "run-test", "--count", "3", "--delay", "0")
    assert code == 0, out
    assert "succeeded" in out
    code, out, _ = invoke(env, "run-test", "--count", "3", "--delay", "0", "--fail-at", "2")
    assert code == 1
    assert "failed at step 2" in out
    code, out, _ = invoke(env, "list", "--state", SUCCEEDED)
    assert "cli" in out


def test_side_public_reads_the_public_database(
    migrated_db_url: str, env: dict[str, str], tmp_path: Path
) -> None:
    env = env | {
        "DICOMHUB_PUBLIC_DATABASE_URL": migrated_db_url,
        "DICOMHUB_INTAKE_DATABASE_URL": f"sqlite:///{tmp_path / 'unmigrated.db'}",
    }
    code, out, _ = invoke(env, "run-test", "--side", "public", "--count", "1", "--delay", "0")
    assert code == 0, out
    code, out, _ = invoke(env, "list", "--side", "public")
    assert code == 0
    assert "sleep_count" in out


def test_run_with_progress_returns_the_finished_job(service: JobService) -> None:
    buffer = io.StringIO()
    job_id = service.submit("sleep_count", {"count": 5, "delay": 0.02})
    job = run_with_progress(service, job_id, out=Console(file=buffer, width=120), poll=0.05)
    assert job.state == SUCCEEDED
    assert f"job {job_id} succeeded" in buffer.getvalue()
