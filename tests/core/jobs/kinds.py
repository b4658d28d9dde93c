"""Job kinds used only by the tests; workers import them by path like any kind."""

from __future__ import annotations

import os
import time
from typing import Any

from dicomhub.core.jobs import JobContext, register_job_kind


def echo(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """What the job saw: its id, env, params and the worker's process id."""
    return {"job_id": ctx.job_id, "env": ctx.env, "params": params, "pid": os.getpid()}


def not_a_dict(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Breaks the contract: returns a list."""
    return [1, 2]  # type: ignore[return-value]


def ignore_cancel(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Runs to the end whatever happens, then says whether it saw the cancel."""
    deadline = time.monotonic() + float(params.get("seconds", 1.0))
    while time.monotonic() < deadline:
        time.sleep(0.02)
        if ctx.cancelled():
            break
    return {"saw_cancel": ctx.cancelled()}


def die(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Kills the worker process outright, as an out-of-memory kill would."""
    ctx.progress(1, 2, "about to die")
    ctx.flush()
    os._exit(13)


register_job_kind("test.echo", "tests.core.jobs.kinds:echo")
register_job_kind("test.not_a_dict", "tests.core.jobs.kinds:not_a_dict")
register_job_kind("test.ignore_cancel", "tests.core.jobs.kinds:ignore_cancel")
register_job_kind("test.die", "tests.core.jobs.kinds:die")
register_job_kind("test.missing_function", "tests.core.jobs.kinds:no_such_function")
