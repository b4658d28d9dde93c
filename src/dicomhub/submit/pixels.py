"""The burned-in pixel filter: header rules that keep risky images at the site.

Pixel text (names burned into an ultrasound frame or a screenshot) is invisible to header
de-identification, so images likely to carry it are quarantined locally with the rule
that matched; they are never sent. The rules come from the kit.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from dicomhub.submit.kit import BurnedInRules


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip().upper()


def _values(ds: Dataset, keyword: str) -> list[str]:
    value = ds.get(keyword)
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip().upper() for part in value.split("\\")]
    return [str(v).strip().upper() for v in value]


def burned_in_reason(ds: Dataset, rules: BurnedInRules) -> str | None:
    """Why ``ds`` may carry burned-in text (the first rule that matched), or None."""
    flag = _text(ds, "BurnedInAnnotation")
    if flag == "YES":
        return "BurnedInAnnotation is YES"
    image_type = _values(ds, "ImageType")
    for risky in rules.image_types:
        if risky.upper() in image_type:
            return f"ImageType contains {risky}"
    sop_class = str(ds.get("SOPClassUID", "")).strip()
    if sop_class in rules.sop_classes:
        return f"Secondary Capture SOP class {sop_class}"
    manufacturer = _text(ds, "Manufacturer")
    if manufacturer and manufacturer in {m.upper() for m in rules.manufacturers}:
        return f"manufacturer {manufacturer} is on the kit's list"
    model = _text(ds, "ManufacturerModelName")
    if model and model in {m.upper() for m in rules.models}:
        return f"model {model} is on the kit's list"
    modality = _text(ds, "Modality")
    if modality in {m.upper() for m in rules.risky_modalities}:
        if rules.trust_burned_in_no and flag == "NO":
            return None
        return f"modality {modality} without BurnedInAnnotation NO"
    return None
