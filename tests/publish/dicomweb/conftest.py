"""The DICOMweb tests share one served site per module and backend."""

from tests.publish.nbia.site import api_site

__all__ = ["api_site"]
