"""Where a submission comes from: the adapter, who sent it, and the scope it may write to."""

from __future__ import annotations

from dataclasses import dataclass

from dicomhub.core.auth import Principal


@dataclass(frozen=True)
class Origin:
    """One sender as the intake service sees it, whichever adapter it came through.

    ``collection`` and ``site`` are the scope the credential (a token's scope or
    the calling AE's mapping) allows; None means the credential is not narrowed
    and the instance itself must name them.
    """

    kind: str  # "stow", "dimse" or "cli"
    actor: str  # a username or a calling AE title
    address: str = ""
    collection: str | None = None
    site: str | None = None
    principal: Principal | None = None

    @property
    def label(self) -> str:
        """A short line for audit records and the quarantine (``stow:alice@10.0.0.5``)."""
        where = f"@{self.address}" if self.address else ""
        return f"{self.kind}:{self.actor}{where}"[:256]
