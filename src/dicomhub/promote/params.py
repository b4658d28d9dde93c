"""The parameters of a promotion job, checked before it is queued."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dicomhub.errors import BadRequest

UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$")
MAX_WORKERS = 64
KNOWN = frozenset({"collection", "series", "workers", "actor", "recipe_toml"})


@dataclass(frozen=True)
class PromoteParams:
    """What to promote and how.

    ``series`` narrows the promotion to those SeriesInstanceUIDs (empty: the whole
    collection).  ``recipe_toml`` is a curated second-pass recipe (its UID secret is
    never part of it); None uses :func:`dicomhub.promote.recipe.second_pass_recipe`.
    """

    collection: str
    series: tuple[str, ...] = ()
    workers: int = 4
    actor: str = ""
    recipe_toml: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored on the job row."""
        body: dict[str, Any] = {
            "collection": self.collection,
            "series": list(self.series),
            "workers": self.workers,
            "actor": self.actor,
        }
        if self.recipe_toml is not None:
            body["recipe_toml"] = self.recipe_toml
        return body


def parse_params(params: dict[str, Any]) -> PromoteParams:
    """Check a job's parameters; :class:`BadRequest` names the first wrong one."""
    unknown = set(params) - KNOWN
    if unknown:
        raise BadRequest(f"promote: unknown parameters {', '.join(sorted(unknown))}")
    collection = params.get("collection")
    if not isinstance(collection, str) or not 0 < len(collection.strip()) <= 128:
        raise BadRequest("promote: collection must be a name of 1 to 128 characters")
    series = params.get("series", [])
    if not isinstance(series, list | tuple) or not all(isinstance(s, str) for s in series):
        raise BadRequest("promote: series must be a list of SeriesInstanceUIDs")
    bad = [s for s in series if len(s) > 64 or not UID_RE.match(s)]
    if bad:
        raise BadRequest(f"promote: not a valid UID: {bad[0][:80]!r}")
    workers = params.get("workers", 4)
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise BadRequest("promote: workers must be an integer")
    if not 1 <= workers <= MAX_WORKERS:
        raise BadRequest(f"promote: workers must be between 1 and {MAX_WORKERS}")
    actor = params.get("actor", "")
    recipe = params.get("recipe_toml")
    if not isinstance(actor, str) or (recipe is not None and not isinstance(recipe, str)):
        raise BadRequest("promote: actor and recipe_toml must be strings")
    unique = tuple(dict.fromkeys(series))
    return PromoteParams(collection.strip(), unique, workers, actor[:128], recipe)
