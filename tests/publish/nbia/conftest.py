"""The NBIA API tests share one served site per backend."""

from tests.publish.nbia.site import api_site

__all__ = ["api_site"]
