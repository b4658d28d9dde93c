"""The pure parts of the public side: filter parsing, manifest text, zip paths and streaming."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dicomhub.errors import BadRequest
from dicomhub.publish.filters import MAX_LIMIT, PARAMS, Page, SeriesFilter, parse_query
from dicomhub.publish.manifests import manifest_lines, tcia_manifest
from dicomhub.publish.zipparts import Sink, stored_entry
from dicomhub.publish.zipstream import safe_component


@given(st.sampled_from(sorted(PARAMS)), st.text(max_size=300))
def test_any_text_in_any_filter_parses_or_is_a_bad_request(name: str, value: str) -> None:
    refused: BadRequest | None = None
    try:
        parsed = parse_query([(name, value)])
    except BadRequest as exc:
        refused = exc
    if refused is not None:
        assert refused.http_status == 400
        assert refused.message
        return
    assert isinstance(parsed.filter, SeriesFilter)
    assert parse_query(parsed.filter.to_params()).filter == parsed.filter


@given(st.integers(), st.integers())
def test_page_bounds(limit: int, offset: int) -> None:
    if 1 <= limit <= MAX_LIMIT and 0 <= offset <= 10_000_000:
        assert Page.of(limit, offset) == Page(limit, offset)
    else:
        with pytest.raises(BadRequest):
            Page.of(limit, offset)


def test_filter_values_are_typed_and_deduplicated() -> None:
    parsed = parse_query(
        [
            ("modality", "CT"),
            ("modality", "CT"),
            ("modality", " MR "),
            ("study_date_from", "20200102"),
            ("series_uid", "1.2.3"),
            ("limit", "10"),
            ("description", ""),
        ]
    )
    assert parsed.filter.modalities == ("CT", "MR")
    assert parsed.filter.study_date_from == date(2020, 1, 2)
    assert parsed.filter.series_uids == ("1.2.3",)
    assert parsed.page == Page(10, 0)
    assert parsed.filter.without("modalities").modalities == ()
    assert parse_query([("anything", "x")], strict=False).filter.is_empty


def test_manifest_text_is_exactly_what_nbia_writes() -> None:
    text = "".join(tcia_manifest(["1.2.3", "1.2.4"], "https://archive.example/", "manifest-1.tcia"))
    assert text == (
        "downloadServerUrl=https://archive.example/nbia-download/servlet/DownloadServlet\n"
        "includeAnnotation=false\n"
        "noOfrRetry=4\n"
        "databasketId=manifest-1.tcia\n"
        "manifestVersion=3.0\n"
        "ListOfSeriesToDownload=\n"
        "1.2.3\n"
        "1.2.4\n"
    )
    assert manifest_lines(text) == ["1.2.3", "1.2.4"]
    many = "".join(tcia_manifest((f"1.2.{n}" for n in range(5000)), "http://h"))
    assert len(many.splitlines()) == 6 + 5000


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("../../etc/passwd", "etc_passwd"),
        ("..", "unknown"),
        (".hidden", "hidden"),
        ("a/b\\c", "a_b_c"),
        ("PAT 001", "PAT_001"),
        ("", "unknown"),
        ("x" * 100, "x" * 64),
    ],
)
def test_zip_path_components_cannot_escape(raw: str, safe: str) -> None:
    assert safe_component(raw) == safe


def test_the_zip_sink_streams_a_readable_archive() -> None:
    sink = Sink()
    chunks: list[bytes] = []
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        for n in range(3):
            with archive.open(stored_entry(f"d/{n}.dcm", 70_000, now), "w") as out:
                for _ in range(7):
                    out.write(bytes([n]) * 10_000)
                    chunks.append(sink.drain())
    chunks.append(sink.drain())
    assert max(len(c) for c in chunks) < 20_000  # nothing accumulates
    read = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))
    assert read.testzip() is None
    assert read.read("d/2.dcm") == b"\x02" * 70_000
