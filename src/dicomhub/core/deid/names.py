"""The instance's own identifiers: what Clean Descriptors removes from its free text.

Free text cannot be understood, but it can be searched for what the header itself says
about the patient and the people around them: names, IDs, the institution. They are read
before the walk replaces them, without converting raw elements, and decoded in the
instance's character set, so a name is found whatever its encoding.
"""

from __future__ import annotations

from pydicom._dicom_dict import DicomDictionary
from pydicom.datadict import keyword_dict
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.valuerep import PersonName

from dicomhub.core.deid.inputs import decode

#: Attributes whose values the text cleaner removes wherever they appear in free text.
IDENTIFYING_KEYWORDS = (
    "PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames", "PatientBirthName",
    "PatientMotherBirthName", "AccessionNumber", "ReferringPhysicianName",
    "PerformingPhysicianName", "NameOfPhysiciansReadingStudy", "OperatorsName",
    "RequestingPhysician", "PatientAddress", "PatientTelephoneNumbers", "MedicalRecordLocator",
    "StudyID", "IssuerOfPatientID", "PatientBirthDate", "InstitutionName", "InstitutionAddress",
    "InstitutionalDepartmentName", "StationName", "DeviceSerialNumber", "RequestedProcedureID",
    "ScheduledProcedureStepID", "PerformedProcedureStepID", "AdmissionID",
)  # fmt: skip
IDENTIFYING_TAGS = tuple(BaseTag(keyword_dict[k]) for k in IDENTIFYING_KEYWORDS)
#: Every standard attribute of VR PN: their values are names the cleaner must know.
PN_TAGS = frozenset(tag for tag, entry in DicomDictionary.items() if entry[0] == "PN")


def identifiers_of(ds: Dataset) -> tuple[str, ...]:
    """Original values of the identifying attributes, read without converting raw elements.

    Non-ASCII bytes are decoded with the instance's character set (ISO 2022 escapes
    included), so a name is recognised in free text whatever its encoding.
    """
    values: list[str] = []
    for tag in IDENTIFYING_TAGS:
        elem = ds._dict.get(tag)
        if elem is None or not elem.value:
            continue
        value = elem.value
        if isinstance(value, bytes):
            values.extend(decode(ds, value).split("\\"))
        elif isinstance(value, str | PersonName):
            values.append(str(value))
        else:
            values.extend(str(v) for v in value)
    return tuple(values)
