"""tcia_utils (from PyPI, unchanged): every function of ``nbia.py`` that calls the API.

Each getter runs in each output format it offers ("" and "json" give the
parsed JSON, "df" a DataFrame, "csv" a DataFrame plus a file, "html" a table),
and each gives what TCIA's v4 would: the same keys in the same order, dates as
MM-DD-YYYY, and None (an empty body) when nothing matches.  The downloads run
in every ``input_type`` and ``format``; the reports run on every input they
accept.  ``reportDoiSummary`` is left out: it asks DataCite, not the archive.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
import pytest
import tcia_utils.nbia as nbia
from IPython.display import HTML
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.uid import ExplicitVRLittleEndian

from dicomhub.publish.nbia.catalog import METADATA_COLUMNS, SERIES_COLUMNS
from dicomhub.publish.nbia.tags import dicom_tags
from tests.fixtures.public_data import BRAIN, LUNG
from tests.publish.conftest import PublicSite

# tcia_utils itself calls DataFrame.rename(inplace=True), which pandas 3 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")

NBIA_DATE = re.compile(r"\d{2}-\d{2}-\d{4}")
FORMATS = ("", "json", "df", "csv", "html")


@pytest.fixture(autouse=True)
def pointed(api_site: PublicSite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    base = f"{api_site.url}/nbia-api/services"

    def set_api_url(endpoint: str, api_url: str = "nbia") -> str:
        return f"{base}/v1/" if endpoint == "getContentsByName" else f"{base}/v4/"

    monkeypatch.setattr(nbia, "setApiUrl", set_api_url)
    monkeypatch.chdir(tmp_path)  # format="csv" and the reports write into the working directory


def _in_every_format(call: Callable[[str], Any], rows: list[dict[str, Any]]) -> None:
    """``call(format)`` gives ``rows`` as JSON, the same table as a DataFrame, and HTML."""
    for fmt in FORMATS:
        got = call(fmt)
        if fmt in ("", "json"):
            assert got == rows, fmt
        elif fmt == "html":
            assert isinstance(got, HTML), fmt
        else:
            assert isinstance(got, pd.DataFrame), fmt
            assert list(got.columns) == list(rows[0]), fmt
            assert got.to_dict("records") == rows, fmt


def _nothing_in_any_format(call: Callable[[str], Any]) -> None:
    for fmt in FORMATS:
        assert call(fmt) is None, fmt


def test_value_lists_and_counts_in_every_format() -> None:
    cases: list[tuple[Callable[[str], Any], list[dict[str, Any]]]] = [
        (lambda f: nbia.getCollections(format=f), [{"Collection": BRAIN}, {"Collection": LUNG}]),
        (lambda f: nbia.getBodyPart(collection=LUNG, format=f), [{"BodyPartExamined": "CHEST"}]),
        (lambda f: nbia.getModality(bodyPart="chest", format=f), [{"Modality": "CT"}]),
        (
            lambda f: nbia.getManufacturer(
                collection=BRAIN, modality="MR", bodyPart="BRAIN", format=f
            ),
            [{"Manufacturer": "PHILIPS"}],
        ),
        (
            lambda f: nbia.getCollectionPatientCounts(format=f),
            [
                {"Collection": BRAIN, "Count": 3, "Authorized": 1},
                {"Collection": LUNG, "Count": 4, "Authorized": 1},
            ],
        ),
        (
            lambda f: nbia.getModalityCounts(collection=LUNG, bodyPart="CHEST", format=f),
            [{"Modality": "CT", "Count": 4, "Authorized": 1}],
        ),
        (
            lambda f: nbia.getBodyPartCounts(collection=BRAIN, modality="SEG", format=f),
            [{"BodyPart": "BRAIN", "Count": 3, "Authorized": 1}],
        ),
        (
            lambda f: nbia.getManufacturerCounts(
                collection=LUNG, modality="CT", bodyPart="CHEST", format=f
            ),
            [
                {"Manufacturer": "GE MEDICAL SYSTEMS", "Count": 4, "Authorized": 1},
                {"Manufacturer": "SIEMENS", "Count": 4, "Authorized": 1},
            ],
        ),
    ]
    for call, rows in cases:
        _in_every_format(call, rows)
    for empty in (
        lambda f: nbia.getBodyPart(collection="NO-SUCH", format=f),
        lambda f: nbia.getModality(collection=LUNG, bodyPart="BRAIN", format=f),
        lambda f: nbia.getManufacturer(modality="MG", format=f),
        lambda f: nbia.getModalityCounts(collection="NO-SUCH", format=f),
        lambda f: nbia.getBodyPartCounts(modality="MG", format=f),
        lambda f: nbia.getManufacturerCounts(bodyPart="FOOT", format=f),
    ):
        _nothing_in_any_format(empty)
    assert any(name.startswith("getCollectionValues_") for name in os.listdir("."))


def test_patients_and_studies_in_every_format(api_site: PublicSite) -> None:
    patients = nbia.getPatient(collection=BRAIN)
    assert [p["PatientId"] for p in patients] == api_site.catalogue.patients[BRAIN]
    assert list(patients[0]) == [
        "PatientId",
        "PatientName",
        "PatientSex",
        "Collection",
        "SpeciesCode",
        "SpeciesDescription",
        "Authorized",
    ]
    assert (patients[0]["SpeciesCode"], patients[0]["SpeciesDescription"]) == (
        "337915000",
        "Homo sapiens",
    )  # what simple search reports for every subject
    _in_every_format(lambda f: nbia.getPatient(collection=BRAIN, format=f), patients)
    by_modality = nbia.getPatientByCollectionAndModality(LUNG, "CT")
    assert by_modality == [
        {"PatientId": p, "Authorized": 1} for p in api_site.catalogue.patients[LUNG]
    ]
    _in_every_format(
        lambda f: nbia.getPatientByCollectionAndModality(LUNG, "CT", format=f), by_modality
    )
    new = nbia.getNewPatientsInCollection(LUNG, "2000/01/01")
    _in_every_format(lambda f: nbia.getNewPatientsInCollection(LUNG, "2000/01/01", format=f), new)
    studies = nbia.getStudy(LUNG)
    assert len(studies) == 8
    assert all(NBIA_DATE.fullmatch(s["StudyDate"]) for s in studies)
    assert list(studies[0])[:3] == ["StudyInstanceUID", "StudyDate", "StudyDescription"]
    _in_every_format(lambda f: nbia.getStudy(LUNG, format=f), studies)
    two = nbia.getNewStudiesInPatient(LUNG, "LUNG-001", "2000/01/01")
    _in_every_format(
        lambda f: nbia.getNewStudiesInPatient(LUNG, "LUNG-001", "2000/01/01", format=f), two
    )
    for empty in (
        lambda f: nbia.getPatient(collection="NO-SUCH", format=f),
        lambda f: nbia.getPatientByCollectionAndModality(BRAIN, "CT", format=f),
        lambda f: nbia.getNewPatientsInCollection(BRAIN, "2999/01/01", format=f),
        lambda f: nbia.getStudy(BRAIN, patientId="LUNG-001", format=f),
        lambda f: nbia.getNewStudiesInPatient(LUNG, "LUNG-001", "2999/01/01", format=f),
    ):
        _nothing_in_any_format(empty)


def test_get_series_one_filter_at_a_time(api_site: PublicSite) -> None:
    lung = nbia.getSeries(collection=LUNG)
    row = lung[0]
    present = [key for key in SERIES_COLUMNS if key in row]
    assert list(row) == present  # v4 key order, null keys left out
    for key in ("SeriesDate", "StudyDate", "DateReleased", "MaxSubmissionTimestamp"):
        assert NBIA_DATE.fullmatch(row[key]), key
    assert isinstance(row["SeriesNumber"], int)
    assert isinstance(row["ImageCount"], int)
    assert isinstance(row["FileSize"], int)
    singles = {
        "seriesUid": (row["SeriesInstanceUID"], 1),
        "studyUid": (row["StudyInstanceUID"], 2),
        "patientId": (row["PatientID"].lower(), 4),
        "modality": ("seg", 3),
        "bodyPart": ("Brain", 9),
        "manufacturer": ("siemens", 8),
        "manufacturerModel": ("lightspeed vct", 8),
    }
    for argument, (value, count) in singles.items():
        found = nbia.getSeries(**{argument: value})
        assert len(found) == count, argument
    _in_every_format(lambda f: nbia.getSeries(collection=BRAIN, format=f), nbia.getSeries(BRAIN))
    updated = nbia.getUpdatedSeries("2000/01/01")
    assert len(updated) == len(api_site.catalogue.all_series(LUNG, BRAIN))
    _in_every_format(lambda f: nbia.getUpdatedSeries("2000/01/01", format=f), updated)
    _nothing_in_any_format(lambda f: nbia.getSeries(collection=LUNG, modality="MR", format=f))
    _nothing_in_any_format(lambda f: nbia.getUpdatedSeries("2999/12/31", format=f))


def test_series_size_sop_uids_tags_and_descriptions(api_site: PublicSite) -> None:
    uid = api_site.catalogue.series[BRAIN][0]
    size = nbia.getSeriesSize(uid)
    assert list(size[0]) == ["TotalSizeInBytes", "ObjectCount"]
    _in_every_format(lambda f: nbia.getSeriesSize(uid, format=f), size)
    sops = nbia.getSopInstanceUids(uid)
    assert len(sops) == 2
    _in_every_format(lambda f: nbia.getSopInstanceUids(uid, format=f), sops)
    _nothing_in_any_format(lambda f: nbia.getSeriesSize("1.2.3.4", format=f))
    _nothing_in_any_format(lambda f: nbia.getSopInstanceUids("1.2.3.4", format=f))
    tags = nbia.getDicomTags(uid)
    assert list(tags.columns) == ["element", "name", "data"]
    assert nbia.getDicomTags(uid, format="csv").equals(tags)
    assert nbia.getDicomTags("1.2.3.4") is None
    described = nbia.getCollectionDescriptions(format="df", removeHtml="yes")
    assert list(described.columns) == ["description", "id", "collectionName", "descriptionURI"]
    assert "<p>" not in described.loc[0, "description"]
    _nothing_in_any_format(lambda f: nbia.getSharedCart("no-such-cart", format=f))
    doi = "https://doi.org/10.0000/dicomhub.brain-mr-demo"
    for output in ("", "series"):

        def doi_metadata(fmt: str, output: str = output) -> Any:
            return nbia.getDoiMetadata(doi, output=output, format=fmt)

        _in_every_format(doi_metadata, doi_metadata(""))
    _nothing_in_any_format(lambda f: nbia.getDoiMetadata("https://doi.org/none", format=f))


def test_series_list_and_downloads_in_every_input_type(
    api_site: PublicSite, tmp_path: Path
) -> None:
    uids = api_site.catalogue.series[BRAIN][:2]
    listed = nbia.getSeriesList(uids, csv_filename="listed")
    assert list(listed.columns) == list(METADATA_COLUMNS)
    assert list(listed["SeriesInstanceUID"]) == uids
    assert NBIA_DATE.fullmatch(listed.loc[0, "StudyDate"])
    assert listed.loc[0, "SpeciesCode"] == 337915000
    assert (tmp_path / "listed.csv").exists()
    assert nbia.getSeriesList(["1.2.3.4"]) is None
    series_df = nbia.getSeries(collection=BRAIN, modality="SEG", format="df")
    by_df = nbia.downloadSeries(series_df, input_type="df", path="by-df", format="df")
    assert sorted(by_df["SeriesInstanceUID"]) == sorted(series_df["SeriesInstanceUID"])
    as_csv = nbia.downloadSeries(uids, input_type="list", path="by-list", format="csv")
    assert len(as_csv) == 2
    assert any(name.startswith("downloadSeries_metadata_") for name in os.listdir("."))
    assert nbia.downloadSeries(uids, input_type="list", path="named", csv_filename="mine") is None
    assert len(pd.read_csv("mine.csv")) == 2
    first = nbia.downloadSeries(
        api_site.catalogue.series[BRAIN], input_type="list", path="one", number=1
    )
    assert first is None
    assert len(os.listdir("one")) == 1
    manifest = nbia.getSimpleSearch(collections=[BRAIN], modalities=["SEG"], format="manifest_text")
    Path("seg.tcia").write_text(manifest)
    from_manifest = nbia.downloadSeries("seg.tcia", input_type="manifest", path="m", format="df")
    assert sorted(from_manifest["SeriesInstanceUID"]) == sorted(series_df["SeriesInstanceUID"])
    folder = Path("m") / str(from_manifest.loc[0, "SeriesInstanceUID"])
    assert sorted(os.listdir(folder)) == ["1-1.dcm", "1-2.dcm", "LICENSE"]
    failed = nbia.downloadSeries(["1.2.3.4"], input_type="list", path="unknown", format="df")
    assert failed.empty  # counted as failed: no folder, no metadata
    assert os.listdir("unknown") == []
    nbia.downloadImage(uids[0], "1.2.3.4", path="images")
    assert not Path("images").exists()


def test_simple_search_every_criterion_and_format(api_site: PublicSite) -> None:
    human = nbia.getSimpleSearch(species=["human"], size=2)
    assert human["totalPatients"] == 7
    assert len(human["resultSet"]) == 2
    assert nbia.getSimpleSearch(species=["mouse"]) is None
    narrowed = nbia.getSimpleSearch(
        manufacturers=["SIEMENS"], patients=["LUNG-001", "LUNG-002"], minStudies=2, size=100
    )
    assert [r["subjectId"] for r in narrowed["resultSet"]] == ["LUNG-001", "LUNG-002"]
    assert all(r["totalNumberOfSeries"] == 2 for r in narrowed["resultSet"])
    assert nbia.getSimpleSearch(minStudies=3) is None
    for field in ("subject", "studies", "series", "collection"):
        for direction in ("ascending", "descending"):
            page = nbia.getSimpleSearch(sortField=field, sortDirection=direction, size=100)
            assert page["totalPatients"] == 7, (field, direction)
    descending = nbia.getSimpleSearch(sortField="subject", sortDirection="descending", size=1)
    assert descending["resultSet"][0]["subjectId"] == "LUNG-004"
    with pytest.warns(DeprecationWarning, match="getSimpleSearch"):
        paged = nbia.getSimpleSearchWithModalityAndBodyPartPaged(
            modalities=["CT"], bodyParts=["CHEST"], start=2, size=1
        )
    assert [r["subjectId"] for r in paged["resultSet"]] == ["LUNG-003"]
    nbia.getSimpleSearch(collections=[BRAIN], format="manifest")
    (saved,) = [name for name in os.listdir(".") if name.endswith(".tcia")]
    assert sorted(nbia.manifestToList(saved)) == sorted(api_site.catalogue.series[BRAIN])
    header_only = nbia.getSimpleSearch(collections=["NO-SUCH"], format="manifest_text")
    assert header_only.splitlines()[-1] == "ListOfSeriesToDownload="
    assert nbia.getSimpleSearch(collections=["NO-SUCH"], format="uids") == []


def test_reports_on_every_input(api_site: PublicSite, tmp_path: Path) -> None:
    series = nbia.getSeries(collection=LUNG)
    as_json = nbia.makeSeriesReport(series, format="var")
    assert (as_json["subjects"], as_json["studies"], as_json["series"]) == (4, 8, 16)
    as_df = nbia.makeSeriesReport(pd.DataFrame(series), input_type="df", format="var")
    assert as_df["images"] == as_json["images"] == 48
    uids = api_site.catalogue.series[BRAIN]
    nbia.makeSeriesReport(uids, input_type="list", format="file", filename="report.txt")
    assert "Series: 9" in (tmp_path / "report.txt").read_text()
    summary = nbia.reportCollectionSummary(series)
    assert summary.loc[0, "Collection"] == LUNG
    assert (summary.loc[0, "Subjects"], summary.loc[0, "Images"]) == (4, 48)
    assert summary.loc[0, "DOIs"] == "https://doi.org/10.0000/dicomhub.lung-ct-demo"
    assert summary.loc[0, "Min DateReleased"] != "Not Specified"  # MM-DD-YYYY parsed
    by_list = nbia.reportCollectionSummary(uids, input_type="list", format="csv")
    assert by_list.loc[0, "Series"] == 9
    assert any(name.startswith("tcia_collection_report_") for name in os.listdir("."))
    both = nbia.reportDataSummary(nbia.getUpdatedSeries("2000/01/01"))
    assert list(both["Collection"]) == [BRAIN, LUNG]
    normalised = nbia.formatSeriesInput(uids[:2], "list", "")
    assert normalised["StudyDate"].notna().all()
    assert nbia.getSegRefSeries(api_site.catalogue.series[BRAIN][2]) == "N/A"  # no reference
    assert nbia.getSegRefSeries(api_site.catalogue.series[LUNG][0]) == "N/A"  # not a SEG
    tags = nbia.reportDicomTags(uids[:2], elements=["(0008,0060)", "(0018,0015)"])
    assert list(tags.columns) == [
        "Series Instance UID (0020,000E)",
        "Modality (0008,0060)",
        "Body Part Examined (0018,0015)",
    ]
    assert len(nbia.reportDicomTags(uids[:2]).columns) > 20


def test_shared_cart_in_every_format_and_its_report(api_site: PublicSite) -> None:
    uids = api_site.catalogue.series[LUNG][:3]
    with closing(api_site.login("alice")) as alice:
        alice.delete("/api/basket")
        assert alice.post("/api/basket/series", json={"uids": uids}).status_code == 200
        assert alice.post("/api/basket/share", json={"name": "sweep-cart"}).status_code == 200
    cart = nbia.getSharedCart("sweep-cart")
    assert sorted(row["SeriesInstanceUID"] for row in cart) == sorted(uids)
    assert cart[0]["Date Released"].endswith(" 00:00:00.0")
    _in_every_format(lambda f: nbia.getSharedCart("sweep-cart", format=f), cart)
    summary = nbia.reportCollectionSummary(cart)
    assert (summary.loc[0, "Collection"], summary.loc[0, "Series"]) == (LUNG, 3)


def _referenced(rows: list[dict[str, str]], start: str, follower: str) -> str:
    """The referenced series UID as ``getSegRefSeries`` finds it in getDicomTags rows."""
    df = pd.DataFrame(rows)
    found = (df["element"] == start) & (df["element"].shift(-1) == follower)
    return str(df.loc[df.index[found].item() + 1, "data"])


def _file(ds: Dataset) -> bytes:
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.66.4"
    ds.SOPInstanceUID = "1.2.3.999"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = DicomBytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_tag_rows_carry_the_nesting_seg_and_rtstruct_lookups_need() -> None:
    item = Dataset()
    item.SeriesInstanceUID = "1.2.3.100"
    ref = Dataset()
    ref.ReferencedSOPInstanceUID = "1.2.3.100.1"
    item.ReferencedInstanceSequence = [ref]
    seg = Dataset()
    seg.Modality = "SEG"
    seg.ReferencedSeriesSequence = [item]
    rows = dicom_tags(_file(seg))
    assert _referenced(rows, ">(0008,114A)", ">(0020,000E)") == "1.2.3.100"
    series = Dataset()
    series.SeriesInstanceUID = "1.2.3.200"
    study = Dataset()
    study.RTReferencedSeriesSequence = [series]
    frame = Dataset()
    frame.RTReferencedStudySequence = [study]
    rt = Dataset()
    rt.Modality = "RTSTRUCT"
    rt.ReferencedFrameOfReferenceSequence = [frame]
    rows = dicom_tags(_file(rt))
    assert _referenced(rows, ">>(3006,0014)", ">>>(0020,000E)") == "1.2.3.200"


def test_bad_requests_reach_tcia_utils_as_errors(
    api_site: PublicSite, caplog: pytest.LogCaptureFixture
) -> None:
    """Malformed input is a 400 with a reason (unknown series a 404): logged, never a crash."""
    series = api_site.catalogue.series[LUNG][0]
    with caplog.at_level(logging.ERROR, logger="tcia_utils.nbia"):
        assert nbia.getSeries(seriesUid="1.2.abc") is None
        assert nbia.getSeries(collection="LUNG\x00") is None
        assert nbia.getSopInstanceUids("../../etc/passwd") is None
        assert nbia.getDicomTags("1.2.3'; DROP TABLE series;--") is None
        assert nbia.getSeriesList(["1.2.3", "x.y"]) is None
        nbia.downloadSeries(["1.2.abc", "1.2.3.4"], input_type="list", path="bad")
        nbia.downloadImage(series, "x.y", path="bad-image")
    text = caplog.text
    assert text.count("Status code: 400") == 5
    assert "Error: 400 Series failed: 1.2.abc" in text
    assert "Error: 404 Series failed: 1.2.3.4" in text
    assert "Error: 400 -- double check your permissions" in text
    assert os.listdir("bad") == []
