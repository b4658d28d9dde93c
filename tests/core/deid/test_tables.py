"""The generated tables: edition, row and code counts (deid.md §1.7), provenance of the data."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest

from dicomhub.core.deid import _annex_e, _private_tags
from dicomhub.core.deid.recipe import Option
from dicomhub.core.deid.table import PRIVATE_ROW, parse_tag

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared" / "data"


def test_edition_and_row_count() -> None:
    assert _annex_e.EDITION == "2024b"
    assert len(_annex_e.ROWS) == 621
    assert _annex_e.SOURCE_FILE == "confidentiality_profile_attributes.json"
    assert len(_annex_e.SOURCE_SHA256) == 64


def test_basic_profile_codes() -> None:
    counts = Counter(row.basic for row in _annex_e.ROWS)
    assert counts == {
        "X": 384, "D": 92, "U": 54, "Z": 42, "X/D": 22,
        "X/Z": 11, "X/Z/D": 8, "Z/D": 6, "X/Z/U*": 2,
    }  # fmt: skip


def test_option_column_codes() -> None:
    counts: Counter[tuple[str, str]] = Counter(
        (column, code) for row in _annex_e.ROWS for column, code in row.options
    )
    assert counts == {
        ("rtnSafePrivOpt", "C"): 1,
        ("rtnUIDsOpt", "K"): 59,
        ("rtnDevIdOpt", "K"): 46,
        ("rtnDevIdOpt", "C"): 11,
        ("rtnInstIdOpt", "K"): 10,
        ("rtnPatCharsOpt", "K"): 9,
        ("rtnPatCharsOpt", "C"): 4,
        ("rtnLongFullDatesOpt", "K"): 165,
        ("rtnLongModifDatesOpt", "C"): 165,
        ("cleanDescOpt", "C"): 125,
        ("cleanStructContOpt", "C"): 3,
        ("cleanGraphOpt", "C"): 4,
    }
    assert {opt.column for opt in Option} == set(_annex_e.OPTION_COLUMNS)


def test_in_standard_iod_column() -> None:
    assert Counter(row.std_comp_iod for row in _annex_e.ROWS) == {True: 438, False: 183}


def test_spot_rows() -> None:
    rows = {row.tag: row for row in _annex_e.ROWS}
    assert rows["(0010,0020)"].basic == "Z/D"
    assert rows["(0020,000D)"].basic == "U"
    assert dict(rows["(0020,000D)"].options) == {"rtnUIDsOpt": "K"}
    acq = rows["(0008,002A)"]
    assert acq.basic == "X/Z/D"
    assert dict(acq.options) == {"rtnLongFullDatesOpt": "K", "rtnLongModifDatesOpt": "C"}
    assert rows[PRIVATE_ROW].basic == "X"
    assert dict(rows[PRIVATE_ROW].options) == {"rtnSafePrivOpt": "C"}


def test_tags_unique_and_patterns() -> None:
    tags = [row.tag for row in _annex_e.ROWS]
    assert len(set(tags)) == 621
    patterns = [parse_tag(t) for t in tags if t != PRIVATE_ROW and "X" in t.upper()[1:5]]
    assert sorted(patterns) == [
        (0x50000000, 0xFF000000),
        (0x60003000, 0xFF00FFFF),
        (0x60004000, 0xFF00FFFF),
    ]


def test_private_knowledge_base() -> None:
    rows = _private_tags.ROWS
    assert len(rows) == 2443
    assert len({row.creator for row in rows}) == 91
    assert sum(row.in_e3101 for row in rows) == 87
    assert Counter(row.disposition for row in rows) == {
        "keep": 2390,
        "hash_uid": 35,
        "shift_date": 18,
    }
    assert all(row.group % 2 == 1 and 0 <= row.element <= 0xFF for row in rows)


@pytest.mark.parametrize(
    ("module", "relative"),
    [
        (_annex_e, "dicom-standard/confidentiality_profile_attributes.json"),
        (_private_tags, "private-tags/private_tags_template.csv"),
    ],
)
def test_recorded_sha256_matches_source(module: object, relative: str) -> None:
    source = SHARED / relative
    assert source.name == module.SOURCE_FILE  # type: ignore[attr-defined]
    if not source.exists():
        pytest.skip(f"{source} is not on this machine")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert digest == module.SOURCE_SHA256  # type: ignore[attr-defined]


def test_generator_reproduces_rows() -> None:
    """Regenerating from the shared data gives the committed rows (skip if data absent)."""
    import importlib.util
    import sys

    source = SHARED / "dicom-standard" / "confidentiality_profile_attributes.json"
    if not source.exists():
        pytest.skip("shared data absent")
    spec = importlib.util.spec_from_file_location("gen", REPO / "tools" / "gen_deid_tables.py")
    assert spec is not None
    assert spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    sys.modules["gen"] = gen
    spec.loader.exec_module(gen)
    namespace: dict[str, object] = {}
    exec(compile(gen.render_annex_e(source), "annex_e", "exec"), namespace)
    assert namespace["ROWS"] == _annex_e.ROWS
    private = SHARED / "private-tags" / "private_tags_template.csv"
    namespace = {}
    exec(compile(gen.render_private(private), "private", "exec"), namespace)
    assert namespace["ROWS"] == _private_tags.ROWS
