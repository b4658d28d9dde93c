"""dicomhub.core.deid."""
