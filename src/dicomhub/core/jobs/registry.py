"""Job kinds: a name mapped to the import path of a plain function.

Workers import the function by its path (``"dicomhub.x.y:func"``), so a kind works
the same in a thread, a local dask worker or a remote one.  Stages register their
kinds when imported; ``core`` registers only the built-in demo kind.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from dicomhub.core.jobs import builtin
from dicomhub.core.jobs.context import JobContext
from dicomhub.errors import BadRequest, ConfigurationError


class JobFunction(Protocol):
    """``func(ctx, params) -> result``; the result must be a JSON object."""

    def __call__(self, ctx: JobContext, params: dict[str, Any], /) -> dict[str, Any]: ...


ParamsCheck = Callable[[dict[str, Any]], object]

_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class JobKind:
    """A registered kind: its name, its function's path and an optional params check.

    ``check`` runs in the submitting process and raises :class:`BadRequest` for
    parameters the function would refuse, so bad input fails before it is queued.
    """

    name: str
    target: str
    check: ParamsCheck | None = None


_KINDS: dict[str, JobKind] = {}


def register_job_kind(name: str, target: str, *, check: ParamsCheck | None = None) -> JobKind:
    """Register ``name`` as running the function at ``target`` (``"module:function"``).

    Registering the same name and target again is a no-op (modules may be
    re-imported); the same name with another target is a configuration error.
    """
    if not _NAME.match(name):
        raise ConfigurationError(f"invalid job kind name {name!r} (lower case, up to 64 chars)")
    if not _TARGET.match(target):
        raise ConfigurationError(f"job kind {name!r}: target {target!r} is not 'module:function'")
    existing = _KINDS.get(name)
    if existing is not None and existing.target != target:
        raise ConfigurationError(f"job kind {name!r} is already registered as {existing.target}")
    kind = JobKind(name, target, check)
    _KINDS[name] = kind
    return kind


def job_kind(name: str) -> JobKind:
    """The registered kind called ``name``; :class:`BadRequest` naming the known ones if none."""
    try:
        return _KINDS[name]
    except KeyError:
        known = ", ".join(sorted(_KINDS)) or "none"
        raise BadRequest(f"unknown job kind {name!r} (known: {known})") from None


def job_kinds() -> list[JobKind]:
    """Every registered kind, by name."""
    return [_KINDS[name] for name in sorted(_KINDS)]


def load_target(target: str) -> JobFunction:
    """Import the function at ``"module:function"``; runs on the worker."""
    module_name, _, attr = target.partition(":")
    try:
        func = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"cannot import job function {target}: {exc}") from exc
    if not callable(func):
        raise ConfigurationError(f"job function {target} is not callable")
    return func  # type: ignore[no-any-return]


register_job_kind(
    "sleep_count", "dicomhub.core.jobs.builtin:sleep_count", check=builtin.parse_params
)
