"""Verification: what the intake holds for this kit's collection and site.

The intake answers, for the caller's collection and site, counts and each instance's
sha256 as it computed it on arrival; the pipeline compares those with the sha256 of the
bytes it sent, so an instance that was lost, cut short or altered on the way is found and
sent again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from dicomhub.errors import ArchiveError, Unauthorized

VERIFY_PATH = "/intake/api/verification"


class VerifyError(ArchiveError):
    """The intake's inventory could not be fetched."""

    http_status = 502
    code = "verify_failed"


class VerifyUnavailable(VerifyError):
    """This intake offers no verification endpoint; sent instances stay ``sent``."""

    code = "verify_unavailable"


@dataclass
class Inventory:
    """The intake's counts and per-instance sha256 for one collection and site."""

    counts: dict[str, int] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)


def fetch_inventory(client: httpx.Client, *, path: str = VERIFY_PATH) -> Inventory:
    """GET the inventory (the credential's scope picks the collection and site)."""
    try:
        response = client.get(path, headers={"Accept": "application/json"})
    except httpx.TransportError as exc:
        raise VerifyError(f"cannot reach the intake to verify: {exc}") from exc
    if response.status_code in (401, 403):
        raise Unauthorized(f"the intake refused the kit's credential (HTTP {response.status_code})")
    if response.status_code in (404, 405):
        raise VerifyUnavailable(
            "this intake offers no verification; instances were sent, unverified"
        )
    if response.status_code != 200:
        raise VerifyError(f"the intake's verification answered HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError as exc:
        raise VerifyError("the intake's verification answer is not JSON") from exc
    return parse_inventory(body)


def parse_inventory(body: Any) -> Inventory:
    """Read the verification answer: ``counts`` and ``instances`` (uid and sha256 each)."""
    if not isinstance(body, dict):
        raise VerifyError("the intake's verification answer is not a JSON object")
    inventory = Inventory()
    counts = body.get("counts", {})
    if isinstance(counts, dict):
        inventory.counts = {str(k): int(v) for k, v in counts.items() if isinstance(v, int)}
    for item in body.get("instances", []):
        if not isinstance(item, dict):
            continue
        uid = item.get("sop_instance_uid") or item.get("SOPInstanceUID")
        digest = item.get("sha256")
        if isinstance(uid, str) and isinstance(digest, str):
            inventory.sha256[uid] = digest
    return inventory
