"""What a sample contains, decided before any pixel is made.

Planning is cheap and deterministic, so the CLI can show an exact progress total and the
builders can look up the UIDs of series they reference before those are rendered.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from dicomhub.sample.phi import FakePatient, Institution
from dicomhub.sample.uids import UidFactory


@dataclass(frozen=True)
class Scanner:
    """One device; every instance it makes carries the same equipment attributes."""

    kind: str
    manufacturer: str
    model: str
    software: str
    station: str
    serial: str
    ae_title: str
    implementation_uid: UID
    implementation_version: str
    institution: Institution


_MODELS = {
    "ct": ("GE MEDICAL SYSTEMS", "Revolution CT", "revo_ct_22BW.43", "GE_CT_REVO_22"),
    "mr": ("SIEMENS", "MAGNETOM Skyra", "syngo MR E11", "SIEMENS_E11"),
    "petct": ("SIEMENS", "Biograph mCT", "VG62C", "SIEMENS_VG62C"),
    "us": ("Philips Medical Systems", "EPIQ 7G", "7.0.5.417", "PHILIPS_EPIQ7"),
    "ws": ("NovaView Systems", "NovaView Workstation", "4.2.1", "NOVAVIEW_421"),
}


def make_scanner(seed: int, institution: Institution, kind: str, uids: UidFactory) -> Scanner:
    """The ``kind`` device of a hospital; derived only from seed and hospital, so shared."""
    rng = random.Random(f"{seed}:{institution.short}:{kind}")
    manufacturer, model, software, version = _MODELS[kind]
    site = "".join(ch for ch in institution.short.upper() if ch.isalnum())[:8]
    station = f"{site}{kind.upper()}{rng.randint(1, 9):02d}"[:16]
    return Scanner(
        kind=kind,
        manufacturer=manufacturer,
        model=model,
        software=software,
        station=station,
        serial=f"{rng.randint(100000, 999999)}{rng.choice('ABCDEFGH')}",
        ae_title=station,
        implementation_uid=uids.uid("implementation", kind),
        implementation_version=version,
        institution=institution,
    )


@dataclass
class SeriesPlan:
    """One series to render: what it is, where it goes and how it is encoded."""

    kind: str
    number: int
    description: str
    transfer_syntax: UID
    count: int
    scanner: Scanner
    uid: UID
    start: datetime
    size: tuple[int, int]
    references: list[int] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"series-{self.number:02d}"


@dataclass
class StudyPlan:
    """One study: its identifiers, its date and the series it holds."""

    index: int
    uid: UID
    start: datetime
    accession: str
    study_id: str
    procedure: str
    description: str
    body_part: str
    frame_of_reference_uid: UID
    series: list[SeriesPlan] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"study-{self.index + 1:02d}"

    @property
    def date(self) -> date:
        return self.start.date()

    def phi(self) -> dict[str, str]:
        """The study-level PHI strings: identifiers and the date in both spellings."""
        return {
            "accession_number": self.accession,
            "study_id": self.study_id,
            "study_date": self.start.strftime("%Y%m%d"),
            "study_date_iso": self.start.date().isoformat(),
        }


@dataclass
class PatientPlan:
    patient: FakePatient
    studies: list[StudyPlan]


_SMALL = {"ct": (64, 64), "mr": (64, 64), "pt": (32, 32), "us": (60, 80), "sc": (64, 64)}
_FULL = {"ct": (512, 512), "mr": (256, 256), "pt": (128, 128), "us": (480, 640), "sc": (512, 512)}
_LAYOUT: list[tuple[str, str, str, list[tuple[str, str, UID, str, list[int]]]]] = [
    # study code, description, body part, series: (kind, description, syntax, scanner, refs)
    (
        "CT",
        "CT CHEST ABDOMEN PELVIS W CONTRAST",
        "CHEST",
        [
            ("ct_scout", "Topogram 0.6 T20s", ExplicitVRLittleEndian, "ct", []),
            ("ct", "AXIAL 5mm STND", ExplicitVRLittleEndian, "ct", [1]),
            ("ct", "AXIAL 1.25mm LUNG", JPEG2000Lossless, "ct", [1]),
            ("seg", "Liver segmentation", ExplicitVRLittleEndian, "ws", [2]),
            ("sc", "Dose Report", RLELossless, "ct", []),
            ("sr", "Radiology Report", DeflatedExplicitVRLittleEndian, "ws", [2, 3, 4]),
        ],
    ),
    (
        "MR",
        "MR BRAIN W WO CONTRAST",
        "HEAD",
        [
            ("mr", "t1_mprage_tra", JPEGLSLossless, "mr", []),
            ("mr", "t2_tse_tra", ImplicitVRLittleEndian, "mr", []),
            ("sr_text", "MR Preliminary Report", ExplicitVRLittleEndian, "ws", [1, 2]),
        ],
    ),
    (
        "PT",
        "PET-CT WHOLE BODY FDG",
        "WHOLEBODY",
        [
            ("ct", "CT AC 3.0 B19f", ImplicitVRLittleEndian, "petct", []),
            ("pt", "PET WB AC 3D", RLELossless, "petct", []),
        ],
    ),
    (
        "US",
        "US ABDOMEN COMPLETE",
        "ABDOMEN",
        [
            ("us", "Abdomen", ExplicitVRLittleEndian, "us", []),
        ],
    ),
]


def _count(kind: str, rng: random.Random, small: bool) -> int:
    if kind in ("ct_scout", "seg", "sc", "sr", "sr_text", "us"):
        return 1
    low, high = (4, 6) if small else (16, 28)
    return rng.randint(low, high)


def plan_patient(
    seed: int, patient: FakePatient, uids: UidFactory, rng: random.Random, small: bool
) -> PatientPlan:
    """Lay out one patient's studies; dates advance between studies, never within one."""
    sizes = _SMALL if small else _FULL
    day = date(2016, 1, 1) + timedelta(days=rng.randint(0, 2500))
    studies = []
    for index, (code, description, body_part, series_layout) in enumerate(_LAYOUT):
        day += timedelta(days=rng.randint(3, 120))
        start = datetime(day.year, day.month, day.day, rng.randint(7, 17), rng.randint(0, 59))
        start += timedelta(seconds=rng.randint(0, 59))
        p, s = patient.index, index
        study = StudyPlan(
            index=index,
            uid=uids.uid(p, s),
            start=start,
            accession=f"{patient.institution.short[:2].upper()}{rng.randint(10**7, 10**8 - 1)}",
            study_id=f"{code}{rng.randint(1000, 9999)}",
            procedure=description,
            description=f"{description} {day.isoformat()}",
            body_part=body_part,
            frame_of_reference_uid=uids.uid(p, s, "for"),
        )
        for number, (kind, text, syntax, scanner_kind, refs) in enumerate(series_layout, 1):
            size_key = "ct" if kind.startswith("ct") else kind[:2]
            study.series.append(
                SeriesPlan(
                    kind=kind,
                    number=number,
                    description=text,
                    transfer_syntax=syntax,
                    count=_count(kind, rng, small),
                    scanner=make_scanner(seed, patient.institution, scanner_kind, uids),
                    uid=uids.uid(p, s, number),
                    start=start + timedelta(minutes=3 * number, seconds=rng.randint(0, 59)),
                    size=sizes.get(size_key, sizes["ct"]),
                    references=refs,
                )
            )
        studies.append(study)
    return PatientPlan(patient, studies)
