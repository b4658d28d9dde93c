"""Clean Pixel Data (PS3.15 E.3.1): blank the known burned-in regions of an image.

Header de-identification cannot see text burned into pixels. Where a curator knows where a
device writes it (an ultrasound scanner's banner, a dose screen's patient line), a recipe
lists rectangles per manufacturer, model and matrix size, as CTP's DicomPixelAnonymizer
does, and the engine blanks them. Compressed pixel data is decoded first (pylibjpeg and
pyjpegls, the ``codecs`` extra) and the cleaned image is written uncompressed: re-encoding
a lossy image would lose more, and blanking changes every compressed frame anyway.

The Clean Pixel Data option code (CID 7050 113101) and BurnedInAnnotation ``NO`` are
recorded only on instances whose pixels were actually cleaned.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from dicomhub.core.deid.errors import DeidError

LOGGER = logging.getLogger(__name__)

CLEAN_PIXEL_CODE = ("113101", "Clean Pixel Data Option")
PIXEL_DATA_TAG = 0x7FE00010


class PixelCleanError(DeidError):
    """The pixels of an image a rule matched cannot be cleaned; the image must stay local."""

    code = "pixel_clean_failed"


class PixelRule(BaseModel):
    """Where one kind of device burns text into its images, and the rectangles to blank.

    Every condition given must hold (Manufacturer and model match case-insensitively as
    prefixes, so ``"GE"`` matches ``"GE MEDICAL SYSTEMS"``); a condition left out matches
    anything. ``regions`` are ``[left, top, width, height]`` in pixels, clipped to the image,
    applied to every frame and every sample.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="", max_length=64)
    modality: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    rows: int | None = Field(default=None, ge=1)
    columns: int | None = Field(default=None, ge=1)
    regions: tuple[tuple[int, int, int, int], ...] = Field(min_length=1)
    fill: int = 0

    @field_validator("regions")
    @classmethod
    def _check_regions(
        cls, value: tuple[tuple[int, int, int, int], ...]
    ) -> tuple[tuple[int, int, int, int], ...]:
        for left, top, width, height in value:
            if left < 0 or top < 0 or width < 1 or height < 1:
                raise ValueError(
                    "a region is [left, top, width, height] with left, top >= 0 and "
                    "width, height >= 1"
                )
        return value

    def matches(self, ds: Dataset) -> bool:
        """True if every condition of the rule holds for ``ds`` (read before de-identifying)."""
        checks: list[tuple[str | int | None, str]] = [
            (self.modality, "Modality"),
            (self.manufacturer, "Manufacturer"),
            (self.model, "ManufacturerModelName"),
            (self.rows, "Rows"),
            (self.columns, "Columns"),
        ]
        for wanted, keyword in checks:
            if wanted is None:
                continue
            actual = ds.get(keyword)
            if actual is None:
                return False
            if isinstance(wanted, int):
                if int(actual) != wanted:
                    return False
            elif keyword == "Modality":
                if str(actual).strip().upper() != wanted.strip().upper():
                    return False
            elif not str(actual).strip().upper().startswith(wanted.strip().upper()):
                return False
        return True

    def label(self) -> str:
        """How reports name the rule."""
        if self.name:
            return self.name
        parts = [self.modality, self.manufacturer, self.model]
        if self.rows or self.columns:
            parts.append(f"{self.rows or '*'}x{self.columns or '*'}")
        return " ".join(p for p in parts if p) or "every image"


def matching_rule(ds: Dataset, rules: tuple[PixelRule, ...]) -> PixelRule | None:
    """The first rule that matches an image carrying pixel data, or None.

    Bitmaps (BitsAllocated 1: segmentations, overlays) are never matched: no device burns
    text into them, and they go through the burned-in filter like any unmatched image.
    """
    if not rules or PIXEL_DATA_TAG not in ds or ds.get("BitsAllocated") == 1:
        return None
    return next((rule for rule in rules if rule.matches(ds)), None)


def clean_pixels(ds: Dataset, rule: PixelRule) -> None:
    """Blank ``rule``'s regions in every frame of ``ds``, decoding compressed data first.

    The dataset is left with uncompressed pixel data (Explicit VR Little Endian) and the
    same SOP Instance UID (the engine maps it like any other). Raises
    :class:`PixelCleanError` with the reason when the pixels cannot be decoded or written.
    """
    if int(ds.get("BitsAllocated", 0) or 0) not in (8, 16, 32):
        raise PixelCleanError(
            f"pixel data with BitsAllocated {ds.get('BitsAllocated')} cannot be cleaned"
        )
    syntax = ds.file_meta.TransferSyntaxUID
    try:
        if syntax.is_compressed:
            ds.decompress(generate_instance_uid=False)
        arr = ds.pixel_array.copy()
    except Exception as exc:
        raise PixelCleanError(
            f"cannot decode pixel data ({syntax.name}) to clean it: {type(exc).__name__}: "
            f"{exc} (the codecs extra, dicomhub[codecs], decodes JPEG, JPEG-LS, JPEG 2000 "
            "and RLE)"
        ) from exc
    _blank(arr, rule, frames=int(ds.get("NumberOfFrames", 1) or 1))
    ds.PixelData = arr.tobytes()
    if int(ds.get("SamplesPerPixel", 1) or 1) > 1:
        ds.PlanarConfiguration = 0  # pixel_array is colour-by-pixel whatever the source
    ds["PixelData"].VR = "OW" if ds.BitsAllocated > 8 else "OB"
    if syntax.is_compressed:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    LOGGER.debug("pixels cleaned by rule %s", rule.label())


def _blank(arr: NDArray[Any], rule: PixelRule, *, frames: int) -> None:
    """Set each region to ``rule.fill`` in place; the array is (frames?, rows, cols, samples?)."""
    limits = np.iinfo(arr.dtype) if arr.dtype.kind in "iu" else np.finfo(arr.dtype)
    fill = min(max(rule.fill, limits.min), limits.max)
    for left, top, width, height in rule.regions:
        rows = slice(top, top + height)
        cols = slice(left, left + width)
        if frames > 1:
            arr[:, rows, cols, ...] = fill
        else:
            arr[rows, cols, ...] = fill
