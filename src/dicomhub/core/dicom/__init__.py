"""dicomhub.core.dicom."""
