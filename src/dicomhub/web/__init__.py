"""dicomhub.web."""
