"""Whatever the seed, generated identities fit their VRs (pydicom would warn otherwise)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import config
from pydicom.valuerep import validate_value

from dicomhub.sample import plan_sample
from dicomhub.sample.uids import UidFactory

VRS = {
    "patient_name": "PN",
    "referring_physician": "PN",
    "radiologist": "PN",
    "operator": "PN",
    "performing_physician": "PN",
    "patient_id": "LO",
    "other_patient_id": "LO",
    "patient_address": "LO",
    "institution_name": "LO",
    "institution_address": "ST",
    "patient_phone": "SH",
    "birth_date": "DA",
}


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**63))
def test_identities_fit_their_vrs(seed: int) -> None:
    (plan,) = plan_sample(1, seed=seed)
    phi = plan.patient.phi()
    for kind, vr in VRS.items():
        validate_value(vr, phi[kind], config.RAISE)
    for study in plan.studies:
        validate_value("SH", study.accession, config.RAISE)
        validate_value("SH", study.study_id, config.RAISE)
        validate_value("LO", study.description, config.RAISE)
        for series in study.series:
            validate_value("SH", series.scanner.station, config.RAISE)
            validate_value("AE", series.scanner.ae_title, config.RAISE)


@given(seed=st.integers(min_value=0), key=st.text(max_size=20))
def test_uids_are_valid_and_stable(seed: int, key: str) -> None:
    uid = UidFactory(seed).uid(key, 1)
    assert uid.is_valid
    assert uid == UidFactory(seed).uid(key, 1)
    assert uid != UidFactory(seed).uid(key, 2)
