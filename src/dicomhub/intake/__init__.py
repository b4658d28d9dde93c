"""dicomhub.intake."""
