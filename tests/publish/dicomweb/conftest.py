"""The DICOMweb tests share the NBIA tests' served site (one per backend)."""

from tests.publish.nbia.site import api_site

__all__ = ["api_site"]
