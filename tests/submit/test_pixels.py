"""The burned-in pixel filter's header rules, and Clean Pixel Data rules that replace it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from dicomhub.sample import SampleManifest
from dicomhub.submit.idmap import load_idmap
from dicomhub.submit.kit import BurnedInRules, load_kit
from dicomhub.submit.pipeline import Options, Pipeline, state_folder
from dicomhub.submit.pixels import burned_in_reason
from dicomhub.submit.state import StateDB
from tests.submit.helpers import write_test_kit


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


def test_pixel_rule_cleans_instead_of_quarantining(
    tmp_path: Path, sample: tuple[Path, SampleManifest], idmap_path: Path
) -> None:
    """A kit whose recipe blanks the US banner sends US images; other risky ones stay."""
    rule = {"name": "US banner", "modality": "US", "regions": [[0, 0, 80, 8]]}
    kit = write_test_kit(tmp_path / "kit.json", recipe={"clean_pixels": [rule]})
    options = Options(
        folders=[sample[0]], work=tmp_path / "work", workers=1, dry_run=True, out=tmp_path / "out"
    )
    summary = Pipeline(load_kit(kit), load_idmap(idmap_path), options).run()
    assert summary.complete
    n_us = sum(1 for f in sample[1].files if f.modality == "US")
    assert summary.pixels_cleaned == {"US banner": n_us}
    state = StateDB(state_folder(options) / "state.sqlite3")
    quarantined = {Path(p).name: reason for p, reason, _ in state.listing("quarantined")}
    state.close()
    assert "burned_in" in quarantined.values()  # the Secondary Capture dose report stays
    outputs = [dcmread(p) for p in (tmp_path / "out").rglob("*.dcm")]
    us = [ds for ds in outputs if ds.Modality == "US"]
    assert len(us) == sum(1 for f in sample[1].files if f.modality == "US") > 0
    for ds in us:
        assert ds.BurnedInAnnotation == "NO"
        assert "113101" in [str(i.CodeValue) for i in ds.DeidentificationMethodCodeSequence]
        assert (ds.pixel_array[:8] == 0).all()
    ct = next(ds for ds in outputs if ds.Modality == "CT")
    assert "113101" not in [str(i.CodeValue) for i in ct.DeidentificationMethodCodeSequence]
