"""dicomhub.download."""
