"""The burned-in pixel filter's header rules."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from dicomhub.submit.kit import BurnedInRules
from dicomhub.submit.pixels import burned_in_reason


def ds(**attrs: object) -> Dataset:
    out = Dataset()
    out.Modality = "CT"
    out.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    out.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    for key, value in attrs.items():
        setattr(out, key, value)
    return out


@pytest.mark.parametrize(
    ("attrs", "reason"),
    [
        ({}, None),
        ({"BurnedInAnnotation": "YES"}, "BurnedInAnnotation is YES"),
        ({"ImageType": ["DERIVED", "SECONDARY"]}, "ImageType contains SECONDARY"),
        ({"ImageType": "ORIGINAL\\SCREEN SAVE"}, "ImageType contains SCREEN SAVE"),
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}, "Secondary Capture SOP class"),
        ({"Modality": "US"}, "modality US without BurnedInAnnotation NO"),
        ({"Modality": "OT"}, "modality OT without BurnedInAnnotation NO"),
        ({"Modality": "US", "BurnedInAnnotation": "NO"}, None),
        ({"Modality": "US", "BurnedInAnnotation": "YES"}, "BurnedInAnnotation is YES"),
    ],
)
def test_default_rules(attrs: dict[str, object], reason: str | None) -> None:
    found = burned_in_reason(ds(**attrs), BurnedInRules())
    assert (found is None) if reason is None else (found is not None and reason in found)


def test_kit_lists_and_untrusted_flag() -> None:
    rules = BurnedInRules(manufacturers=("Acme Imaging",), models=("X1",), trust_burned_in_no=False)
    assert "manufacturer ACME IMAGING" in str(
        burned_in_reason(ds(Manufacturer="acme imaging"), rules)
    )
    assert "model X1" in str(burned_in_reason(ds(ManufacturerModelName="X1"), rules))
    assert burned_in_reason(ds(Modality="US", BurnedInAnnotation="NO"), rules) is not None
    assert burned_in_reason(ds(Modality="US"), BurnedInRules(risky_modalities=())) is None
