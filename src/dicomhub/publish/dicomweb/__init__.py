"""DICOMweb (read): QIDO-RS and WADO-RS over the public query layer, for viewers and scripts."""

from dicomhub.publish.dicomweb.routes import router

__all__ = ["router"]
