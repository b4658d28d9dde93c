"""VR rules, required attributes and the search columns, each with its stable code."""

from __future__ import annotations

from datetime import date

import pytest
from pydicom import config
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomhub.core.dicom.header import read_header
from dicomhub.core.dicom.index import index_record, parse_date
from dicomhub.core.dicom.validate import (
    MISSING_REQUIRED,
    VR_BAD_CHARS,
    VR_BAD_VALUE,
    VR_NEGATIVE,
    VR_NOT_A_NUMBER,
    VR_TOO_LONG,
    missing_required,
    vr_violations,
)
from tests.core.dicom.build import instance_bytes, make_dataset, to_bytes


def _codes(syntax: str = ExplicitVRLittleEndian, **overrides: object) -> set[tuple[str, str]]:
    data = to_bytes(make_dataset(**overrides), syntax).replace(b"9.75", b"thin")
    header = read_header(data)
    header.to_json()  # sequences are parsed by then, as in the intake
    return {(v.code, v.keyword) for v in vr_violations(header.dataset)}


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_a_good_instance_has_no_violations(syntax: str) -> None:
    assert _codes(syntax) == set()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"AccessionNumber": "A" * 17}, (VR_TOO_LONG, "AccessionNumber")),
        ({"StudyDescription": "x" * 65}, (VR_TOO_LONG, "StudyDescription")),
        ({"Modality": "ct"}, (VR_BAD_CHARS, "Modality")),
        ({"StudyDate": "2024-01-15"}, (VR_TOO_LONG, "StudyDate")),
        ({"SeriesDate": "2024011A"}, (VR_BAD_CHARS, "SeriesDate")),
        ({"ContentDate": "20240231"}, (VR_BAD_VALUE, "ContentDate")),
        ({"FrameOfReferenceUID": "1.2.03.4"}, (VR_BAD_CHARS, "FrameOfReferenceUID")),
        ({"PatientAge": "54Y"}, (VR_BAD_CHARS, "PatientAge")),
        ({"SliceThickness": "9.75"}, (VR_NOT_A_NUMBER, "SliceThickness")),
        ({"PatientWeight": "-61.5"}, (VR_NEGATIVE, "PatientWeight")),
        ({"StudyTime": "25:61"}, (VR_BAD_CHARS, "StudyTime")),
        ({"PatientName": "X" * 65}, (VR_TOO_LONG, "PatientName")),
        ({"Manufacturer": "ACME\x01"}, (VR_BAD_CHARS, "Manufacturer")),
    ],
)
def test_each_vr_rule_has_its_code(overrides: dict[str, object], expected: tuple[str, str]) -> None:
    assert expected in _codes(**overrides)  # type: ignore[arg-type]
    assert expected in _codes(ImplicitVRLittleEndian, **overrides)  # type: ignore[arg-type]


def test_violations_inside_sequences_are_found() -> None:
    ds = make_dataset()
    item = ds.AnatomicRegionSequence[0]
    del item.CodeMeaning
    with config.disable_value_validation():
        item.CodeMeaning = "y" * 65
    header = read_header(to_bytes(ds))
    header.to_json()
    [violation] = vr_violations(header.dataset)
    assert violation.code == VR_TOO_LONG
    assert violation.path == "00082218.0.00080104"


def test_a_non_integer_is_is_caught() -> None:
    data = to_bytes(make_dataset(InstanceNumber="7")).replace(b"IS\x02\x007 ", b"IS\x02\x00x ")
    header = read_header(data)
    assert {(v.code, v.keyword) for v in vr_violations(header.dataset)} == {
        (VR_NOT_A_NUMBER, "InstanceNumber")
    }


@pytest.mark.parametrize(
    "missing",
    [
        "SOPClassUID",
        "SOPInstanceUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "PatientID",
        "Modality",
    ],
)
def test_missing_required(missing: str) -> None:
    header = read_header(instance_bytes(**{missing: None}))
    [problem] = missing_required(header.dataset)
    assert (problem.code, problem.keyword) == (MISSING_REQUIRED, missing)
    header = read_header(instance_bytes(**{missing: ""}))
    assert [p.keyword for p in missing_required(header.dataset)] == [missing]


def test_index_record_columns() -> None:
    header = read_header(instance_bytes(instance_number=12))
    record = index_record(header.to_json(), header.transfer_syntax_uid)
    assert record.modality == "CT"
    assert record.body_part_examined == "CHEST"
    assert record.manufacturer == "ACME Medical"
    assert record.manufacturer_model_name == "Scanotron 9000"
    assert record.software_versions == "1.0\\2.3b"
    assert record.study_date == date(2024, 1, 15)
    assert record.series_number == 3
    assert record.instance_number == 12
    assert record.patient_name == "Doe^Jane^Q"
    assert record.patient_id == "PAT-001"
    assert record.transfer_syntax_uid == ExplicitVRLittleEndian
    assert record.frame_of_reference_uid.endswith(".9")


def test_index_record_tolerates_bad_values() -> None:
    header = read_header(
        instance_bytes(StudyDate="20241399", SeriesDate="garbage", InstanceNumber="7")
    )
    data = header.to_json()
    data["00200013"] = {"vr": "IS", "Value": [None]}
    data["00200011"] = {"vr": "IS", "Value": [2.5]}
    data["00081030"] = {"vr": "LO", "Value": ["x" * 400]}
    record = index_record(data, "1.2.840.10008.1.2.1")
    assert record.study_date is None
    assert record.series_date is None
    assert record.instance_number is None
    assert record.series_number is None
    assert len(record.study_description) == 256
    assert index_record({}, "").patient_id == ""


def test_parse_date_accepts_the_old_dotted_form() -> None:
    assert parse_date("2024.01.15") == date(2024, 1, 15)
    assert parse_date(20240115) is None
