"""The fast header-to-JSON conversion: equal to pydicom's, much faster, and safe on bad input."""

from __future__ import annotations

import io
import time
import warnings
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomhub.core.dicom.header import (
    UnreadableError,
    check_complete,
    dataset_to_json,
    read_header,
)
from tests.core.dicom.build import instance_bytes, make_dataset, to_bytes

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
#: pydicom's own sample files that are Part 10 and that its to_json_dict can convert.
SAMPLES = sorted(
    p.name
    for p in TEST_FILES.glob("*.dcm")
    if p.name
    not in {
        "ExplVR_BigEndNoMeta.dcm",
        "ExplVR_LitEndNoMeta.dcm",
        "no_meta.dcm",
        "rtstruct.dcm",
        "meta_missing_tsyntax.dcm",
        "badVR.dcm",
    }
)


def _normalise(value: Any) -> Any:
    """Bring pydicom's output to PS3.18's empty-value rules (null in lists, no empty SQ)."""
    if isinstance(value, dict):
        if value.get("vr") == "SQ" and value.get("Value") == []:
            return {"vr": "SQ"}
        if "BulkDataURI" in value:
            return {"vr": value["vr"], "BulkDataURI": "bulk"}
        return {key: _normalise(item) for key, item in value.items()}
    if isinstance(value, list):
        items = [_normalise(item) for item in value]
        if len(items) > 1:
            items = [None if item in ("", {"Alphabetic": ""}) else item for item in items]
        return items
    return value


def _reference(data: bytes) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        return ds.to_json_dict(1024, lambda _elem: "bulk")


@pytest.mark.parametrize("name", SAMPLES)
def test_equal_to_pydicom_on_its_sample_files(name: str) -> None:
    data = (TEST_FILES / name).read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mine = read_header(data).to_json()
    assert _normalise(mine) == _normalise(_reference(data))


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_equal_to_pydicom_on_built_instances(syntax: str) -> None:
    data = instance_bytes(syntax)
    assert read_header(data).to_json() == _reference(data)


def _json_of(ds: Dataset, syntax: str = ExplicitVRLittleEndian) -> dict[str, Any]:
    return read_header(to_bytes(ds, syntax)).to_json()


def test_value_types_follow_ps3_18() -> None:
    ds = make_dataset()
    ds.PatientName = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.add_new(0x00209165, "AT", [0x00100010, 0x7FE00010])  # DimensionIndexPointer
    ds.OtherPatientIDs = ["A", "", "C"]
    header = _json_of(ds)
    assert header["00100010"]["Value"] == [
        {"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"}
    ]
    assert header["00200013"] == {"vr": "IS", "Value": [1]}
    assert header["00180050"] == {"vr": "DS", "Value": [1.25]}
    assert header["00281050"] == {"vr": "DS", "Value": [40.0, 400.0]}
    assert header["00280010"] == {"vr": "US", "Value": [16]}
    assert header["00209165"] == {"vr": "AT", "Value": ["00100010", "7FE00010"]}
    assert header["00101000"]["Value"] == ["A", None, "C"]
    assert header["00081140"]["Value"][1] == {}
    assert header["00081140"]["Value"][0]["00100010"]["Value"] == [{"Alphabetic": "Other^Person"}]
    assert header["00110010"] == {"vr": "LO", "Value": ["ACME 1.1"]}
    assert header["00111003"] == {"vr": "OB", "InlineBinary": "AQIDBA=="}
    assert "7FE00010" not in header


def test_invalid_numbers_become_null_not_errors() -> None:
    ds = make_dataset()
    header = read_header(to_bytes(ds)).dataset
    data = to_bytes(ds).replace(b"-1024", b"ab-cd")  # RescaleIntercept, same length
    header = read_header(data).to_json()
    assert header["00281052"] == {"vr": "DS", "Value": [None]}
    data = to_bytes(make_dataset(InstanceNumber="7")).replace(b"IS\x02\x007 ", b"IS\x02\x00x ")
    assert read_header(data).to_json()["00200013"] == {"vr": "IS", "Value": [None]}


def test_large_binary_values_are_placeholders() -> None:
    ds = make_dataset()
    ds.private_block(0x0011, "ACME 1.1").add_new(0x04, "OB", bytes(5000))
    header = read_header(to_bytes(ds)).to_json()
    assert header["00111004"] == {"vr": "OB", "BulkDataURI": "bulk:00111004"}
    seen: list[str] = []
    custom = dataset_to_json(
        read_header(to_bytes(ds)).dataset, bulk_handler=lambda p: seen.append(p) or f"u/{p}"
    )
    assert custom["00111004"]["BulkDataURI"] == "u/00111004"
    assert seen == ["00111004"]


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage" * 100, bytes(128) + b"DICM", bytes(132) + b"\x02\x00\x10\x00UI"],
    ids=["empty", "garbage", "prefix-only", "meta-cut"],
)
def test_unreadable_input(data: bytes) -> None:
    with pytest.raises(UnreadableError):
        read_header(data)


def test_preamble_without_meta_is_unreadable() -> None:
    ds = make_dataset()
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=False, little_endian=True)  # no meta
    with pytest.raises(UnreadableError):
        read_header(bytes(128) + b"DICM" + buffer.getvalue())


@pytest.mark.parametrize("cut", [1, 100, 400])
def test_truncated_files_are_caught(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "cut.dcm"
    data = instance_bytes(rows=64)
    path.write_bytes(data)
    check_complete(path)
    path.write_bytes(data[:-cut])
    with pytest.raises(UnreadableError, match=r"truncated|ends"):
        check_complete(path)


def test_truncated_encapsulated_pixel_data(tmp_path: Path) -> None:
    source = get_testdata_file("JPEG2000.dcm")
    assert isinstance(source, str)
    data = Path(source).read_bytes()
    path = tmp_path / "j2k.dcm"
    path.write_bytes(data)
    check_complete(path)
    path.write_bytes(data[: len(data) - 2000])
    with pytest.raises(UnreadableError):
        check_complete(path)


def test_much_faster_than_to_json_dict() -> None:
    """The reason this module exists: to_json_dict caps an indexer at ~300/s."""
    blobs = [instance_bytes(instance_number=i) for i in range(40)]
    datasets = []

    def fast() -> None:
        for blob in blobs:
            read_header(blob).to_json()

    def slow() -> None:
        for blob in blobs:
            ds = pydicom.dcmread(io.BytesIO(blob), stop_before_pixels=True)
            datasets.append(ds.to_json_dict())

    fast_time = min(_timed(fast) for _ in range(3))
    slow_time = min(_timed(slow) for _ in range(3))
    assert slow_time / fast_time > 2.0, (fast_time, slow_time)


def _timed(func: Any) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start
