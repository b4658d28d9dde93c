"""Clean Pixel Data: known burned-in regions blanked in real compressed sample images."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from dicomhub.core.deid import Deidentifier, PixelCleanError, PixelRule
from dicomhub.sample import make_sample
from tests.core.deid.helpers import recipe

REGION = (2, 1, 12, 6)  # left, top, width, height


@pytest.fixture(scope="module")
def by_syntax(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """One sample file per (transfer syntax, modality)."""
    out = tmp_path_factory.mktemp("pixels") / "sample"
    make_sample(out, patients=1, seed=5, small=True)
    found: dict[tuple[str, str], Path] = {}
    for path in sorted(out.rglob("*.dcm")):
        ds = dcmread(path, stop_before_pixels=True)
        found.setdefault((str(ds.file_meta.TransferSyntaxUID), str(ds.Modality)), path)
    return found


def written(ds: Dataset) -> Dataset:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    return dcmread(buffer)


def codes(ds: Dataset) -> list[str]:
    return [str(item.CodeValue) for item in ds.DeidentificationMethodCodeSequence]


@pytest.mark.parametrize(
    ("syntax", "modality"),
    [
        (JPEG2000Lossless, "CT"),
        (JPEGLSLossless, "MR"),
        (RLELossless, "PT"),
        (ImplicitVRLittleEndian, "CT"),
        (ExplicitVRLittleEndian, "US"),
    ],
)
def test_regions_blanked_in_every_syntax(
    by_syntax: dict[tuple[str, str], Path], syntax: str, modality: str
) -> None:
    source = dcmread(by_syntax[(syntax, modality)])
    before = source.pixel_array.copy()
    sop = str(source.SOPInstanceUID)
    rule = PixelRule(modality=modality, regions=(REGION,))
    engine = Deidentifier(recipe(clean_pixels=(rule,)))
    result = engine(source)
    assert result.pixel_rule == modality
    out = written(result.dataset)
    after = out.pixel_array
    left, top, width, height = REGION
    box = (slice(top, top + height), slice(left, left + width))
    assert (after[box] == 0).all()
    mask = np.ones(before.shape[:2], dtype=bool)
    mask[box] = False
    assert np.array_equal(after[mask], before[mask])  # nothing else touched, losslessly
    assert out.file_meta.TransferSyntaxUID in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
    assert out.BurnedInAnnotation == "NO"
    assert codes(out)[:2] == ["113100", "113101"]
    assert out.SOPInstanceUID == engine.hasher(sop)  # decoding made no new instance UID


def test_code_only_where_a_rule_matched(by_syntax: dict[tuple[str, str], Path]) -> None:
    rule = PixelRule(modality="US", manufacturer="nobody", regions=((0, 0, 4, 4),))
    source = dcmread(by_syntax[(JPEG2000Lossless, "CT")])
    syntax = source.file_meta.TransferSyntaxUID
    result = Deidentifier(recipe(clean_pixels=(rule,)))(source)
    assert result.pixel_rule is None
    out = written(result.dataset)
    assert "113101" not in codes(out)
    assert out.file_meta.TransferSyntaxUID == syntax  # left compressed, never decoded
    assert "Clean Pixel" not in str(out.DeidentificationMethod)


def test_rules_match_on_every_condition() -> None:
    ds = Dataset()
    ds.Modality = "US"
    ds.Manufacturer = "GE Medical Systems"
    ds.ManufacturerModelName = "LOGIQ E9"
    ds.Rows, ds.Columns = 480, 640
    region = ((0, 0, 640, 40),)
    assert PixelRule(manufacturer="ge", model="logiq", regions=region).matches(ds)
    assert PixelRule(rows=480, columns=640, modality="us", regions=region).matches(ds)
    assert not PixelRule(rows=600, regions=region).matches(ds)
    assert not PixelRule(manufacturer="Philips", regions=region).matches(ds)
    assert not PixelRule(modality="U", regions=region).matches(ds)  # modality is exact
    del ds.ManufacturerModelName
    assert not PixelRule(model="LOGIQ", regions=region).matches(ds)


@pytest.mark.parametrize(
    "regions",
    [(), ((0, 0, 0, 5),), ((-1, 0, 5, 5),), ((0, 0, 5),)],
)
def test_bad_regions_refused(regions: tuple[tuple[int, ...], ...]) -> None:
    with pytest.raises(ValidationError, match="region"):
        PixelRule.model_validate({"regions": regions})


def test_undecodable_pixels_refused_before_any_change(
    by_syntax: dict[tuple[str, str], Path],
) -> None:
    source = dcmread(by_syntax[(JPEG2000Lossless, "CT")])
    fragment = bytearray(source.PixelData)
    source.PixelData = bytes(fragment[:24]) + b"\x00" * (len(fragment) - 24)
    engine = Deidentifier(recipe(clean_pixels=(PixelRule(regions=((0, 0, 4, 4),)),)))
    with pytest.raises(PixelCleanError, match="cannot decode pixel data"):
        engine(source)
    assert source.PatientName != ""  # the header was not touched yet


def test_fill_clipped_to_the_pixel_type(by_syntax: dict[tuple[str, str], Path]) -> None:
    source = dcmread(by_syntax[(ExplicitVRLittleEndian, "US")])  # 8-bit RGB
    rule = PixelRule(regions=((0, 0, 3, 3),), fill=4000)
    out = written(Deidentifier(recipe(clean_pixels=(rule,)))(source).dataset)
    assert (out.pixel_array[:3, :3] == 255).all()
    assert out.PlanarConfiguration == 0


def test_recipes_without_pixel_rules_keep_their_hash() -> None:
    """Kits issued before Clean Pixel Data existed still match what intake registered."""
    plain = recipe(clean_descriptors=True)
    assert "clean_pixels" not in plain.canonical_json()
    cleaned = recipe(clean_descriptors=True, clean_pixels=(PixelRule(regions=((0, 0, 1, 1),)),))
    assert '"clean_pixels":[{' in cleaned.canonical_json()
    assert cleaned.recipe_hash() != plain.recipe_hash()
