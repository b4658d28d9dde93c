"""Clean Descriptors cleans, never blanks: clinical wording stays, identifying parts go."""

from __future__ import annotations

import datetime as dt
import random
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset

from dicomhub.core.deid import deidentify
from dicomhub.core.deid.text import TextCleaner
from tests.core.deid.helpers import ct, recipe, roundtrip

KNOWN = ("Doe^John", "MRN12345", "General Hospital", "SMH", "CT4321")


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [
        ("CT CHEST W/O CONTRAST", "CT CHEST W/O CONTRAST"),
        ("Topogram 0.6 T20s", "Topogram 0.6 T20s"),
        ("3D T1 1.0mm 256x256", "3D T1 1.0mm 256x256"),
        ("PET-CT WHOLE BODY FDG", "PET-CT WHOLE BODY FDG"),
        ("CT chest for John Doe 2020-01-15", "CT chest for"),
        ("AXIAL 5mm 15/01/2020 MRN12345", "AXIAL 5mm"),
        ("CT CHEST ABDOMEN PELVIS W CONTRAST (SMH)", "CT CHEST ABDOMEN PELVIS W CONTRAST"),
        ("Call Doe at (555) 123-4567 before contrast", "Call at before contrast"),
        ("Acc# A1234567 chest", "chest"),
        ("Study CT4321 - General Hospital", "Study"),
        ("Liver 12/03/19", "Liver"),
        ("March 3, 2021 follow-up", "follow-up"),
        ("MRN: X998877 knee", "knee"),
        ("20200115", ""),
        ("Seen by Roe^Richard^^Dr", "Seen by"),
        ("Follow-up for Dr. Roe", "Follow-up for"),
        ("Biopsy, Mrs Jane Roe, left", "Biopsy, left"),
        ("DR. SMITH CHEST", "CHEST"),
        ("DR CHEST PA", "DR CHEST PA"),
        ("MR BRAIN W/O", "MR BRAIN W/O"),
        ("MS lesion follow-up", "MS lesion follow-up"),
    ],
)
def test_cleaner_keeps_clinical_wording(text: str, cleaned: str) -> None:
    assert TextCleaner(KNOWN)(text) == cleaned


def run(ds: Dataset, **kw: object) -> Dataset:
    ds = roundtrip(ds)
    deidentify(ds, recipe(**kw))
    return roundtrip(ds)


def test_descriptors_cleaned_of_the_headers_own_identifiers() -> None:
    out = run(
        ct(
            SeriesDescription="CT CHEST W/O CONTRAST",
            StudyDescription="CHEST General Hospital CT01",
            ImageComments="seen by Dr Smith, Doe John",
            InstitutionName="General Hospital",
            StationName="CT01",
            ReferringPhysicianName="Smith^Anna",
        ),
        clean_descriptors=True,
        retain_device_identity=True,
        retain_institution_identity=True,
    )
    assert out.SeriesDescription == "CT CHEST W/O CONTRAST"
    assert out.StudyDescription == "CHEST"
    assert out.ImageComments == "seen by Dr"
    assert out.InstitutionName == "General Hospital"  # the option keeps the attribute itself


CLINICAL = st.sampled_from(
    ["CT", "CHEST", "W/O", "CONTRAST", "AXIAL", "5mm", "T1", "MPRAGE", "LUNG", "FU", "3D",
     "PET-CT", "WB", "(AC)", "LIVER", "0.6", "B19f", "STND", "ABD/PEL", "-"]
)  # fmt: skip
NAMES = st.sampled_from(["Fairweather", "Hargreaves", "Ignatius", "Wilhelmina", "Duquesne"])


@st.composite
def planted_dates(draw: st.DrawFn) -> str:
    day = draw(st.dates(dt.date(1930, 1, 1), dt.date(2030, 12, 31)))
    form = draw(
        st.sampled_from(["%Y%m%d", "%Y-%m-%d", "%d.%m.%Y", "%m/%d/%Y", "%d %b %Y", "%B %d, %Y"])
    )
    return day.strftime(form)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(CLINICAL, min_size=1, max_size=6),
    st.lists(st.one_of(NAMES, planted_dates(), st.from_regex(r"MRN\d{6,8}", fullmatch=True)),
             min_size=1, max_size=3),
    st.randoms(use_true_random=False),
)  # fmt: skip
def test_planted_phi_never_survives_cleaning(
    words: list[str], phi: list[str], rnd: random.Random
) -> None:
    """Names and IDs of the header and dates in any common form go; clinical words stay."""
    tokens = words + phi
    rnd.shuffle(tokens)
    family = [p for p in phi if p.isalpha()]
    ids = [p for p in phi if p.startswith("MRN")]
    known = (*(f"{f}^Anna" for f in family), *ids)
    out = TextCleaner(known)(" ".join(tokens))
    for value in phi:
        assert value not in out
    for digits in ("".join(c for c in p if c.isdigit()) for p in phi):
        assert len(digits) < 4 or digits not in out.replace(" ", "")
    for word in words:
        if word != "-":
            assert word in out


def test_demo_recipe_keeps_descriptions_without_phi() -> None:
    from dicomhub.cli.demo import DEMO_RECIPE

    rules = tomllib.loads(DEMO_RECIPE)["recipe"]
    out = run(
        ct(SeriesDescription="CT CHEST W/O CONTRAST", StudyDescription="CT CHEST 2020-01-15"),
        **rules,
    )
    assert out.SeriesDescription == "CT CHEST W/O CONTRAST"
    assert out.StudyDescription == "CT CHEST"
