"""Pure parts of the NBIA layer: ZIP length prediction, NBIA file names, dates, formats."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dicomhub.core.store.filesystem import FilesystemStore
from dicomhub.errors import BadRequest
from dicomhub.publish.dicomweb.media import choose_syntax, dicom_syntaxes, parse_accept
from dicomhub.publish.nbia.archive import Member, new_file_names, stream, zip_length
from dicomhub.publish.nbia.formats import parse_format, parse_nbia_date
from dicomhub.publish.nbia.instances import InstanceRow

names = st.text(alphabet="abcdefghij0123456789-._", min_size=1, max_size=40)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(names, st.binary(max_size=3000)),
        max_size=12,
        unique_by=lambda entry: entry[0],
    )
)
def test_predicted_zip_length_is_exact(entries: list[tuple[str, bytes]]) -> None:
    members = [Member(name, len(data), data=data) for name, data in entries]
    store = FilesystemStore(Path("/nonexistent-unused"))
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    body = b"".join(stream(store, members, when))
    assert zip_length(members) == len(body)
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        assert [i.filename for i in zf.infolist()] == [n for n, _ in entries]
        for info, (_name, data) in zip(zf.infolist(), entries, strict=True):
            assert zf.read(info) == data


def test_zip64_sizes_are_not_predicted() -> None:
    assert zip_length([Member("big.dcm", 5 * 1024**3, blob_key="a/b/c")]) is None


def _rows(acquisitions: list[int | None]) -> list[InstanceRow]:
    return [
        InstanceRow(f"1.{n}", n, "k", 1, "s", "m", acq) for n, acq in enumerate(acquisitions, 1)
    ]


def test_new_file_names_follow_nbia() -> None:
    assert new_file_names(_rows([None] * 3)) == ["1-1.dcm", "1-2.dcm", "1-3.dcm"]
    hundred = new_file_names(_rows([1] * 120))
    assert hundred[0] == "1-001.dcm"
    assert hundred[-1] == "1-120.dcm"
    assert new_file_names(_rows([1, 1, 2, 2, 2])) == [
        "1-1.dcm",
        "1-2.dcm",
        "2-1.dcm",
        "2-2.dcm",
        "2-3.dcm",
    ]


def test_nbia_dates() -> None:
    assert parse_nbia_date("03-04-2021", "d") == date(2021, 3, 4)
    assert parse_nbia_date("3/4/2021", "d") == date(2021, 3, 4)
    assert parse_nbia_date("2021-03-04", "d") == date(2021, 3, 4)
    for bad in ("2021-13-01", "31-12-2021", "soon", "", "02-30-2020"):
        with pytest.raises(BadRequest):
            parse_nbia_date(bad, "d")


def test_formats() -> None:
    assert parse_format(None) == "json"
    assert parse_format("CSVQUOTED") == "csv"
    with pytest.raises(BadRequest):
        parse_format("yaml")


def test_accept_negotiation() -> None:
    ranges = parse_accept('multipart/related; type="application/dicom"; transfer-syntax=*')
    assert dicom_syntaxes(ranges) == ["*"]
    assert choose_syntax("1.2.840.10008.1.2.4.50", ["*"]) == "1.2.840.10008.1.2.4.50"
    default = dicom_syntaxes(parse_accept('multipart/related; type="application/dicom"'))
    assert choose_syntax("1.2.840.10008.1.2", default) == "1.2.840.10008.1.2.1"
    both = parse_accept(
        'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50;'
        ' q=0.5, multipart/related; type="application/dicom"; transfer-syntax=*; q=0.9'
    )
    assert dicom_syntaxes(both) == ["*", "1.2.840.10008.1.2.4.50"]
