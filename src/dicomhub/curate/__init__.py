"""dicomhub.curate."""
