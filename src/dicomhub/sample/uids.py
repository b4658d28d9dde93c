"""Deterministic UIDs: the same seed and key always give the same UID.

Sample data must be reproducible byte for byte, so UIDs are derived from the seed and a
path-like key instead of from the clock or the host.
"""

from __future__ import annotations

from pydicom.uid import UID, generate_uid


class UidFactory:
    """Hands out ``2.25.<n>`` UIDs derived from a seed and a key.

    ``2.25`` UIDs need no registered organisation root, which suits synthetic data.
    """

    def __init__(self, seed: int) -> None:
        self._seed = str(seed)

    def uid(self, *key: object) -> UID:
        """The UID for ``key``; distinct keys give distinct UIDs (SHA-512 based)."""
        return generate_uid(prefix=None, entropy_srcs=[self._seed, *map(str, key)])
