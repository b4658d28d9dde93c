"""dicomhub.sample."""
