"""ID mapping (quarantine on a missing patient), provenance, and the recipe itself."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from pydicom.sr.codedict import codes
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomhub.core.deid import (
    PRIVATE_CREATOR,
    Deidentifier,
    Option,
    UnmappedPatientError,
    deidentify,
    read_provenance,
)
from dicomhub.errors import Rejected

from .helpers import ct, item, recipe, roundtrip, seq

PATIENTS = {"MRN12345": ("COLL-001", "COLL-001^PSEUDO"), "OTHER9": ("COLL-002", None)}


@pytest.mark.parametrize("from_file", [False, True])
def test_mapped_patient(from_file: bool) -> None:
    ds = roundtrip(ct()) if from_file else ct()
    result = Deidentifier(recipe(), patients=PATIENTS)(ds)
    assert ds.PatientID == "COLL-001"
    assert ds.PatientName == "COLL-001^PSEUDO"
    assert result.patient == ("MRN12345", "COLL-001")


def test_name_defaults_to_new_id() -> None:
    ds = ct(PatientID="OTHER9")
    Deidentifier(recipe(), patients=PATIENTS)(ds)
    assert ds.PatientName == "COLL-002"


def test_unmapped_patient_raises_before_any_change() -> None:
    ds = ct(PatientID="NOT-IN-MAP")
    before = roundtrip(ds)
    with pytest.raises(UnmappedPatientError) as info:
        Deidentifier(recipe(), patients=PATIENTS)(ds)
    assert isinstance(info.value, Rejected)
    assert info.value.code == "unmapped_patient"
    assert info.value.patient_id == "NOT-IN-MAP"
    assert "NOT-IN-MAP" not in str(info.value)  # PHI stays out of messages and logs
    assert roundtrip(ds) == before


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_patient_id_raises(value: str | None) -> None:
    ds = ct()
    if value is None:
        del ds.PatientID
    else:
        ds.PatientID = value
    with pytest.raises(UnmappedPatientError, match="no PatientID"):
        Deidentifier(recipe(), patients=PATIENTS)(ds)


def test_nested_patient_ids() -> None:
    ds = ct()
    ds.ReferencedSeriesSequence = seq(item(PatientID="MRN12345", PatientName="Doe^John"))
    Deidentifier(recipe(), patients=PATIENTS)(ds)
    nested = ds.ReferencedSeriesSequence[0]
    assert nested.PatientID == "COLL-001"
    assert not nested.PatientName
    ds = ct()
    ds.ReferencedSeriesSequence = seq(item(PatientID="STRANGER"))
    with pytest.raises(UnmappedPatientError):
        Deidentifier(recipe(), patients=PATIENTS)(ds)


def test_provenance() -> None:
    rec = recipe(
        retain_long_modified_dates=True,
        clean_descriptors=True,
        retain_device_identity=True,
        body_part_examined="CHEST",
    )
    ds = roundtrip(ct())
    deidentify(ds, rec)
    ds = roundtrip(ds)
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    assert ds.BodyPartExamined == "CHEST"
    got = [(i.CodeValue, i.CodingSchemeDesignator, i.CodeMeaning) for i in ds[0x00120064].value]
    want = [
        codes.DCM.BasicApplicationConfidentialityProfile,
        codes.DCM.RetainDeviceIdentityOption,
        codes.DCM.RetainLongitudinalTemporalInformationModifiedDatesOption,
        codes.DCM.CleanDescriptorsOption,
    ]
    assert got == [(c.value, c.scheme_designator, c.meaning) for c in want]
    method = list(ds.DeidentificationMethod)
    assert method[0].startswith("dicomhub ")
    assert "2024b" in method[0]
    assert all(len(v) <= 64 for v in method)
    assert read_provenance(ds) == {"kit_id": "kit-test", "recipe_hash": rec.recipe_hash()}
    assert ds.private_block(0x0013, PRIVATE_CREATOR)[0x04].value == "2024b"


def test_all_cid_7050_codes_match_pydicom() -> None:
    for option in Option:
        keyword = option.meaning.title().replace(" ", "")
        code = getattr(codes.DCM, keyword)
        assert (code.value, code.meaning) == (option.code, option.meaning)


def test_basic_only_says_removed_and_rerun_is_idempotent_in_shape() -> None:
    ds = ct()
    deidentify(ds, recipe())
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    deidentify(ds, recipe())
    assert len([e for e in ds if e.tag.group == 0x0013 and e.tag.element < 0x100]) == 1


def test_recipe_hash_is_stable_and_excludes_secret() -> None:
    a = recipe(clean_descriptors=True)
    b = recipe(clean_descriptors=True, uid_secret="a-completely-different-secret")
    assert a.recipe_hash() == b.recipe_hash()
    assert a.recipe_hash() != recipe().recipe_hash()
    assert "secret" not in a.canonical_json()
    assert "test-secret" not in repr(a)
    assert json.loads(a.canonical_json())["kit_id"] == "kit-test"
    assert a.recipe_hash() == recipe(clean_descriptors=True).recipe_hash()


@pytest.mark.parametrize(
    "bad",
    [
        {"retain_long_full_dates": True, "retain_long_modified_dates": True},
        {"uid_root": "1.02.3"},
        {"uid_root": "1." + "2" * 45},
        {"uid_secret": "short"},
        {"keep": ("PatientAge",), "remove": ("PatientAge",)},
        {"body_part_examined": "chest"},
        {"unknown_field": 1},
    ],
)
def test_recipe_validation(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        recipe(**bad)


def test_unknown_keep_tag_refused() -> None:
    with pytest.raises(ValueError, match="not a DICOM keyword"):
        Deidentifier(recipe(keep=("NoSuchKeyword",)))


def test_default_keep_text_are_real_keywords() -> None:
    from pydicom.datadict import keyword_dict

    from dicomhub.core.deid.recipe import DEFAULT_KEEP_TEXT

    assert all(k in keyword_dict for k in DEFAULT_KEEP_TEXT)


def test_recipe_from_toml() -> None:
    text = """
kit_id = "kit-test"
uid_root = "1.2.826.0.1.3680043.10.999"
date_offset_days = -1000
clean_descriptors = true
keep = ["ConvolutionKernel"]
"""
    loaded = type(recipe()).from_toml(text, uid_secret="test-secret-0123456789abcdef")
    assert (
        loaded.recipe_hash()
        == recipe(clean_descriptors=True, keep=("ConvolutionKernel",)).recipe_hash()
    )


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_provenance_survives_both_encodings(syntax: str) -> None:
    ds = ct()
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    ds = roundtrip(ds)
    assert ds.original_encoding == (syntax == ImplicitVRLittleEndian, True)
    deidentify(ds, recipe(clean_graphics=True))
    out = roundtrip(ds)
    assert [i.CodeValue for i in out.DeidentificationMethodCodeSequence] == ["113100", "113103"]
    assert out.DeidentificationMethodCodeSequence[1].CodeMeaning == "Clean Graphics Option"
    assert out.PatientIdentityRemoved == "YES"
    rec = recipe(clean_graphics=True)
    assert read_provenance(out) == {"kit_id": "kit-test", "recipe_hash": rec.recipe_hash()}
