"""Reading .tcia manifests: the real format, plain UID lists, and every kind of bad file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dicomhub.download.manifest import ManifestError, entries, read_header, server_of, valid_uid
from dicomhub.download.sources import choose_server, parse_source
from dicomhub.errors import BadRequest

HEADER = (
    "downloadServerUrl=https://archive.example.org/nbia-download/servlet/DownloadServlet\n"
    "includeAnnotation=false\nnoOfrRetry=4\ndatabasketId=manifest-1.tcia\n"
    "manifestVersion=3.0\nListOfSeriesToDownload=\n"
)


def write(tmp_path: Path, text: str | bytes, name: str = "m.tcia") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_reads_nbia_header_and_uids(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "1.2.3\n1.2.4\n\n1.2.5\n")
    header = read_header(path)
    assert header.server == "https://archive.example.org"
    assert header.retries == 4
    assert header.databasket_id == "manifest-1.tcia"
    assert [(e.line, e.text, e.valid) for e in entries(path, header)] == [
        (7, "1.2.3", True),
        (8, "1.2.4", True),
        (10, "1.2.5", True),
    ]


def test_plain_uid_list_has_no_server(tmp_path: Path) -> None:
    path = write(tmp_path, "1.2.3\n1.2.4\n")
    header = read_header(path)
    assert header.server is None
    assert [e.text for e in entries(path, header)] == ["1.2.3", "1.2.4"]
    with pytest.raises(Exception, match="names no server"):
        choose_server(parse_source(str(path)), None)


def test_malformed_lines_are_marked(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "1.2.3\nnot-a-uid\n1.02.3\n" + "1." * 40 + "1\n")
    valid = [e.valid for e in entries(path, read_header(path))]
    assert valid == [True, False, False, False]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("\n\n  \n", "is empty"),
        (b"PK\x03\x04\x00\x00binary", "binary"),
        (b"\xff\xfe\xfd not utf-8", "not UTF-8"),
        ("<html><body>Login</body></html>\n", "not a .tcia manifest"),
        (HEADER[:120], "truncated"),
        (
            "downloadServerUrl=https://x.org/nbia-download/servlet/DownloadServlet\n1.2.3\n",
            "header",
        ),
        ("downloadServerUrl=ftp://x.org/\nListOfSeriesToDownload=\n1.2\n", "not an http"),
    ],
)
def test_bad_files_are_refused_clearly(tmp_path: Path, content: str | bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_source(str(write(tmp_path, content)))


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="does not exist"):
        parse_source(str(tmp_path / "nothing.tcia"))
    with pytest.raises(ManifestError, match="folder"):
        read_header(tmp_path)


def test_manifest_for_another_server_is_refused(tmp_path: Path) -> None:
    source = parse_source(str(write(tmp_path, HEADER + "1.2.3\n")))
    with pytest.raises(ManifestError, match=r"was made by https://archive\.example\.org"):
        choose_server(source, "http://127.0.0.1:9999")
    assert (
        choose_server(source, "https://ARCHIVE.example.org:443/")
        == "https://ARCHIVE.example.org:443"
    )
    assert choose_server(source, None) == "https://archive.example.org"


def test_sources_other_than_files() -> None:
    assert parse_source("basket").kind == "basket"
    assert parse_source("LUNG-CT-DEMO").kind == "collection"
    assert parse_source("collection:basket").text == "basket"
    assert (parse_source("42").kind, parse_source("42").text) == ("basket-id", "42")
    assert parse_source("basket:007").text == "7"
    assert parse_source("collection:2024").kind == "collection"
    for bad in ("basket:", "basket:x1", "basket:0", "0", "basket:" + "9" * 13):
        with pytest.raises(BadRequest, match="a basket id is a positive integer"):
            parse_source(bad)


def test_server_of_keeps_a_path_prefix() -> None:
    url = "https://h.org:8443/archive/nbia-download/servlet/DownloadServlet"
    assert server_of(url) == "https://h.org:8443/archive"


uids = st.lists(
    st.lists(st.integers(0, 10**12), min_size=2, max_size=8).map(
        lambda parts: ".".join(map(str, parts))
    ),
    max_size=30,
)


@settings(max_examples=50)
@given(uids)
def test_any_uid_list_round_trips(
    tmp_path_factory: pytest.TempPathFactory, listed: list[str]
) -> None:
    listed = [u for u in listed if len(u) <= 64]
    path = tmp_path_factory.mktemp("m") / "m.tcia"
    path.write_text(HEADER + "".join(f"{u}\n" for u in listed))
    got = [e.text for e in entries(path, read_header(path))]
    assert got == listed
    assert all(valid_uid(u) for u in got)
