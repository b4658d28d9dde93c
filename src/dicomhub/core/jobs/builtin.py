"""The built-in demo kind: count to N with progress; used by tests and ``jobs run-test``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from dicomhub.core.jobs.context import JobContext
from dicomhub.errors import BadRequest


@dataclass(frozen=True)
class SleepCountParams:
    """``count`` steps of ``delay`` seconds; fail (raise) at step ``fail_at`` if given."""

    count: int = 10
    delay: float = 0.1
    fail_at: int | None = None


def _int(params: dict[str, Any], key: str, default: int | None) -> int | None:
    value = params.get(key, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise BadRequest(f"sleep_count: {key} must be an integer")
    return value


def parse_params(params: dict[str, Any]) -> SleepCountParams:
    """Check the parameters; :class:`BadRequest` says which one is wrong."""
    unknown = set(params) - {"count", "delay", "fail_at"}
    if unknown:
        raise BadRequest(f"sleep_count: unknown parameters {', '.join(sorted(unknown))}")
    count = _int(params, "count", 10)
    assert count is not None
    if not 0 <= count <= 1_000_000:
        raise BadRequest("sleep_count: count must be between 0 and 1000000")
    delay = params.get("delay", 0.1)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 60:
        raise BadRequest("sleep_count: delay must be a number of seconds between 0 and 60")
    return SleepCountParams(count, float(delay), _int(params, "fail_at", None))


def sleep_count(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Count to ``count``, sleeping ``delay`` between steps, stopping early if cancelled."""
    parsed = parse_params(params)
    ctx.progress(0, parsed.count, "counting")
    for step in range(1, parsed.count + 1):
        ctx.raise_if_cancelled()
        time.sleep(parsed.delay)
        if step == parsed.fail_at:
            raise RuntimeError(f"sleep_count failed at step {step} as asked")
        ctx.progress(step)
    return {"counted": parsed.count}
