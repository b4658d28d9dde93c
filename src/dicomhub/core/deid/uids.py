"""Keyed, deterministic UID replacement under the archive's UID root.

Why keyed: CTP's ``@hashuid`` is a plain MD5 of the UID, so anyone holding an original UID
and the public root can confirm that an instance is in the collection. Here the digest is
HMAC-SHA-256 under a per-archive secret; the same input gives the same output everywhere
(so references between instances still resolve), and nobody without the secret can link.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from pydicom._uid_dict import UID_dictionary

#: Registry UIDs (SOP classes, transfer syntaxes, coding schemes, well-known frames of
#: reference ...) live under this root; they name *what* something is, never *which*.
DICOM_ROOT = "1.2.840.10008."
CACHE_LIMIT = 1_000_000
UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")

#: Unlisted UI attributes that name a kind of thing, not an instance: never hashed.
CLASS_UID_KEYWORDS = frozenset(
    {
        "TransferSyntaxUID",
        "CodingSchemeUID",
        "ContextUID",
        "ContextGroupExtensionCreatorUID",
        "MappingResourceUID",
        "ImplementationClassUID",
        "PrivateInformationCreatorUID",
        "ReferencedTransferSyntaxUIDInFile",
        "EncryptedContentTransferSyntaxUID",
        "TemplateExtensionOrganizationUID",
        "TemplateExtensionCreatorUID",
    }
)


def is_well_known(uid: str) -> bool:
    """True for UIDs that must never change: anything in the DICOM registry or under its root."""
    return uid in UID_dictionary or uid.startswith(DICOM_ROOT)


def is_class_keyword(keyword: str) -> bool:
    """True for UI attributes whose value identifies a class (e.g. ``ReferencedSOPClassUID``)."""
    return keyword.endswith("ClassUID") or keyword in CLASS_UID_KEYWORDS


class UidHasher:
    """Map original UIDs to ``<root>.<decimal HMAC digest>`` (at most 64 characters).

    Parameters
    ----------
    root:
        The archive's UID root, dotted decimal without a trailing dot.
    secret:
        Per-archive key; the same key must be used for a whole collection.
    """

    __slots__ = ("_cache", "_key", "_prefix", "_room")

    def __init__(self, root: str, secret: bytes) -> None:
        if not UID_RE.match(root):
            raise ValueError(f"invalid UID root {root!r}")
        self._prefix = root + "."
        self._room = 64 - len(self._prefix)
        if self._room < 20:
            raise ValueError("UID root leaves fewer than 20 digits for the digest")
        self._key = secret
        self._cache: dict[str, str] = {}

    def __call__(self, uid: str) -> str:
        """The replacement for ``uid`` (well-known UIDs come back unchanged)."""
        new = self._cache.get(uid)
        if new is None:
            if len(self._cache) >= CACHE_LIMIT:  # a run over millions of instances
                self._cache.clear()
            new = self._cache[uid] = self._compute(uid)
        return new

    def _compute(self, uid: str) -> str:
        if is_well_known(uid):
            return uid
        digest = hmac.new(self._key, b"uid\x00" + uid.encode("utf-8"), hashlib.sha256).digest()
        # int() has no leading zero (a 256-bit digest of 0 would give "0", still valid);
        # truncation keeps the leading digits, so the component stays valid.
        return self._prefix + str(int.from_bytes(digest, "big"))[: self._room]
