"""Fake identities: patients, staff and hospitals that look real and are not.

Every name, number and address is drawn from small built-in lists with a seeded RNG, so
the same seed gives the same people. Identifiers use shapes no real registry issues
(MRNs from a private range, national IDs starting with 9).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

GIVEN_FEMALE = (
    "Maren",
    "Edith",
    "Olivia",
    "Priya",
    "Ingrid",
    "Sofia",
    "Harriet",
    "Noor",
    "Beatrix",
    "Camille",
    "Yuki",
    "Greta",
    "Lucinda",
    "Rosalind",
    "Theodora",
    "Wilhelmina",
)
GIVEN_MALE = (
    "Anselm",
    "Bertram",
    "Casimir",
    "Desmond",
    "Evander",
    "Florian",
    "Gideon",
    "Horatio",
    "Ignatius",
    "Jasper",
    "Leopold",
    "Mortimer",
    "Octavian",
    "Percival",
    "Rupert",
    "Thaddeus",
)
FAMILY = (
    "Abernathy",
    "Blackwood",
    "Castellanos",
    "Duquesne",
    "Eriksdottir",
    "Fairweather",
    "Gallagher",
    "Hargreaves",
    "Ivanova",
    "Jorgensen",
    "Kowalczyk",
    "Lindqvist",
    "Montgomery",
    "Nakamura",
    "Okonkwo",
    "Pemberton",
    "Quintanilla",
    "Rasmussen",
    "Szczepanski",
    "Thistlewood",
    "Umberfield",
    "Vasquez-Orton",
    "Whitcombe",
    "Yarborough",
    "Zeltmann",
)
STREETS = (
    "Larkspur Lane",
    "Old Mill Road",
    "Hawthorn Avenue",
    "Quarry Street",
    "Bellweather Court",
    "Juniper Drive",
    "Canal Row",
    "Foxglove Terrace",
    "Marigold Way",
    "Saltmarsh Road",
)
TOWNS = (
    ("Millbrook", "NY", "12545"),
    ("Fairhaven", "MA", "02719"),
    ("Oakridge", "OR", "97463"),
    ("Pinecrest", "CA", "95364"),
    ("Cedar Falls", "IA", "50613"),
    ("Brookfield", "WI", "53005"),
)
HOSPITALS = (
    ("St. Aldric Memorial Hospital", "St Aldric"),
    ("Riverside Regional Medical Center", "RRMC"),
    ("Northgate University Hospital", "NUH"),
    ("Hollowell Community Hospital", "HCH"),
)


@dataclass(frozen=True)
class Person:
    """A fake person; ``dicom`` is the PN form, ``display`` the form doctors type."""

    family: str
    given: str
    middle: str = ""
    prefix: str = ""

    @property
    def dicom(self) -> str:
        parts = [self.family, self.given, self.middle, self.prefix]
        while parts and not parts[-1]:
            parts.pop()
        return "^".join(parts)

    @property
    def display(self) -> str:
        return f"{self.given} {self.family}"


@dataclass(frozen=True)
class Institution:
    """A fake hospital: name, short name (used in AE titles and station names), address."""

    name: str
    short: str
    address: str
    department: str


@dataclass(frozen=True)
class FakePatient:
    """One fake patient with the care team that will appear in their studies."""

    index: int
    name: Person
    mrn: str
    national_id: str
    birth_date: date
    sex: str
    address: str
    phone: str
    institution: Institution
    referring: Person
    radiologist: Person
    technologist: Person
    performing: Person

    @property
    def key(self) -> str:
        """Directory name for this patient; no PHI so paths can be shown safely."""
        return f"patient-{self.index + 1:03d}"

    def phi(self) -> dict[str, str]:
        """The patient-level PHI strings planted in files, by kind."""
        return {
            "patient_name": self.name.dicom,
            "patient_name_display": self.name.display,
            "patient_id": self.mrn,
            "other_patient_id": self.national_id,
            "birth_date": self.birth_date.strftime("%Y%m%d"),
            "birth_date_iso": self.birth_date.isoformat(),
            "patient_address": self.address,
            "patient_phone": self.phone,
            "institution_name": self.institution.name,
            "institution_address": self.institution.address,
            "referring_physician": self.referring.dicom,
            "radiologist": self.radiologist.dicom,
            "radiologist_display": self.radiologist.display,
            "operator": self.technologist.dicom,
            "performing_physician": self.performing.dicom,
        }


def _person(rng: random.Random, sex: str, *, doctor: bool = False) -> Person:
    given = rng.choice(GIVEN_FEMALE if sex == "F" else GIVEN_MALE)
    middle = rng.choice("ABCDEFGHJKLMNPRSTW")
    return Person(rng.choice(FAMILY), given, middle, "Dr." if doctor else "")


def _institution(rng: random.Random) -> Institution:
    name, short = rng.choice(HOSPITALS)
    town, state, zipcode = rng.choice(TOWNS)
    address = f"{rng.randint(10, 990)} {rng.choice(STREETS)}, {town}, {state} {zipcode}"
    return Institution(name, short, address, "Department of Radiology")


def make_patient(rng: random.Random, index: int) -> FakePatient:
    """Draw one fake patient; all randomness comes from ``rng``."""
    sex = rng.choice("FM")
    birth = date(1938, 1, 1) + timedelta(days=rng.randint(0, 365 * 60))
    town, state, zipcode = rng.choice(TOWNS)
    street = f"{rng.randint(1, 9999)} {rng.choice(STREETS)}"
    return FakePatient(
        index=index,
        name=_person(rng, sex),
        mrn=f"{rng.randint(80000000, 89999999)}",
        national_id=f"9{rng.randint(10, 99)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
        birth_date=birth,
        sex=sex,
        address=f"{street}, {town}, {state} {zipcode}",
        phone=f"({rng.randint(200, 989)}) 555-{rng.randint(100, 199):04d}",
        institution=_institution(rng),
        referring=_person(rng, rng.choice("FM"), doctor=True),
        radiologist=_person(rng, rng.choice("FM"), doctor=True),
        technologist=_person(rng, rng.choice("FM")),
        performing=_person(rng, rng.choice("FM"), doctor=True),
    )


def age_string(birth: date, on: date) -> str:
    """DICOM AS value (``nnnY``) for the age on a date."""
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return f"{years:03d}Y"
