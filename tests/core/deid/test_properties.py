"""Property tests over generated datasets and collections (hypothesis).

* no attribute that the profile (with the drawn options) marks D, Z, X or U keeps its
  original value anywhere in the output, nested sequences included;
* every date the recipe shifts moves by exactly the offset, at any depth;
* UID replacement is one consistent, injective function over a whole collection, so
  references between instances still resolve.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom import config
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID, CTImageStorage

from dicomhub.core.deid import Deidentifier, Option, _annex_e, deidentify
from dicomhub.core.deid._rows import AnnexRow
from dicomhub.core.deid.table import COMPOUND, PRIVATE_ROW, dict_vr, effective_code, parse_tag

from .helpers import ct, item, recipe, roundtrip, seq

#: Unlisted sequences used as containers: (0008,1115) > (0008,114A) > (0040,A170).
CONTAINERS = (
    "ReferencedSeriesSequence",
    "ReferencedInstanceSequence",
    "PurposeOfReferenceCodeSequence",
)
SUPPORTED = {
    "AE", "AS", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OW", "PN", "SH",
    "SL", "SQ", "SS", "ST", "TM", "UC", "UI", "UL", "UR", "US", "UT",
}  # fmt: skip
SKIP = {0x00100010, 0x00100020}  # patient name/ID: mapped, tested separately


def eligible_rows() -> list[tuple[int, str, AnnexRow]]:
    rows = []
    for row in _annex_e.ROWS:
        if row.tag == PRIVATE_ROW:
            continue
        tag, mask = parse_tag(row.tag)
        vr = dict_vr(tag) if mask == 0xFFFFFFFF else None
        if vr in SUPPORTED and tag >> 16 >= 0x0008 and tag not in SKIP:
            rows.append((tag, vr, row))
    return rows


ROWS = eligible_rows()


def sentinel(vr: str, n: int) -> Any:
    """A value unique to ``n`` and valid for ``vr``."""
    day = dt.date(2001, 1, 1) + dt.timedelta(days=n)
    values: dict[str, Any] = {
        "AE": f"AE{n:05d}", "AS": f"{n % 1000:03d}D", "CS": f"CS{n:05d}",
        "DA": day.strftime("%Y%m%d"), "DT": day.strftime("%Y%m%d") + "101010",
        "DS": str(n + 1000), "IS": str(n + 1000), "FD": n + 0.5, "FL": n + 0.5,
        "SL": n + 1000, "SS": n + 1000, "UL": n + 1000, "US": n + 1000,
        "TM": f"{n % 24:02d}{n % 60:02d}17", "UI": f"1.2.999.{n}", "UR": f"http://phi{n:05d}",
        "OB": b"PHI%05d\x00" % n, "OW": b"PHI%05d\x00" % n,
    }  # fmt: skip
    if vr == "SQ":
        return seq(item(ReferencedSOPInstanceUID=f"1.2.999.{n}.1"))
    return values.get(vr, f"PHI{n:05d}")


options = st.fixed_dictionaries(
    {
        "retain_patient_characteristics": st.booleans(),
        "retain_device_identity": st.booleans(),
        "retain_institution_identity": st.booleans(),
        "retain_safe_private": st.booleans(),
        "retain_uids": st.booleans(),
        "clean_descriptors": st.booleans(),
        "clean_structured_content": st.booleans(),
        "clean_graphics": st.booleans(),
        "compound": st.sampled_from(["conformant", "minimal"]),
        "dates": st.sampled_from(["none", "full", "modified"]),
    }
)
placements = st.lists(
    st.tuples(st.integers(0, len(ROWS) - 1), st.integers(0, 3)), min_size=1, max_size=80
)


def to_recipe_kwargs(drawn: dict[str, Any]) -> dict[str, Any]:
    kw = dict(drawn)
    dates = kw.pop("dates")
    kw["retain_long_full_dates"] = dates == "full"
    kw["retain_long_modified_dates"] = dates == "modified"
    return kw


def levels(ds: Dataset) -> list[Dataset | None]:
    """The top dataset and the first item at each container depth (None if gone)."""
    out: list[Dataset | None] = [ds]
    current: Dataset | None = ds
    for keyword in CONTAINERS:
        sq = current.get(keyword) if current is not None else None
        current = sq[0] if sq else None
        out.append(current)
    return out


def all_strings(ds: Dataset) -> Iterator[str]:
    meta = getattr(ds, "file_meta", None)
    for elem in [*ds.iterall(), *(meta or [])]:
        value = elem.value
        if isinstance(value, bytes):
            yield value.decode("latin-1")
        elif isinstance(value, list | MultiValue):
            yield from (str(v) for v in value)
        elif value is not None and elem.VR != "SQ":
            yield str(value)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, MultiValue | list):
        a = [str(x) for x in a]
    if isinstance(b, MultiValue | list):
        b = [str(x) for x in b]
    return str(a) == str(b)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(options, placements, st.booleans())
def test_no_dzxu_attribute_keeps_its_value(
    drawn: dict[str, Any], placed: list[tuple[int, int]], from_file: bool
) -> None:
    kw = to_recipe_kwargs(drawn)
    rec = recipe(**kw)
    columns = frozenset(opt.column for opt in rec.options())
    ds = ct()
    chain = [ds] + [Dataset() for _ in CONTAINERS]
    for parent, keyword, child in zip(chain, CONTAINERS, chain[1:], strict=False):
        setattr(parent, keyword, seq(child))
    originals: list[tuple[int, int, Any, str]] = []
    seen: set[tuple[int, int]] = set()
    with config.disable_value_validation():
        for n, (index, depth) in enumerate(placed):
            tag, vr, row = ROWS[index]
            if (depth, tag) in seen:
                continue
            seen.add((depth, tag))
            value = sentinel(vr, n + 1)
            chain[depth].add_new(tag, vr, value)
            code = effective_code(row, columns)
            code = COMPOUND[rec.compound].get(code, code)
            originals.append((depth, tag, value, code))
        if from_file:
            ds = roundtrip(ds)
        deidentify(ds, rec)
    out_levels = levels(ds)
    everything = "\x01".join(all_strings(ds))
    for depth, tag, value, code in originals:
        if code not in ("D", "Z", "X", "U"):
            continue
        level = out_levels[depth]
        if dict_vr(tag) == "SQ":
            nested_uid = f"1.2.999.{value[0].ReferencedSOPInstanceUID.split('.')[-2]}.1"
            if not rec.retain_uids:
                assert nested_uid not in everything, (hex(tag), code)
            continue
        if level is not None and tag in level:
            assert not same(level[tag].value, value), (hex(tag), code, depth)
        if isinstance(value, str) and (value.startswith(("PHI", "1.2.999.", "AE", "CS"))):
            assert value not in everything, (hex(tag), code, depth)


def unlisted_dates() -> list[tuple[int, str]]:
    listed = {parse_tag(r.tag)[0] for r in _annex_e.ROWS if r.tag != PRIVATE_ROW}
    found: list[tuple[int, str]] = []
    for keyword in ("ExpiryDate", "DateOfGainCalibration", "StudyUpdateDateTime"):
        tag = parse_tag(keyword)[0]
        found.append((tag, dict_vr(tag) or "DA"))
    assert not {tag for tag, _ in found} & listed
    modified = frozenset({Option.RETAIN_LONG_MODIFIED_DATES.column})
    return found + [
        (tag, vr)
        for tag, vr, row in ROWS
        if vr in ("DA", "DT") and effective_code(row, modified) == "C"
    ]


DATE_ATTRS = unlisted_dates()
dates = st.dates(min_value=dt.date(1920, 1, 1), max_value=dt.date(2080, 12, 31))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(-5000, 5000),
    st.lists(
        st.tuples(
            st.sampled_from(DATE_ATTRS),
            st.integers(0, 3),
            st.lists(dates, min_size=1, max_size=3),
            st.sampled_from(["", "1016", "101600.5", "101600+0100", "235959.999999-1200"]),
        ),
        min_size=1,
        max_size=30,
    ),
    st.booleans(),
)
def test_every_date_moves_by_exactly_the_offset(
    offset: int, placed: list[Any], from_file: bool
) -> None:
    rec = recipe(date_offset_days=offset, retain_long_modified_dates=True)
    ds = ct()
    chain = [ds] + [Dataset() for _ in CONTAINERS]
    for parent, keyword, child in zip(chain, CONTAINERS, chain[1:], strict=False):
        setattr(parent, keyword, seq(child))
    expected: dict[tuple[int, int], list[str]] = {}
    for (tag, vr), depth, days, clock in placed:
        shown = [d.strftime("%Y%m%d") + (clock if vr == "DT" else "") for d in days]
        chain[depth].add_new(tag, vr, shown if len(shown) > 1 else shown[0])
        moved = [d + dt.timedelta(days=offset) for d in days]
        expected[(depth, tag)] = [
            m.strftime("%Y%m%d") + (clock if vr == "DT" else "") for m in moved
        ]
    # ct() carries a StudyDate; it is expected moved unless a placed value replaced it.
    expected.setdefault(
        (0, 0x00080020), [(dt.date(2020, 1, 15) + dt.timedelta(offset)).strftime("%Y%m%d")]
    )
    if from_file:
        ds = roundtrip(ds)
    result = deidentify(ds, rec)
    assert result.issues == []
    out = levels(ds)
    for (depth, tag), values in expected.items():
        level = out[depth]
        assert level is not None
        value = level[tag].value
        got = [str(v) for v in value] if isinstance(value, MultiValue) else [str(value)]
        assert got == values, hex(tag)


def collection(n_series: int, per_series: int) -> list[Dataset]:
    out = []
    for s in range(n_series):
        for i in range(per_series):
            sop = f"1.2.5.{s}.{i}"
            ds = ct(SOPInstanceUID=sop, SeriesInstanceUID=f"1.2.5.{s}", FrameOfReferenceUID="1.2.5")
            ds.file_meta.MediaStorageSOPInstanceUID = UID(sop)
            ds.ReferencedImageSequence = seq(
                item(ReferencedSOPClassUID=CTImageStorage, ReferencedSOPInstanceUID=f"1.2.5.{s}.0")
            )
            ds.SourceImageSequence = seq(
                item(ReferencedSOPClassUID=CTImageStorage, ReferencedSOPInstanceUID=f"1.2.5.0.{i}")
            )
            out.append(ds)
    return out


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 5), st.booleans())
def test_uid_mapping_is_consistent_over_a_collection(
    n_series: int, per_series: int, fresh_engine: bool
) -> None:
    originals = collection(n_series, per_series)
    sops = [str(ds.SOPInstanceUID) for ds in originals]
    engine = Deidentifier(recipe())
    merged: dict[str, str] = {}
    outs = []
    for ds in collection(n_series, per_series):
        run = (Deidentifier(recipe()) if fresh_engine else engine)(roundtrip(ds))
        for old, new in run.uid_map.items():
            assert merged.setdefault(old, new) == new
        outs.append(run.dataset)
    assert len(set(merged.values())) == len(merged)  # injective
    new_sops = {old: str(out.SOPInstanceUID) for old, out in zip(sops, outs, strict=True)}
    for out in outs:
        assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
        assert out.StudyInstanceUID == outs[0].StudyInstanceUID
        assert out.FrameOfReferenceUID == outs[0].FrameOfReferenceUID
        for keyword in ("ReferencedImageSequence", "SourceImageSequence"):
            assert out[keyword][0].ReferencedSOPClassUID == CTImageStorage
    for out, ds in zip(outs, originals, strict=True):
        # Every reference resolves to the replaced UID of the instance it names.
        ref = out.ReferencedImageSequence[0].ReferencedSOPInstanceUID
        assert ref == new_sops[f"{ds.SeriesInstanceUID}.0"]
        source = out.SourceImageSequence[0].ReferencedSOPInstanceUID
        assert source == merged[str(ds.SourceImageSequence[0].ReferencedSOPInstanceUID)]
        if str(ds.SourceImageSequence[0].ReferencedSOPInstanceUID) in new_sops:
            assert source in new_sops.values()


def test_options_change_exactly_their_column() -> None:
    """Each option alone changes exactly the attributes in its column, nothing else."""
    singles = [(tag, vr, row) for tag, vr, row in ROWS if vr != "SQ"]

    def build() -> Dataset:
        ds = ct()
        for n, (tag, vr, _) in enumerate(singles):
            with config.disable_value_validation():
                ds.add_new(tag, vr, sentinel(vr, n + 1))
        return ds

    base = build()
    deidentify(base, recipe())
    flags = {
        Option.RETAIN_UIDS: "retain_uids",
        Option.RETAIN_DEVICE_IDENTITY: "retain_device_identity",
        Option.RETAIN_INSTITUTION_IDENTITY: "retain_institution_identity",
        Option.RETAIN_PATIENT_CHARACTERISTICS: "retain_patient_characteristics",
        Option.RETAIN_LONG_FULL_DATES: "retain_long_full_dates",
        Option.RETAIN_LONG_MODIFIED_DATES: "retain_long_modified_dates",
        Option.CLEAN_DESCRIPTORS: "clean_descriptors",
    }
    provenance = {0x00120063, 0x00120064, 0x00280303}
    for option, flag in flags.items():
        out = build()
        deidentify(out, recipe(**{flag: True}))
        changed = {
            tag
            for tag, _, _ in singles
            if (tag in base) != (tag in out)
            or (tag in out and not same(base[tag].value, out[tag].value))
        }
        column = {tag for tag, _, row in singles if option.column in dict(row.options)}
        assert changed - provenance <= column, (option, sorted(map(hex, changed - column)))
        for n, (tag, vr, row) in enumerate(singles):
            if dict(row.options).get(option.column) == "K" and tag not in provenance:
                assert same(out[tag].value, sentinel(vr, n + 1)), (option, hex(tag))
