"""Why the engine refuses an instance: one class per reason, each with a stable code.

A caller (the submitter) turns ``code`` into a local quarantine reason and shows
``message`` to the person at the site. Messages name tags and keywords, never a header
value: the values are PHI and the message may be logged.
"""

from __future__ import annotations

from dicomhub.errors import Rejected


class DeidError(Rejected):
    """The engine cannot de-identify this instance safely; it must stay at the site.

    ``tag`` is the attribute (or the path to it, for nested ones) where it failed,
    when one is to blame.
    """

    code = "deid_failed"

    def __init__(self, message: str, *, tag: str | None = None) -> None:
        super().__init__(message, detail={"tag": tag} if tag else None)
        self.tag = tag


class UnmappedPatientError(DeidError):
    """The instance's patient is not in the ID map (or it has no PatientID).

    The submitter quarantines the file locally; an identity is never guessed. The
    original PatientID is on ``patient_id`` (never in the message: it is PHI).
    """

    code = "unmapped_patient"

    def __init__(self, message: str, *, patient_id: str | None = None) -> None:
        super().__init__(message)
        self.patient_id = patient_id


class MissingUidError(DeidError):
    """No SOPClassUID or SOPInstanceUID: the output could not be a valid Part 10 file."""

    code = "missing_uid"


class UndecodableError(DeidError):
    """An attribute the recipe must change cannot be decoded (broken value or sequence)."""

    code = "undecodable_attribute"
