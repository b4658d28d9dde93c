"""dicomhub.core.jobs."""
