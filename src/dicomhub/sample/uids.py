"""Deterministic UIDs: the same seed and key always give the same UID.

Sample data must be reproducible byte for byte, so UIDs are derived from the seed and a
path-like key instead of from the clock, the host or a random UUID.
"""

from __future__ import annotations

import hashlib

from pydicom.uid import UID


class UidFactory:
    """Hands out ``2.25.<n>`` UIDs, n a 128-bit hash of the seed and a key.

    ``2.25`` UIDs (UUID-derived, ISO/IEC 9834-8) need no registered organisation root,
    which suits synthetic data; 128 bits make collisions between keys negligible.
    """

    def __init__(self, seed: int) -> None:
        self._seed = str(seed)

    def uid(self, *key: object) -> UID:
        """The UID for ``key``; distinct keys give distinct UIDs."""
        text = "\x1f".join([self._seed, *map(str, key)])
        digest = hashlib.sha256(text.encode("utf-8")).digest()[:16]
        return UID(f"2.25.{int.from_bytes(digest, 'big')}")
