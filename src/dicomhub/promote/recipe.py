"""The second de-identification pass promotion applies (until curation supplies one).

Data reaches intake already de-identified by the submitting site, with the
archive's UID root and its dates moved by the site's offset; the submitter
checks what intake holds by SOPInstanceUID.  The second pass is a re-check, so:

* **UIDs are kept** (Retain UIDs Option): they are already the archive's UIDs.
  Hashing them again would give the public copy UIDs the submitter cannot find
  and would break references to instances promoted in an earlier release.
* **Dates are kept** (Retain Longitudinal Temporal Information with Modified
  Dates, offset 0): they were already shifted once; ``0028,0303`` stays MODIFIED.
* PatientID and PatientName are kept: they are the archive's pseudonyms, set
  from the site's ID map, and the catalogue's patients are keyed by them.
* ClinicalTrialProtocolID is kept: the submitter writes the collection name there.
* Everything else follows the Basic Profile again, with the options TCIA applies
  to public collections: Retain Patient Characteristics (sex, age, size: search
  columns), Clean Descriptors (descriptions are cleaned rather than removed, so
  series can be searched by them), and Retain Safe Private with TCIA's private
  tag knowledge base: every private attribute the base does not list as safe is
  removed, whatever the site's kit kept.

Options only ever keep what is still there: anything the first pass removed stays
removed.  A curated recipe (``PromoteParams.recipe_toml``) must keep UIDs and use
a zero date offset for the same reasons; :func:`check_second_pass` refuses others.
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import ValidationError

from dicomhub.core.deid import Recipe
from dicomhub.errors import BadRequest

KIT_ID = "dicomhub-second-pass"
#: Used only when no UID root is configured; UIDs are retained, so it names nothing.
FALLBACK_UID_ROOT = "2.25"
KEEP = ("PatientID", "PatientName", "ClinicalTrialProtocolID")


def uid_secret(instance_secret: str) -> str:
    """The recipe's UID key, derived from the instance secret (never stored or logged)."""
    mac = hmac.new(instance_secret.encode(), b"dicomhub promote second pass", hashlib.sha256)
    return mac.hexdigest()


def second_pass_recipe(uid_root: str | None, secret: str) -> Recipe:
    """The default second-pass recipe (see the module docstring for each choice)."""
    return Recipe(
        kit_id=KIT_ID,
        uid_root=uid_root or FALLBACK_UID_ROOT,
        uid_secret=secret,
        date_offset_days=0,
        retain_uids=True,
        retain_long_modified_dates=True,
        retain_patient_characteristics=True,
        clean_descriptors=True,
        retain_safe_private=True,
        safe_private_source="tcia_kb",
        keep=KEEP,
    )


def load_recipe(toml: str | None, uid_root: str | None, secret: str) -> Recipe:
    """A curated recipe from TOML (checked), or the default when ``toml`` is None."""
    if toml is None:
        return second_pass_recipe(uid_root, secret)
    try:
        recipe = Recipe.from_toml(toml, uid_secret=secret)
    except (ValueError, ValidationError) as exc:
        raise BadRequest(f"promote: the second-pass recipe is not valid: {exc}") from exc
    check_second_pass(recipe)
    return recipe


def check_second_pass(recipe: Recipe) -> None:
    """Refuse a second-pass recipe that would change UIDs, dates or the patient's ID."""
    if not recipe.retain_uids:
        raise BadRequest("promote: a second-pass recipe must retain UIDs (retain_uids = true)")
    if recipe.date_offset_days != 0 or recipe.retain_long_full_dates:
        raise BadRequest(
            "promote: a second-pass recipe keeps the already shifted dates "
            "(retain_long_modified_dates = true, date_offset_days = 0)"
        )
    if not {"PatientID", "PatientName"} <= set(recipe.keep):
        raise BadRequest("promote: a second-pass recipe must keep PatientID and PatientName")
