"""ID maps: duplicates, blanks and merges are refused with line numbers, never IDs."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomhub.submit.idmap import IdMapError, load_idmap, write_template
from dicomhub.submit.kit import load_kit

HEADER = "submitter_patient_id,archive_patient_id,archive_patient_name\n"


def write(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "map.csv"
    path.write_text(header + body)
    return path


def test_good_map(tmp_path: Path) -> None:
    idmap = load_idmap(write(tmp_path, "MRN1,C-S-0001,Anon^One\n MRN2 ,C-S-0002,\n"))
    assert idmap.patients == {"MRN1": ("C-S-0001", "Anon^One"), "MRN2": ("C-S-0002", None)}


def test_blank_lines_and_unused_template_rows_are_skipped(tmp_path: Path) -> None:
    idmap = load_idmap(write(tmp_path, "MRN1,C-S-0001,\n,,\n\n,C-S-0002,\n"))
    assert len(idmap) == 1
    assert idmap.skipped_lines == [3, 4, 5]


def test_duplicate_submitter_id_is_refused_by_line(tmp_path: Path) -> None:
    path = write(tmp_path, "SECRET-MRN,C-S-0001,\nSECRET-MRN,C-S-0002,\n")
    with pytest.raises(IdMapError, match="line 3: submitter ID repeats line 2") as info:
        load_idmap(path)
    assert "SECRET-MRN" not in info.value.message


def test_two_patients_merged_into_one_archive_id(tmp_path: Path) -> None:
    with pytest.raises(IdMapError, match="already used on line 2"):
        load_idmap(write(tmp_path, "A,C-S-0001,\nB,C-S-0001,\n"))


def test_blank_archive_id(tmp_path: Path) -> None:
    with pytest.raises(IdMapError, match="line 2: blank archive_patient_id"):
        load_idmap(write(tmp_path, "A, ,\n"))


def test_bad_archive_id(tmp_path: Path) -> None:
    with pytest.raises(IdMapError, match="longer than 64"):
        load_idmap(write(tmp_path, "A,X\\Y,\n"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("patient,new\nA,B\n", "needs a header row"),
        (HEADER, "maps no patient"),
        (HEADER + ",,\n", "maps no patient"),
    ],
)
def test_unusable_maps(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(IdMapError, match=message):
        load_idmap(write(tmp_path, text, header=""))


def test_unreadable_map(tmp_path: Path) -> None:
    with pytest.raises(IdMapError, match="cannot read"):
        load_idmap(tmp_path / "missing.csv")
    path = tmp_path / "latin.csv"
    path.write_bytes(HEADER.encode() + b"M\xfcller,C-S-1,\n")
    with pytest.raises(IdMapError, match="not a UTF-8 CSV"):
        load_idmap(path)


def test_template_round_trip(tmp_path: Path, kit_path: Path) -> None:
    path = write_template(tmp_path / "template.csv", load_kit(kit_path), 3)
    lines = path.read_text().splitlines()
    assert lines[0] == HEADER.strip()
    assert lines[1] == ",LUNG1-S1-0001,"
    filled = path.read_text().replace(",LUNG1-S1-0002,", "MRN9,LUNG1-S1-0002,")
    path.write_text(filled)
    assert load_idmap(path).patients == {"MRN9": ("LUNG1-S1-0002", None)}
