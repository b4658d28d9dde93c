"""Nasty inputs: each either de-identifies with nothing leaked, or is refused clearly.

"Nothing leaked" is judged by ``leaks.py`` over the written and re-read output: no
name, ID, date, instance UID or removed value of the original survives at any depth,
in file meta or in a private block, and no curve, overlay or unkept private survives.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom import config, dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomhub.core.deid import (
    PRIVATE_CREATOR,
    Deidentifier,
    DeidError,
    DeidResult,
    MissingUidError,
    UndecodableError,
    UnmappedPatientError,
)

from . import nasty
from .corpus import KIT, OPTIONS, read
from .helpers import item, recipe, seq
from .leaks import leaks, secrets_of, structure_problems

ARCHIVE_ID = "ARCHIVE-0001"


def run(
    data: bytes | Dataset, fields: dict[str, Any] | None = None, *, mapped: bool = True
) -> tuple[Dataset, DeidResult]:
    """De-identify, write, read back; assert that nothing leaked; return output and result."""
    if isinstance(data, Dataset):
        data = nasty.encode(data)
    rec = recipe(**(KIT if fields is None else fields))
    original = read(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the originals' odd values, decoded to judge
        patient_id = original["PatientID"].value
        if isinstance(patient_id, bytes):
            patient_id = patient_id.decode("latin-1")
        patients = {str(patient_id).strip(): (ARCHIVE_ID, None)} if mapped else None
        engine = Deidentifier(rec, patients=patients)
        secrets = secrets_of(original, engine)
    ds = read(data)
    result = engine(ds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. an unknown character set, kept as it was
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        output = dcmread(io.BytesIO(buf.getvalue()))
        problems = leaks(output, secrets, engine) + structure_problems(output, engine)
    assert problems == []
    return output, result


def test_the_leak_checker_finds_what_it_looks_for() -> None:
    """Run on an untouched instance, the checker reports each kind of secret it gathers."""
    ds = nasty.graphics(nasty.privates(nasty.leaky_meta(nasty.deep(2))))
    ds.StudyDescription = "see 1.2.3.77.1 for Nastyname"
    engine = Deidentifier(recipe(**KIT))
    found = "\n".join(leaks(ds, secrets_of(ds, engine), engine))
    for expected in (
        "'Nastyname^Patricia' (from PatientName)",
        "'MRN-77' (from PatientID)",
        "'19600101' (from PatientBirthDate)",
        "'1.2.3.77.1' (from UID",
        "'Deep1^Op' (from PN",
        "'General Hospital' (from InstitutionName)",
        "'PACS_NASTY' (from file meta",
        "'Private^Person' (from private",
    ):
        assert expected in found
    problems = "\n".join(structure_problems(ds, engine))
    assert "curve/overlay group survives" in problems
    assert "private attribute not on the keep list survives" in problems
    assert "MediaStorageSOPInstanceUID differs" in problems


@pytest.mark.parametrize("syntax", nasty.SYNTAXES, ids=lambda s: s.name)
def test_every_syntax_with_undefined_lengths(syntax: str) -> None:
    ds = nasty.undefined_lengths(nasty.deep(4))
    output, _ = run(nasty.encode(ds, syntax))
    assert output.file_meta.TransferSyntaxUID == syntax
    assert output.PatientID == ARCHIVE_ID
    assert output.ReferencedSeriesSequence[0].ReferencedSeriesSequence[0].ContributionDateTime


def test_fifty_levels_deep() -> None:
    output, _ = run(nasty.deep(50))
    level = output
    for _ in range(50):
        level = level.ReferencedSeriesSequence[0]
    assert level.get("OperatorsName") in (None, "ANONYMIZED")
    assert level.ContributionDateTime.endswith("101600+0100")


def test_nesting_beyond_reason_is_refused_clearly() -> None:
    ds = nasty.deep(5)
    level = ds
    for _ in range(5):
        level = level.ReferencedSeriesSequence[0]
    # Built in memory (a reader would refuse first): deeper than the interpreter can walk.
    for _ in range(3000):
        child = item(OperatorsName="Too^Deep")
        level.ReferencedSeriesSequence = seq(child)
        level = child
    with pytest.raises(UndecodableError, match="nested too deeply"):
        Deidentifier(recipe(**KIT))(ds)


def test_huge_multi_valued_strings() -> None:
    output, result = run(nasty.huge_values(3000))
    assert "OtherPatientIDs" not in output
    assert len(output.DateOfLastCalibration) == 3000
    # Hashed UIDs are longer: the list outgrows a 16-bit length and pydicom writes it as UN.
    assert len(result.uid_map) >= 3000


def test_huge_free_text_is_cleaned() -> None:
    output, _ = run(nasty.huge_values(3000), {**KIT, "clean_descriptors": True})
    # Cleaned, not dropped: 300 notes, each with its name and date taken out.
    assert output.ImageComments.count("note") == 300


def test_wrong_vrs_for_known_tags() -> None:
    output, result = run(nasty.wrong_vr_file())
    assert output.PatientID == ARCHIVE_ID
    assert output["PatientID"].VR == "LO"
    assert output.PatientName == ARCHIVE_ID
    assert output.StudyDate == "20170420"  # shifted by -1000 days, now as DA
    assert output.InstitutionName == "ANONYMIZED"  # X/Z/D kept as a dummy
    assert any("where LO is due" in issue.reason for issue in result.issues)


def test_sequence_written_as_text_and_text_as_sequence() -> None:
    ds = nasty.phi_ct()
    ds.add_new(0x00081115, "LO", "1.2.3.4.100.1 Nastyname")  # ReferencedSeriesSequence
    ds.add_new(0x00081070, "SQ", seq(item(PatientName="Hidden^Inside")))  # OperatorsName
    with config.disable_value_validation():
        output, result = run(ds)
    assert "ReferencedSeriesSequence" not in output
    assert 0x00081070 not in output
    assert any("sequence" in issue.reason for issue in result.issues)


@pytest.mark.parametrize(("charset", "name", "text"), nasty.CHARSETS, ids=lambda v: str(v)[:20])
def test_names_removed_in_every_character_set(
    charset: str | list[str], name: str, text: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an unknown character set warns when encoded
        data = nasty.encode(nasty.charset_ct(charset, name, text))
    output, _ = run(data, {**KIT, "clean_descriptors": True})
    assert output.PatientName == ARCHIVE_ID
    assert output.ReferencedSeriesSequence[0].get("OperatorsName") in (None, "ANONYMIZED")


def test_big_endian_and_deflated_keep_their_syntax_and_values() -> None:
    for syntax in nasty.SYNTAXES[2:]:
        output, _ = run(
            nasty.encode(nasty.sr_document(), syntax), {**KIT, "clean_structured_content": True}
        )
        assert output.file_meta.TransferSyntaxUID == syntax
        assert output.ContentDate == "20170421"


@pytest.mark.parametrize(("preamble", "meta"), [(False, True), (False, False), (True, False)])
def test_files_without_preamble_or_file_meta(preamble: bool, meta: bool) -> None:
    data = nasty.encode(nasty.phi_ct(), ImplicitVRLittleEndian, preamble=preamble, meta=meta)
    output, _ = run(data)
    assert output.file_meta.MediaStorageSOPInstanceUID == output.SOPInstanceUID
    assert output.file_meta.MediaStorageSOPClassUID == output.SOPClassUID
    assert output.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian


def test_zero_length_values() -> None:
    output, _ = run(nasty.zero_lengths())
    assert output.PatientID == ARCHIVE_ID
    assert output.get("StudyDate") in (None, "")


def test_zero_length_patient_id_is_unmapped() -> None:
    ds = read(nasty.encode(nasty.phi_ct(PatientID="")))
    with pytest.raises(UnmappedPatientError) as info:
        Deidentifier(recipe(**KIT), patients={"MRN-77": (ARCHIVE_ID, None)})(ds)
    assert info.value.code == "unmapped_patient"


@pytest.mark.parametrize("keyword", ["SOPInstanceUID", "SOPClassUID"])
def test_missing_sop_uids_are_refused_clearly(keyword: str) -> None:
    ds = nasty.phi_ct()
    delattr(ds, keyword)
    with pytest.raises(MissingUidError, match=keyword) as info:
        Deidentifier(recipe(**KIT))(read(nasty.encode(ds, meta=False)))
    assert info.value.code == "missing_uid"
    assert "MRN" not in info.value.message


def test_private_blocks_without_or_with_duplicate_creators() -> None:
    fields = {**KIT, "keep_private": ("0009,ACME 1.0,01", "0009,ACME 1.0,02", "0009,ACME 1.0,03")}
    output, _ = run(nasty.privates(nasty.phi_ct()), fields)
    block = output.private_block(0x0009, "ACME 1.0")
    assert block[0x01].value == "kept text"
    assert block[0x02].value != "1.2.3.4.1"  # a kept private UID is hashed like the others
    assert block[0x02].value == output.StudyInstanceUID
    assert 0x03 not in block  # a person's name never stays
    assert 0x00111001 not in output
    # The block with an empty creator went; the dicomhub block took its place.
    assert output[0x00130010].value == PRIVATE_CREATOR


def test_overlays_curves_and_graphics_go_whatever_the_option() -> None:
    for fields in (KIT, {**KIT, "clean_graphics": True}):
        output, _ = run(nasty.graphics(nasty.phi_ct()), fields)
        assert not [e for e in output if e.tag.group & 0xFF00 in (0x5000, 0x6000)]


def test_waveform_items() -> None:
    output, _ = run(nasty.waveform(nasty.phi_ct()))
    assert output.WaveformSequence[0].WaveformData == b"\x00\x01\x00\x02"


@pytest.mark.parametrize("clean", [False, True])
def test_structured_report_content(clean: bool) -> None:
    output, _ = run(nasty.sr_document(), {**KIT, "clean_structured_content": clean})
    items = output.ContentSequence
    if clean:
        assert items[3].DateTime == "20170422093000-0500"
        assert items[4].UID != "1.2.3.4.55.66"
        assert items[1].PersonName != "Reader^Rolf"
    else:
        assert len(items) == 1
        assert len(items[0]) == 0


def test_file_meta_leaks_nothing_and_matches_the_dataset() -> None:
    output, _ = run(nasty.leaky_meta(nasty.phi_ct()))
    assert sorted(output.file_meta.keys()) == [
        0x00020000, 0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012, 0x00020013,
    ]  # fmt: skip
    assert output.file_meta.MediaStorageSOPInstanceUID == output.SOPInstanceUID


def test_other_ids_referenced_patient_and_request_attributes() -> None:
    output, _ = run(nasty.phi_ct(), {**KIT, "clean_descriptors": True, "retain_uids": False})
    assert "OtherPatientIDsSequence" not in output
    assert "ReferencedPatientSequence" not in output
    for request in output.get("RequestAttributesSequence", []):
        assert "RequestedProcedureID" not in request
        assert request.StudyInstanceUID == output.StudyInstanceUID


@pytest.mark.parametrize(
    ("age", "kept"),
    [("045Y", "045Y"), ("089Y", "089Y"), ("090Y", "090Y"), ("102Y", "090Y"), ("1085M", None)],
)
def test_ages_capped_at_ninety(age: str, kept: str | None) -> None:
    with config.disable_value_validation():
        ds = nasty.phi_ct(PatientAge=age)
    output, result = run(ds, {**KIT, "retain_patient_characteristics": True})
    assert output.get("PatientAge") == kept
    if kept is None:
        assert any("invalid age" in issue.reason for issue in result.issues)


def test_ages_in_other_units() -> None:
    from dicomhub.core.deid.ages import BadAge, cap_age

    # Three digits of months, weeks or days never reach 90 years; they stay exact.
    assert [cap_age(a) for a in ("011M", "999D", "999W", "999M", "100Y")] == [
        "011M", "999D", "999W", "999M", "090Y",
    ]  # fmt: skip
    with pytest.raises(BadAge):
        cap_age("45Y")


def test_refusals_are_deid_errors_with_codes() -> None:
    assert issubclass(UnmappedPatientError, DeidError)
    assert {MissingUidError.code, UndecodableError.code, DeidError.code} == {
        "missing_uid", "undecodable_attribute", "deid_failed",
    }  # fmt: skip


# Hypothesis: PHI placed anywhere, in any syntax, with any lengths, never survives.
PLACES = ("top", "nested", "deep", "private", "text")
phi_values = st.text(
    alphabet=st.characters(min_codepoint=0x41, max_codepoint=0x5A), min_size=5, max_size=12
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=phi_values,
    places=st.sets(st.sampled_from(PLACES), min_size=1),
    syntax=st.sampled_from(nasty.SYNTAXES),
    undefined=st.booleans(),
    option=st.sampled_from(["retain_safe_private", "clean_descriptors", "retain_device_identity"]),
)
def test_planted_phi_never_survives(
    name: str, places: set[str], syntax: str, undefined: bool, option: str
) -> None:
    ds = nasty.deep(3)
    person = f"{name}^Zed"
    if "top" in places:
        ds.ReferringPhysicianName = person
    if "nested" in places:
        ds.ReferencedSeriesSequence[0].PerformingPhysicianName = person
    if "deep" in places:
        ds.ReferencedSeriesSequence[0].ReferencedSeriesSequence[0].ReferencedSeriesSequence[
            0
        ].add_new(0x00081050, "PN", person)
    if "private" in places:
        ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
        ds.add_new(0x00291008, "CS", f"Q{name}"[:10])
        ds.add_new(0x00291020, "OB", f"Q{person} private".encode() + b" ")
    if "text" in places:
        # A name in free text is found when the header names that person somewhere
        # (free text alone cannot tell a name from a word).
        who = person if places & {"top", "nested", "deep"} else "the patient"
        ds.StudyDescription = f"CT for {who} on 2020-01-15, see 1.2.3.4.100.1"
        ds.ImageComments = f"{who} comment"
    if undefined:
        nasty.undefined_lengths(ds)
    output, _ = run(nasty.encode(ds, syntax), {**KIT, option: True})
    assert output.file_meta.TransferSyntaxUID == syntax


def test_default_syntax_constant() -> None:
    assert nasty.SYNTAXES[0] == ExplicitVRLittleEndian


@pytest.fixture(scope="module")
def damaged_source() -> bytes:
    return nasty.encode(nasty.deep(3))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.integers(200, 10**6)),
)
def test_damaged_files_are_refused_or_cleaned(
    damaged_source: bytes, flips: list[tuple[int, int]], cut: int | None
) -> None:
    """Random damage past the file meta: a refusal with a known code, or a clean output."""
    data = bytearray(damaged_source)
    body = len(data) - 400
    for where, byte in flips:
        data[400 + where % body] = byte
    if cut is not None:
        data = data[: 400 + cut % body]
    try:
        ds = read(bytes(data))
    except Exception:
        return  # the reader refuses it; the submitter quarantines it as unreadable
    refusal: DeidError | None = None
    try:
        Deidentifier(recipe(**KIT))(ds)
    except DeidError as exc:
        refusal = exc
    if refusal is not None:
        assert refusal.code in ("missing_uid", "undecodable_attribute", "deid_failed")
        assert "Nastyname" not in refusal.message
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        texts = list(_readable_texts(ds))
    assert not [text for text in texts if "Nastyname" in text]


def _readable_texts(ds: Dataset) -> Iterator[str]:
    """Text values at any depth, skipping kept elements too damaged to decode."""
    for tag in list(ds.keys()):
        try:
            elem = ds[tag]
        except Exception:
            continue
        if elem.VR == "SQ":
            for child in elem.value:
                yield from _readable_texts(child)
        elif elem.VR in ("PN", "LO", "SH", "LT", "ST", "UT") and elem.value:
            yield str(elem.value)


def test_elements_pydicom_could_not_write_are_repaired_or_removed() -> None:
    """File meta in the body, an item delimiter at the top, kept elements without a VR."""
    ds = read(nasty.encode(nasty.phi_ct()))
    ds._dict[BaseTag(0x00020016)] = RawDataElement(
        BaseTag(0x00020016), "AE", 4, b"SRC ", 0, False, True, True, False
    )
    ds._dict[BaseTag(0xFFFEE0DD)] = RawDataElement(
        BaseTag(0xFFFEE0DD), "NONE", 0, b"", 0, False, True, True, False
    )
    for tag, value in ((0x00180050, b"2.5 "), (0x00189999, b"abcd")):  # known, unknown
        ds._dict[BaseTag(tag)] = RawDataElement(
            BaseTag(tag), None, len(value), value, 0, False, True, True, False
        )
    result = Deidentifier(recipe(**KIT), patients={"MRN-77": (ARCHIVE_ID, None)})(ds)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    output = dcmread(io.BytesIO(buf.getvalue()))
    assert output.SliceThickness == 2.5
    assert not {0x00020016, 0xFFFEE0DD, 0x00189999} & set(output.keys())
    assert output.file_meta.MediaStorageSOPInstanceUID == output.SOPInstanceUID
    assert result.patient == ("MRN-77", ARCHIVE_ID)


def _dictionary_tags() -> list[tuple[int, str]]:
    """Standard attributes of the VRs that carry names, dates, UIDs and short text."""
    from pydicom._dicom_dict import DicomDictionary

    return sorted(
        (tag, entry[0])
        for tag, entry in DicomDictionary.items()
        if entry[0] in ("PN", "DA", "DT", "UI", "AE", "LO", "SH", "LT")
        and 0x0008 <= tag >> 16 < 0x7FE0
        and tag not in (0x00080005, 0x00100010, 0x00100020)  # charset; the mapped patient
    )


DICTIONARY_TAGS = _dictionary_tags()
SENTINELS = {
    "PN": "Sentinel{n}^Person",
    "DA": "2011{m:02d}{d:02d}",
    "DT": "2011{m:02d}{d:02d}101500.25+0200",
    "UI": "1.2.3.4242.{n}",
    "AE": "AET{n}",
    "LO": "Sentinel{n} text",
    "SH": "Sent{n}",
    "LT": "Sentinel{n} long text",
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    placed=st.lists(
        st.tuples(st.sampled_from(DICTIONARY_TAGS), st.integers(0, 3)), min_size=1, max_size=30
    ),
    syntax=st.sampled_from(nasty.SYNTAXES),
    options=st.sets(st.sampled_from(OPTIONS[1:])),
)
def test_any_standard_attribute_at_any_depth(
    placed: list[tuple[tuple[int, str], int]], syntax: str, options: set[str]
) -> None:
    """Names, dates, UIDs, AE titles and text in any standard attribute, at any depth."""
    ds = nasty.deep(3)
    levels = [ds]
    for _ in range(3):
        levels.append(levels[-1].ReferencedSeriesSequence[0])
    with config.disable_value_validation():
        for n, ((tag, vr), depth) in enumerate(placed):
            if tag in levels[depth]:
                continue
            value = SENTINELS[vr].format(n=n, m=n % 12 + 1, d=n % 28 + 1)
            levels[depth].add_new(tag, vr, value)
    output, _ = run(nasty.encode(ds, syntax), {**KIT, **dict.fromkeys(options, True)})
    assert output.PatientID == ARCHIVE_ID


def test_engine_in_worker_threads_matches_the_main_thread() -> None:
    """Promotion runs engines in a thread pool, where warnings are not captured."""
    from concurrent.futures import ThreadPoolExecutor

    data = nasty.encode(nasty.deep(3))

    def one(_: int) -> str:
        ds = read(data)
        Deidentifier(recipe(**KIT))(ds)
        return str(ds.SOPInstanceUID)

    main = one(0)
    with ThreadPoolExecutor(max_workers=2) as pool:
        assert set(pool.map(one, range(4))) == {main}
